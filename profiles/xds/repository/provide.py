"""ITI-41 on the repository side: pair documents with their metadata, stream them into the store, check.

ITI TF-2b 3.41.4.1.3: every DocumentEntry has exactly one document and every
document one DocumentEntry (XDSMissingDocument, XDSMissingDocumentMetadata);
the repository computes size and SHA-1 of each document as it stores it, and
refuses a submission whose own hash, size or repositoryUniqueId disagree
(XDSRepositoryMetadataError); a uniqueId twice in one submission is
XDSRepositoryDuplicateUniqueIdInMessage. Then it sets the three slots for the
Register Document Set-b (ITI-42) it sends on.

Documents come as ``<xop:Include href="cid:..."/>`` (MTOM, the bytes in an
:class:`~esb.exchange.Attachment`, streamed in chunks) or inline base64
(already in memory as XML text, decoded in memory).
"""

from __future__ import annotations

import base64
import binascii
import copy
import errno
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import unquote

from esb.errors import XdsError
from esb.exchange import Attachment
from esb.storage import BlobStore, StorageError, StoredBlob
from profiles.xds.ebxml import q
from profiles.xds.repository import metadata

METADATA_ERROR = "XDSRepositoryMetadataError"
#: every blob key the repository writes starts with this, so a sweep never touches another user's blobs
KEY_PREFIX = "xds-"


@dataclass
class Incoming:
    """One document of a submission: its DocumentEntry (in the copy sent to the registry) and its bytes."""

    entry: Any
    entry_id: str
    unique_id: str
    mime_type: str
    #: the MIME part (xop:Include) or the decoded inline bytes
    source: Attachment | bytes
    blob: StoredBlob | None = None

    def open(self) -> BinaryIO:
        return io.BytesIO(self.source) if isinstance(self.source, bytes) else self.source.open()

    @property
    def stored(self) -> StoredBlob:
        if self.blob is None:  # pragma: no cover - programming error
            raise RuntimeError(f"document {self.entry_id} is not stored yet")
        return self.blob


def combine(errors: Sequence[XdsError]) -> XdsError:
    """One error carrying all (the RegistryResponse lists every problem of the submission)."""
    flat = [item for error in errors for item in error.all()]
    first = flat[0]
    return XdsError(first.text, code=first.code, location=first.location, severity=first.severity, more=tuple(flat[1:]))


def content_id(href: str) -> str:
    """The bare content id of an xop:Include href (``cid:`` stripped, URL-decoded, no angle brackets)."""
    text = href.strip()
    if text[:4].lower() == "cid:":
        text = text[4:]
    return unquote(text).strip().strip("<>")


def _source(document: Any, parts: dict[str, Attachment]) -> Attachment | bytes:
    """The bytes of one xds:Document: the MIME part its xop:Include names, or its inline base64 text."""
    doc_id = document.get("id", "")
    include = document.find(q("xop", "Include"))
    if include is not None:
        href = include.get("href") or ""
        part = parts.get(content_id(href))
        if part is None:
            raise XdsError(
                f"document {doc_id}: xop:Include href {href!r} names no MIME part of the message",
                code="XDSMissingDocument",
                location=doc_id,
            )
        return part
    text = "".join((document.text or "").split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise XdsError(
            f"document {doc_id}: content is neither an xop:Include nor valid base64",
            code="XDSRepositoryError",
            location=doc_id,
        ) from None


def plan(request: Any, attachments: Sequence[Attachment], repository_unique_id: str) -> tuple[Any, list[Incoming]]:
    """Pair documents and DocumentEntries; a copy of the SubmitObjectsRequest for the registry and the documents.

    Raises one XdsError carrying every structural problem; nothing is stored yet.
    """
    if request.tag != q("xds", "ProvideAndRegisterDocumentSetRequest"):
        raise XdsError(
            f"expected xds:ProvideAndRegisterDocumentSetRequest, got {request.tag}", code="XDSRepositoryError"
        )
    original = request.find(q("lcm", "SubmitObjectsRequest"))
    if original is None:
        raise XdsError("ProvideAndRegisterDocumentSetRequest without lcm:SubmitObjectsRequest", code=METADATA_ERROR)
    submit = copy.deepcopy(original)
    parts = {a.content_id: a for a in attachments}
    errors: list[XdsError] = []
    documents: dict[str, Any] = {}
    for document in request.iterfind(q("xds", "Document")):
        doc_id = document.get("id", "")
        if doc_id in documents:
            errors.append(XdsError(f"document id {doc_id} appears twice", code=METADATA_ERROR, location=doc_id))
        documents[doc_id] = document
    entries = {entry.get("id", ""): entry for entry in metadata.document_entries(submit)}
    for doc_id in documents:
        if doc_id not in entries:
            errors.append(
                XdsError(
                    f"document {doc_id} has no DocumentEntry (ExtrinsicObject) in the metadata",
                    code="XDSMissingDocumentMetadata",
                    location=doc_id,
                )
            )
    incoming: list[Incoming] = []
    seen: dict[str, str] = {}
    for entry_id, entry in entries.items():
        uid = metadata.unique_id(entry)
        mime_type = (entry.get("mimeType") or "").strip()
        if not uid:
            errors.append(XdsError(f"DocumentEntry {entry_id} has no uniqueId", code=METADATA_ERROR, location=entry_id))
        elif uid in seen:
            errors.append(
                XdsError(
                    f"uniqueId {uid} is used by DocumentEntries {seen[uid]} and {entry_id}",
                    code="XDSRepositoryDuplicateUniqueIdInMessage",
                    location=uid,
                )
            )
        else:
            seen[uid] = entry_id
        if not mime_type:
            errors.append(XdsError(f"DocumentEntry {entry_id} has no mimeType", code=METADATA_ERROR, location=entry_id))
        errors.extend(_check_repository_id(entry, entry_id, repository_unique_id))
        if entry_id not in documents:
            errors.append(
                XdsError(
                    f"DocumentEntry {entry_id} has no document in the message",
                    code="XDSMissingDocument",
                    location=entry_id,
                )
            )
            continue
        try:
            source = _source(documents[entry_id], parts)
        except XdsError as exc:
            errors.append(exc)
            continue
        incoming.append(Incoming(entry, entry_id, uid, mime_type, source))
    if errors:
        raise combine(errors)
    return submit, incoming


def _check_repository_id(entry: Any, entry_id: str, ours: str) -> list[XdsError]:
    values = metadata.slot_values(entry, "repositoryUniqueId")
    if values is None or values == [ours]:
        return []
    return [
        XdsError(
            f"DocumentEntry {entry_id}: repositoryUniqueId {','.join(values)!r} is not this repository ({ours})",
            code=METADATA_ERROR,
            location=entry_id,
        )
    ]


def store(documents: Sequence[Incoming], blobs: BlobStore) -> None:
    """Stream each document into the store under a fresh key, computing size and SHA-1 on the way.

    Sets ``blob`` on each document as it is stored, so on any failure the
    caller knows exactly which blobs to delete.
    """
    for document in documents:
        key = KEY_PREFIX + uuid.uuid4().hex
        try:
            with document.open() as stream:
                document.blob = blobs.put(key, stream)
        except StorageError as exc:
            cause = exc.__cause__
            full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
            raise XdsError(
                f"document {document.entry_id} could not be stored",
                code="XDSRepositoryOutOfResources" if full else "XDSRepositoryError",
                location=document.entry_id,
            ) from exc
        except OSError as exc:  # the MIME part's spool file is gone or unreadable
            raise XdsError(
                f"document {document.entry_id} could not be read: {exc.strerror or type(exc).__name__}",
                code="XDSRepositoryError",
                location=document.entry_id,
            ) from exc


def check_and_set(documents: Sequence[Incoming], repository_unique_id: str) -> None:
    """Compare the source's hash and size with what was stored, then set hash, size and repositoryUniqueId."""
    errors: list[XdsError] = []
    for document in documents:
        blob = document.stored
        hashes = metadata.slot_values(document.entry, "hash")
        if hashes is not None and [h.lower() for h in hashes] != [blob.sha1]:
            errors.append(
                XdsError(
                    f"DocumentEntry {document.entry_id}: hash {','.join(hashes)!r} does not match the document "
                    f"(SHA-1 {blob.sha1})",
                    code=METADATA_ERROR,
                    location=document.entry_id,
                )
            )
        sizes = metadata.slot_values(document.entry, "size")
        if sizes is not None and not (len(sizes) == 1 and sizes[0].isdigit() and int(sizes[0]) == blob.size):
            errors.append(
                XdsError(
                    f"DocumentEntry {document.entry_id}: size {','.join(sizes)!r} does not match the document "
                    f"({blob.size} bytes)",
                    code=METADATA_ERROR,
                    location=document.entry_id,
                )
            )
    if errors:
        raise combine(errors)
    for document in documents:
        metadata.set_slot(document.entry, "hash", [document.stored.sha1])
        metadata.set_slot(document.entry, "size", [str(document.stored.size)])
        metadata.set_slot(document.entry, "repositoryUniqueId", [repository_unique_id])
