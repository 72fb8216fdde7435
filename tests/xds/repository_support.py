"""Helpers for the repository tests: ITI-41/43 payloads, MTOM parts on disk, a recording register callable."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from lxml import etree

from esb.errors import XdsError
from esb.exchange import Attachment
from esb.storage import LocalDiskStore
from profiles.xds import ebxml
from profiles.xds.ebxml import XDS, XOP, q
from profiles.xds.repository.provide import content_id
from profiles.xds.repository.schema import documents


def provide_request(submit: Any, contents: Mapping[str, bytes | Attachment]) -> Any:
    """``xds:ProvideAndRegisterDocumentSetRequest``: inline base64 for bytes, ``xop:Include`` for attachments."""
    root = etree.Element(q("xds", "ProvideAndRegisterDocumentSetRequest"), nsmap={"xds": XDS, "xop": XOP})
    root.append(copy.deepcopy(submit))
    for doc_id, content in contents.items():
        node = etree.SubElement(root, q("xds", "Document"), id=doc_id)
        if isinstance(content, bytes):
            node.text = base64.b64encode(content).decode("ascii")
        else:
            etree.SubElement(node, q("xop", "Include"), href="cid:" + quote(content.content_id, safe="@"))
    return root


def retrieve_request(*pairs: tuple[str, str], home: str | None = None) -> Any:
    """``xds:RetrieveDocumentSetRequest`` for (repositoryUniqueId, documentUniqueId) pairs."""
    root = etree.Element(q("xds", "RetrieveDocumentSetRequest"), nsmap={"xds": XDS})
    for repository, document in pairs:
        item = etree.SubElement(root, q("xds", "DocumentRequest"))
        if home is not None:
            etree.SubElement(item, q("xds", "HomeCommunityId")).text = home
        etree.SubElement(item, q("xds", "RepositoryUniqueId")).text = repository
        etree.SubElement(item, q("xds", "DocumentUniqueId")).text = document
    return root


def xop_decoded(payload: Any, attachments: list[Attachment]) -> Any:
    """The XOP infoset: each ``xop:Include`` replaced by the base64 of its part (what schemas validate)."""
    parts = {a.content_id: a for a in attachments}
    decoded = copy.deepcopy(payload)
    for include in decoded.iter(q("xop", "Include")):
        parent = include.getparent()
        parent.remove(include)
        parent.text = base64.b64encode(parts[content_id(include.get("href"))].read()).decode("ascii")
    return decoded


def part(directory: Path, content_id: str, data: bytes, content_type: str = "text/xml") -> Attachment:
    """A file-backed MTOM part, as the SOAP consumer spools them."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"part-{len(list(directory.iterdir()))}"
    path.write_bytes(data)
    return Attachment(content_id, content_type, path=str(path))


def errors(response: Any) -> list[tuple[str, str]]:
    """(errorCode, location) of each RegistryError of a RegistryResponse (or of the one inside a retrieve response)."""
    return [(e.get("errorCode"), e.get("location", "")) for e in response.iter(q("rs", "RegistryError"))]


def status(response: Any) -> str:
    node = response if response.tag == q("rs", "RegistryResponse") else response.find(q("rs", "RegistryResponse"))
    return str(node.get("status")).rsplit(":", 1)[-1]


def rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(documents).order_by(documents.c.unique_id)))


def blob_keys(store: LocalDiskStore) -> set[str]:
    return {b.key for b in store.scan()}


def entry_slots(submit: Any) -> dict[str, dict[str, list[str]]]:
    """{ExtrinsicObject id: {slot name: values}} of a SubmitObjectsRequest."""
    result: dict[str, dict[str, list[str]]] = {}
    for entry in submit.iter(q("rim", "ExtrinsicObject")):
        result[entry.get("id")] = {
            s.get("name"): [v.text for v in s.iter(q("rim", "Value"))] for s in entry.iterfind(q("rim", "Slot"))
        }
    return result


class Recorder:
    """A register callable that records what the repository sends and what ``inner`` answers.

    Without ``inner`` it is a stand-in registry that accepts everything (for
    tests of the repository's own bookkeeping).
    """

    def __init__(self, inner: Callable[[Any], Any] | None = None) -> None:
        self.inner = inner
        self.sent: list[Any] = []
        self.answers: list[Any] = []

    def __call__(self, submit: Any) -> Any:
        self.sent.append(copy.deepcopy(submit))
        answer = self.inner(submit) if self.inner is not None else ebxml.registry_response()
        self.answers.append(answer)
        return answer


def refusing_registry(code: str = "XDSUnknownPatientId", text: str = "unknown patient") -> Callable[[Any], Any]:
    """A stand-in registry that refuses every submission with ``code`` (for rollback tests)."""

    def register(submit: Any) -> Any:
        return ebxml.registry_response([XdsError(text, code=code, location="Document01")])

    return register
