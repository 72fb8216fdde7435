"""ITI-43 Retrieve Document Set on the repository side (ITI TF-2b 3.43.4.2).

Each DocumentRequest names (RepositoryUniqueId, DocumentUniqueId). A request
for another repository gets XDSUnknownRepositoryId, an unknown document
XDSDocumentUniqueIdError, each with its own RegistryError; the status is
Success when every document was found, PartialSuccess when some were, Failure
when none. Found documents go out as MTOM parts: the payload holds
``<xop:Include href="cid:..."/>`` and the parts are file-backed attachments
pointing into the store when it is on local disk, so the SOAP layer streams
them and never holds a large document in memory.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lxml import etree
from sqlalchemy import Engine

from esb.errors import XdsError
from esb.exchange import Attachment
from esb.storage import BlobNotFoundError, BlobStore
from profiles.xds import ebxml
from profiles.xds.ebxml import q
from profiles.xds.repository import records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentRequest:
    repository_unique_id: str
    document_unique_id: str
    home_community_id: str


def parse(request: Any) -> list[DocumentRequest]:
    """The DocumentRequests of an ``xds:RetrieveDocumentSetRequest`` (XdsError if it is something else or empty)."""
    if request.tag != q("xds", "RetrieveDocumentSetRequest"):
        raise XdsError(f"expected xds:RetrieveDocumentSetRequest, got {request.tag}", code="XDSRepositoryError")
    items = [
        DocumentRequest(
            (item.findtext(q("xds", "RepositoryUniqueId")) or "").strip(),
            (item.findtext(q("xds", "DocumentUniqueId")) or "").strip(),
            (item.findtext(q("xds", "HomeCommunityId")) or "").strip(),
        )
        for item in request.iterfind(q("xds", "DocumentRequest"))
    ]
    if not items:
        raise XdsError("RetrieveDocumentSetRequest without DocumentRequest", code="XDSRepositoryError")
    return items


def new_content_id() -> str:
    """A content id for an MTOM part (RFC 2392 ``addr-spec`` form, unique per part)."""
    return f"{uuid.uuid4().hex}@xds.esb"


def _attachment(store: BlobStore, key: str, mime_type: str) -> Attachment:
    cid = new_content_id()
    path = store.local_path(key)
    if path is not None:
        return Attachment(cid, mime_type, path=path)
    with store.open(key) as stream:  # object stores: in memory until they can spool or stream
        return Attachment(cid, mime_type, data=stream.read())


def _document_response(found: DocumentRequest, row: Any, part: Attachment, home: str) -> Any:
    node = etree.Element(q("xds", "DocumentResponse"))
    if home:
        etree.SubElement(node, q("xds", "HomeCommunityId")).text = home
    etree.SubElement(node, q("xds", "RepositoryUniqueId")).text = found.repository_unique_id
    etree.SubElement(node, q("xds", "DocumentUniqueId")).text = found.document_unique_id
    etree.SubElement(node, q("xds", "mimeType")).text = row.mime_type
    document = etree.SubElement(node, q("xds", "Document"))
    etree.SubElement(document, q("xop", "Include"), href="cid:" + quote(part.content_id, safe="@"))
    return node


def response(errors: list[XdsError], found: list[Any], *, partial: bool) -> Any:
    """``xds:RetrieveDocumentSetResponse``: the RegistryResponse, then the DocumentResponses."""
    node = etree.Element(q("xds", "RetrieveDocumentSetResponse"), nsmap={"xds": ebxml.XDS, "xop": ebxml.XOP})
    node.append(ebxml.registry_response(errors, partial=partial))
    for item in found:
        node.append(item)
    return node


def retrieve(
    engine: Engine, store: BlobStore, repository_unique_id: str, home_community_id: str, request: Any
) -> tuple[Any, list[Attachment]]:
    """Answer an ITI-43 request: the response payload and the attachments its xop:Include hrefs name."""
    try:
        wanted = parse(request)
    except XdsError as exc:
        return response([exc], [], partial=False), []
    ours = [w.document_unique_id for w in wanted if w.repository_unique_id == repository_unique_id]
    with engine.connect() as conn:
        rows = records.find(conn, repository_unique_id, ours)
    errors: list[XdsError] = []
    found: list[Any] = []
    attachments: list[Attachment] = []
    for item in wanted:
        if item.repository_unique_id != repository_unique_id:
            errors.append(
                XdsError(
                    f"repositoryUniqueId {item.repository_unique_id!r} is not this repository ({repository_unique_id})",
                    code="XDSUnknownRepositoryId",
                    location=item.repository_unique_id,
                )
            )
            continue
        row = rows.get(item.document_unique_id)
        part = None
        if row is not None:
            try:
                part = _attachment(store, row.storage_key, row.mime_type)
            except BlobNotFoundError:
                log.error("XDS repository: the blob of a stored document is missing (key %s)", row.storage_key)
        if row is None or part is None:
            errors.append(
                XdsError(
                    f"document {item.document_unique_id!r} is not available in this repository",
                    code="XDSDocumentUniqueIdError",
                    location=item.document_unique_id,
                )
            )
            continue
        found.append(_document_response(item, row, part, home_community_id))
        attachments.append(part)
    return response(errors, found, partial=bool(found)), attachments
