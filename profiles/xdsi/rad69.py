"""RAD-69 Retrieve Imaging Document Set at the Imaging Document Source (RAD TF-3 4.69).

The request (``iherad:RetrieveImagingDocumentSetRequest``, namespace
``urn:ihe:rad:xdsi-b:2009``) names instances study by study and series by
series; each ``xds:DocumentRequest`` (namespace ``urn:ihe:iti:xds-b:2007``)
carries the RepositoryUniqueId from the KOS's Retrieve Location UID and the
SOP Instance UID as DocumentUniqueId; ``TransferSyntaxUIDList`` lists what
the consumer can decode. The answer is an ITI-43 ``xds:RetrieveDocumentSetResponse``
(RAD TF-3 4.69.4.2.2): one DocumentResponse per instance delivered, as an
``application/dicom`` MTOM part in one of the requested syntaxes (the stored
one when listed, else transcoded: lossless first, lossy if the policy allows).

Per instance, as ITI-43 does: another repository is XDSUnknownRepositoryId,
an instance this source does not have in that study and series is
XDSDocumentUniqueIdError, and one no requested syntax can carry is
``urn:dicom:wado:0007`` (or ``urn:dicom:wado:0006`` when none of the listed
syntaxes is one this source writes at all), the codes DICOM PS3.18 defines for
the same Retrieve Imaging Document Set action; the location is the
DocumentUniqueId. Status: Success, PartialSuccess when some instances went
out, Failure when none did.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lxml import etree
from pydicom import dcmread
from pydicom.dataset import Dataset

from esb.errors import DicomError, XdsError
from esb.exchange import Attachment
from profiles.dicom import transcode
from profiles.dicom.api import ArchiveApi, InstanceRef
from profiles.xds import ebxml
from profiles.xds.ebxml import q
from profiles.xdsi.config import XdsiConfig

log = logging.getLogger(__name__)

XDSI = "urn:ihe:rad:xdsi-b:2009"
ACTION_RAD69 = "urn:ihe:rad:2009:RetrieveImagingDocumentSet"
#: the answer is ITI-43's, so is its Action
RESPONSE_ACTION = ebxml.response_action(ebxml.ACTION_ITI43)
REQUEST_TAG = f"{{{XDSI}}}RetrieveImagingDocumentSetRequest"
MIME_TYPE = "application/dicom"
SYNTAX_NOT_SUPPORTED = "urn:dicom:wado:0006"
SYNTAX_NOT_POSSIBLE = "urn:dicom:wado:0007"


def xi(local: str) -> str:
    return f"{{{XDSI}}}{local}"


@dataclass(frozen=True)
class InstanceRequest:
    study_uid: str
    series_uid: str
    repository_unique_id: str
    document_unique_id: str
    home_community_id: str = ""


@dataclass(frozen=True)
class Rad69Request:
    instances: list[InstanceRequest]
    transfer_syntaxes: list[str]


def parse(request: Any) -> Rad69Request:
    """The instances and syntaxes asked for; XdsError (XDSRepositoryError) when the request is not one."""
    if request.tag != REQUEST_TAG:
        raise XdsError(
            f"expected iherad:RetrieveImagingDocumentSetRequest, got {request.tag}", code="XDSRepositoryError"
        )
    items: list[InstanceRequest] = []
    for study in request.iterfind(xi("StudyRequest")):
        study_uid = (study.get("studyInstanceUID") or "").strip()
        for series in study.iterfind(xi("SeriesRequest")):
            series_uid = (series.get("seriesInstanceUID") or "").strip()
            if not study_uid or not series_uid:
                raise XdsError(
                    "StudyRequest needs studyInstanceUID and SeriesRequest seriesInstanceUID", code="XDSRepositoryError"
                )
            # DocumentRequest is the XDS.b element; a request in the RAD namespace is read the same way
            for document in [*series.iterfind(q("xds", "DocumentRequest")), *series.iterfind(xi("DocumentRequest"))]:
                ns = etree.QName(document).namespace
                items.append(
                    InstanceRequest(
                        study_uid,
                        series_uid,
                        (document.findtext(f"{{{ns}}}RepositoryUniqueId") or "").strip(),
                        (document.findtext(f"{{{ns}}}DocumentUniqueId") or "").strip(),
                        (document.findtext(f"{{{ns}}}HomeCommunityId") or "").strip(),
                    )
                )
    listed = request.iterfind(f"{xi('TransferSyntaxUIDList')}/{xi('TransferSyntaxUID')}")
    syntaxes = [text for text in ((t.text or "").strip() for t in listed) if text]
    if not items:
        raise XdsError("RetrieveImagingDocumentSetRequest names no DocumentRequest", code="XDSRepositoryError")
    if not syntaxes:
        raise XdsError("RetrieveImagingDocumentSetRequest without TransferSyntaxUID", code="XDSRepositoryError")
    return Rad69Request(items, syntaxes)


def new_content_id() -> str:
    return f"{uuid.uuid4().hex}@xdsi.esb"


class ImagingDocumentSource:
    """RAD-69 over an archive: ``retrieve(request_element) -> (response_element, attachments)``."""

    def __init__(
        self, archive: ArchiveApi, config: XdsiConfig, *, policy: transcode.TranscodePolicy | None = None
    ) -> None:
        self.archive = archive
        self.config = config
        self.policy = policy or transcode.TranscodePolicy()

    def retrieve(self, request: Any) -> tuple[Any, list[Attachment]]:
        """Answer a RAD-69 request; problems are RegistryErrors in the answer, never exceptions."""
        try:
            wanted = parse(request)
        except XdsError as exc:
            return response([exc], [], partial=False), []
        errors: list[XdsError] = []
        found: list[Any] = []
        attachments: list[Attachment] = []
        series_cache: dict[tuple[str, str], dict[str, InstanceRef]] = {}
        for item in wanted.instances:
            try:
                part = self._one(item, wanted.transfer_syntaxes, series_cache)
            except XdsError as exc:
                errors.append(exc)
                continue
            found.append(self._document_response(item, part))
            attachments.append(part)
        log.info("RAD-69: %d of %d instance(s) delivered", len(found), len(wanted.instances))
        return response(errors, found, partial=bool(found)), attachments

    def _one(
        self, item: InstanceRequest, syntaxes: Sequence[str], cache: dict[tuple[str, str], dict[str, InstanceRef]]
    ) -> Attachment:
        uid = item.document_unique_id
        if item.repository_unique_id != self.config.repository_unique_id:
            raise XdsError(
                f"repositoryUniqueId {item.repository_unique_id!r} is not this Imaging Document Source "
                f"({self.config.repository_unique_id})",
                code="XDSUnknownRepositoryId",
                location=item.repository_unique_id,
            )
        key = (item.study_uid, item.series_uid)
        if key not in cache:
            cache[key] = {ref.sop_instance_uid: ref for ref in self._series(*key)}
        ref = cache[key].get(uid)
        if ref is None:
            raise XdsError(
                f"instance {uid} is not in series {item.series_uid} of study {item.study_uid} here",
                code="XDSDocumentUniqueIdError",
                location=uid,
            )
        return self._part(ref, syntaxes)

    def _series(self, study_uid: str, series_uid: str) -> list[InstanceRef]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        try:
            refs = self.archive.select("SERIES", ds)
        except DicomError:
            return []
        return [r for r in refs if r.study_uid == study_uid and r.series_uid == series_uid]

    def _part(self, ref: InstanceRef, syntaxes: Sequence[str]) -> Attachment:
        uid = ref.sop_instance_uid
        try:
            stream = self.archive.open(ref)
        except Exception as exc:
            log.warning("RAD-69: instance %s could not be read (%s)", uid, type(exc).__name__)
            raise XdsError(f"instance {uid} is not available now", code="XDSRepositoryError", location=uid) from None
        with stream:
            if ref.transfer_syntax in syntaxes:
                path = getattr(stream, "name", None)
                if isinstance(path, str) and ref.storage_key:  # a file in the store: the SOAP layer streams it
                    return Attachment(new_content_id(), MIME_TYPE, path=path)
                return Attachment(new_content_id(), MIME_TYPE, data=stream.read())
            data = stream.read()
        return Attachment(new_content_id(), MIME_TYPE, data=self._transcoded(uid, data, ref.transfer_syntax, syntaxes))

    def _transcoded(self, uid: str, data: bytes, stored: str, syntaxes: Sequence[str]) -> bytes:
        try:
            ds = dcmread(io.BytesIO(data))
        except Exception as exc:
            log.warning("RAD-69: stored instance %s is not readable (%s)", uid, type(exc).__name__)
            raise XdsError(f"instance {uid} could not be read", code="XDSRepositoryError", location=uid) from None
        target = transcode.negotiate(stored, syntaxes, transcode.pixel_info(ds), allow_lossy=self.policy.allow_lossy)
        if target is None:
            known = any(s in transcode.PRODUCIBLE for s in syntaxes)
            raise XdsError(
                f"instance {uid} (stored as {stored}) cannot be provided in any of {', '.join(syntaxes)}",
                code=SYNTAX_NOT_POSSIBLE if known else SYNTAX_NOT_SUPPORTED,
                location=uid,
            )
        try:
            return transcode.encode(ds, target, self.policy)
        except DicomError as exc:
            log.warning("RAD-69: transcoding %s to %s failed: %s", uid, target, exc.text)
            raise XdsError(
                f"instance {uid} could not be converted to {target}", code=SYNTAX_NOT_POSSIBLE, location=uid
            ) from None

    def _document_response(self, item: InstanceRequest, part: Attachment) -> Any:
        node = etree.Element(q("xds", "DocumentResponse"))
        if self.config.home_community_id:
            etree.SubElement(node, q("xds", "HomeCommunityId")).text = self.config.home_community_id
        etree.SubElement(node, q("xds", "RepositoryUniqueId")).text = item.repository_unique_id
        etree.SubElement(node, q("xds", "DocumentUniqueId")).text = item.document_unique_id
        etree.SubElement(node, q("xds", "mimeType")).text = MIME_TYPE
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


def request(instances: Sequence[tuple[str, str, str]], syntaxes: Sequence[str], *, repository_unique_id: str) -> Any:
    """A RAD-69 request for (study, series, SOP instance) triples: what an Imaging Document Consumer sends."""
    root = etree.Element(REQUEST_TAG, nsmap={"iherad": XDSI, "xds": ebxml.XDS})
    studies: dict[str, Any] = {}
    series_nodes: dict[tuple[str, str], Any] = {}
    for study_uid, series_uid, sop_uid in instances:
        if study_uid not in studies:
            studies[study_uid] = etree.SubElement(root, xi("StudyRequest"), studyInstanceUID=study_uid)
        if (study_uid, series_uid) not in series_nodes:
            series_nodes[study_uid, series_uid] = etree.SubElement(
                studies[study_uid], xi("SeriesRequest"), seriesInstanceUID=series_uid
            )
        document = etree.SubElement(series_nodes[study_uid, series_uid], q("xds", "DocumentRequest"))
        etree.SubElement(document, q("xds", "RepositoryUniqueId")).text = repository_unique_id
        etree.SubElement(document, q("xds", "DocumentUniqueId")).text = sop_uid
    syntax_list = etree.SubElement(root, xi("TransferSyntaxUIDList"))
    for syntax in syntaxes:
        etree.SubElement(syntax_list, xi("TransferSyntaxUID")).text = syntax
    return root
