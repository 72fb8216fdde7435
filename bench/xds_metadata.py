"""What an XDS.b Document Source sends in ITI-41, for the benchmarks: metadata, patients, MTOM bodies.

A trimmed copy of ``tests/xds/samples.py`` (benchmarks do not import tests):
one SubmissionSet with one stable DocumentEntry, every attribute ITI TF-3
4.2.3 requires of a Document Source, fresh uniqueIds, the document as an
``xop:Include``. The patient is an EMPI master ID, as the registry demands;
:func:`add_patients` writes the ``esb_empi_persons`` rows a PIX feed would have.

:func:`streamed_package` is the MTOM body of one large document made up while
it is sent, so neither side of a 500 MB upload needs the document in memory
or on disk first; :func:`block` gives its content chunk by chunk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import sqlalchemy as sa
from lxml import etree

from profiles.xds import ebxml
from profiles.xds.ebxml import q

MIB = 1024 * 1024
MIME_TYPE = "application/pdf"
Code = tuple[str, str, str]
CLASS_CODE: Code = ("18748-4", "2.16.840.1.113883.6.1", "Diagnostic imaging study")
TYPE_CODE: Code = ("18782-3", "2.16.840.1.113883.6.1", "Radiology Study observation")
FORMAT_CODE: Code = ("urn:ihe:rad:PDF", "1.3.6.1.4.1.19376.1.2.3", "Radiology PDF")
CONFIDENTIALITY_CODE: Code = ("N", "2.16.840.1.113883.5.25", "Normal")
FACILITY_CODE: Code = ("22232009", "2.16.840.1.113883.6.96", "Hospital")
PRACTICE_CODE: Code = ("394914008", "2.16.840.1.113883.6.96", "Radiology")
EVENT_CODE: Code = ("CT", "1.2.840.10008.2.16.4", "Computed Tomography")
SOURCE_ID = "1.2.156.112.9999.5.1"
AUTHOR = "^Wang^Fang^^^Dr^MD"


def add_patients(engine: sa.Engine, count: int, master_oid: str) -> list[str]:
    """``count`` active EMPI persons; their XDS patient IDs (CX in the master domain)."""
    from profiles.empi.schema import persons

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ids = [uuid.uuid4().hex[:16] for _ in range(count)]
    rows: list[dict[str, Any]] = [
        {"id": i, "status": "active", "merged_into": None, "golden": {}, "created_at": now, "updated_at": now}
        for i in ids
    ]
    with engine.begin() as conn:
        conn.execute(persons.insert(), rows)
    return [f"{i}^^^&{master_oid}&ISO" for i in ids]


def new_oid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def _el(parent: Any, prefix: str, local: str, **attrs: str) -> Any:
    return etree.SubElement(parent, q(prefix, local), {k.rstrip("_"): v for k, v in attrs.items()})


def _slot(parent: Any, name: str, *values: str) -> None:
    value_list = _el(_el(parent, "rim", "Slot", name=name), "rim", "ValueList")
    for value in values:
        _el(value_list, "rim", "Value").text = value


def _name(parent: Any, text: str) -> None:
    _el(_el(parent, "rim", "Name"), "rim", "LocalizedString", value=text)


def _classification(parent: Any, scheme: str, code: Code) -> None:
    node = _el(parent, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=scheme,
               classifiedObject=parent.get("id"), nodeRepresentation=code[0])  # fmt: skip
    _slot(node, "codingScheme", code[1])
    _name(node, code[2])


def _author(parent: Any, scheme: str) -> None:
    node = _el(parent, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classificationScheme=scheme,
               classifiedObject=parent.get("id"), nodeRepresentation="")  # fmt: skip
    _slot(node, "authorPerson", AUTHOR)
    _slot(node, "authorInstitution", "Some Hospital^^^^^^^^^1.2.156.112.9999.6")


def _identifier(parent: Any, scheme: str, value: str, label: str) -> None:
    node = _el(parent, "rim", "ExternalIdentifier", id=f"urn:uuid:{uuid.uuid4()}", registryObject=parent.get("id"),
               identificationScheme=scheme, value=value)  # fmt: skip
    _name(node, label)


def _entry(objects: Any, patient_id: str, unique_id: str, size: int | None, sha1: str | None) -> None:
    entry = _el(objects, "rim", "ExtrinsicObject", id="Document01", mimeType=MIME_TYPE,
                objectType=ebxml.STABLE_DOCUMENT)  # fmt: skip
    _slot(entry, "creationTime", "20261129120000")
    if sha1 is not None:
        _slot(entry, "hash", sha1)
    _slot(entry, "languageCode", "zh-CN")
    _slot(entry, "serviceStartTime", "20261129110000")
    if size is not None:
        _slot(entry, "size", str(size))
    _slot(entry, "sourcePatientId", "H100^^^&1.2.156.112.9999.7&ISO")
    _slot(entry, "sourcePatientInfo", "PID-3|H100^^^&1.2.156.112.9999.7&ISO", "PID-8|F")
    _name(entry, "CT report")
    _author(entry, ebxml.DE_AUTHOR)
    for scheme, code in (
        (ebxml.DE_CLASS_CODE, CLASS_CODE), (ebxml.DE_CONFIDENTIALITY_CODE, CONFIDENTIALITY_CODE),
        (ebxml.DE_EVENT_CODE, EVENT_CODE), (ebxml.DE_FORMAT_CODE, FORMAT_CODE),
        (ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE, FACILITY_CODE), (ebxml.DE_PRACTICE_SETTING_CODE, PRACTICE_CODE),
        (ebxml.DE_TYPE_CODE, TYPE_CODE),
    ):  # fmt: skip
        _classification(entry, scheme, code)
    _identifier(entry, ebxml.DE_PATIENT_ID, patient_id, "XDSDocumentEntry.patientId")
    _identifier(entry, ebxml.DE_UNIQUE_ID, unique_id, "XDSDocumentEntry.uniqueId")


def _submission_set(objects: Any, patient_id: str) -> None:
    package = _el(objects, "rim", "RegistryPackage", id="SubmissionSet01")
    _slot(package, "submissionTime", "20261129120500")
    _name(package, "Submission")
    _author(package, ebxml.SS_AUTHOR)
    _classification(package, ebxml.SS_CONTENT_TYPE_CODE, CLASS_CODE)
    _el(package, "rim", "Classification", id=f"urn:uuid:{uuid.uuid4()}", classifiedObject="SubmissionSet01",
        classificationNode=ebxml.SUBMISSION_SET_NODE)  # fmt: skip
    _identifier(package, ebxml.SS_UNIQUE_ID, new_oid(), "XDSSubmissionSet.uniqueId")
    _identifier(package, ebxml.SS_SOURCE_ID, SOURCE_ID, "XDSSubmissionSet.sourceId")
    _identifier(package, ebxml.SS_PATIENT_ID, patient_id, "XDSSubmissionSet.patientId")


def provide_request(
    patient_id: str, content_id: str, *, unique_id: str, size: int | None = None, sha1: str | None = None
) -> bytes:
    """``xds:ProvideAndRegisterDocumentSetRequest`` with one document, sent as MTOM part ``content_id``.

    ``size`` and ``sha1`` are optional for a Document Source in ITI-41 (the
    repository computes both); given, the repository checks them.
    """
    root = etree.Element(q("xds", "ProvideAndRegisterDocumentSetRequest"), nsmap={"xds": ebxml.XDS})
    submit = etree.SubElement(root, q("lcm", "SubmitObjectsRequest"), nsmap={"lcm": ebxml.LCM, "rim": ebxml.RIM})
    objects = _el(submit, "rim", "RegistryObjectList")
    _submission_set(objects, patient_id)
    _entry(objects, patient_id, unique_id, size, sha1)
    member = _el(objects, "rim", "Association", id="Association01", associationType=ebxml.HAS_MEMBER,
                 sourceObject="SubmissionSet01", targetObject="Document01")  # fmt: skip
    _slot(member, "SubmissionSetStatus", "Original")
    document = _el(root, "xds", "Document", id="Document01")
    etree.SubElement(document, q("xop", "Include"), href=f"cid:{content_id}", nsmap={"xop": ebxml.XOP})
    return etree.tostring(root, encoding="utf-8")


# -- documents -------------------------------------------------------------------------


def block(size: int, seed: int = 1) -> Iterator[bytes]:
    """``size`` bytes of noise in pieces of at most 1 MiB: one random MiB, rotated for each piece."""
    base = random.Random(seed).randbytes(MIB)
    sent = 0
    turn = 0
    while sent < size:
        piece = (base[turn:] + base[:turn])[: size - sent]
        turn = (turn + 7919) % MIB
        sent += len(piece)
        yield piece


def digest(size: int, seed: int = 1) -> str:
    sha1 = hashlib.sha1()
    for piece in block(size, seed):
        sha1.update(piece)
    return sha1.hexdigest()


def streamed_package(
    envelope: bytes, content_id: str, size: int, digest_out: Any
) -> tuple[str, int, AsyncIterator[bytes]]:
    """``(Content-Type, Content-Length, body)`` of an MTOM request whose one part is :func:`block` (``size``).

    ``digest_out`` (a hashlib object) sees every byte of the document as it goes out.
    """
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.message@{uuid.uuid4().hex}.bench"
    head = (
        (
            f'--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{root_id}>\r\n\r\n"
        ).encode("ascii")
        + envelope
        + (
            f"\r\n--{boundary}\r\nContent-Type: {MIME_TYPE}\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{content_id}>\r\n\r\n"
        ).encode("ascii")
    )
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")

    async def body() -> AsyncIterator[bytes]:
        yield head
        for piece in block(size):
            digest_out.update(piece)
            yield piece
        yield tail

    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start="<{root_id}>"; '
        f'start-info="application/soap+xml"; action="{ebxml.ACTION_ITI41}"'
    )
    return content_type, len(head) + size + len(tail), body()
