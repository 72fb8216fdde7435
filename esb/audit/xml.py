"""An :class:`AuditEvent` as the DICOM audit message XML (PS3.15 A.5.1, root ``AuditMessage``).

The schema (``xsd/audit/dicom-audit.rng``) fixes the element order: EventIdentification,
ActiveParticipant+, AuditSourceIdentification, ParticipantObjectIdentification*;
inside each, the child elements in the order written here. Values the schema
types as base64Binary (ParticipantObjectQuery, ParticipantObjectDetail/@value)
are encoded here, so callers pass bytes. Attributes holding free text are
cleaned of characters XML 1.0 cannot carry, which a hostile peer's certificate
subject or query could otherwise smuggle in and make the record unwritable.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from functools import cache
from pathlib import Path

from lxml import etree

from esb.audit.model import AuditEvent, AuditSource, Code, ParticipantObject
from esb.settings import PACKAGE_ROOT

SCHEMA_FILE = PACKAGE_ROOT / "xsd" / "audit" / "dicom-audit.rng"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _token(value: str) -> str:
    """xsd:token: no leading, trailing or repeated whitespace, no tabs or line breaks."""
    return " ".join(_text(value).split())


def timestamp(moment: dt.datetime) -> str:
    """xsd:dateTime in UTC with milliseconds (``2024-05-01T08:00:00.123Z``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _coded(parent: etree._Element, tag: str, code: Code) -> None:
    etree.SubElement(
        parent,
        tag,
        {"csd-code": _token(code.code), "codeSystemName": _token(code.system), "originalText": _token(code.meaning)},
    )


def _object(root: etree._Element, obj: ParticipantObject) -> None:
    node = etree.SubElement(root, "ParticipantObjectIdentification", ParticipantObjectID=_token(obj.object_id))
    for name, value in (
        ("ParticipantObjectTypeCode", obj.type_code),
        ("ParticipantObjectTypeCodeRole", obj.role),
        ("ParticipantObjectDataLifeCycle", obj.life_cycle),
    ):
        if value is not None:
            node.set(name, value)
    _coded(node, "ParticipantObjectIDTypeCode", obj.id_type)
    if obj.query is not None:
        etree.SubElement(node, "ParticipantObjectQuery").text = base64.b64encode(obj.query).decode("ascii")
    else:
        etree.SubElement(node, "ParticipantObjectName").text = _token(obj.name or obj.object_id)
    for detail in obj.details:
        value = base64.b64encode(detail.value).decode("ascii")
        etree.SubElement(node, "ParticipantObjectDetail", type=_token(detail.type), value=value)
    if obj.sop_classes or obj.accessions:
        description = etree.SubElement(node, "ParticipantObjectDescription")
        for accession in obj.accessions:
            etree.SubElement(description, "Accession", Number=_token(accession))
        for sop in obj.sop_classes:
            sop_node = etree.SubElement(description, "SOPClass", NumberOfInstances=str(sop.count))
            if sop.uid:
                sop_node.set("UID", _token(sop.uid))
            for uid in sop.instances:
                etree.SubElement(sop_node, "Instance", UID=_token(uid))


def element(event: AuditEvent, source: AuditSource) -> etree._Element:
    """The ``AuditMessage`` element; ``event.source`` wins over ``source`` when the event names its own."""
    root = etree.Element("AuditMessage")
    ident = etree.SubElement(root, "EventIdentification", EventActionCode=event.action,
                             EventDateTime=timestamp(event.at), EventOutcomeIndicator=str(event.outcome))  # fmt: skip
    _coded(ident, "EventID", event.event_id)
    for kind in event.type_codes:
        _coded(ident, "EventTypeCode", kind)
    if event.outcome_description:
        etree.SubElement(ident, "EventOutcomeDescription").text = _text(event.outcome_description)
    for who in event.participants:
        node = etree.SubElement(root, "ActiveParticipant", UserID=_text(who.user_id),
                                UserIsRequestor="true" if who.requestor else "false")  # fmt: skip
        if who.alternative_user_id:
            node.set("AlternativeUserID", _text(who.alternative_user_id))
        if who.user_name:
            node.set("UserName", _text(who.user_name))
        if who.access_point:
            node.set("NetworkAccessPointID", _token(who.access_point))
            node.set("NetworkAccessPointTypeCode", who.access_point_type or "1")
        for role in who.roles:
            _coded(node, "RoleIDCode", role)
    reporter = event.source or source
    audit_source = etree.SubElement(root, "AuditSourceIdentification", AuditSourceID=_token(reporter.source_id))
    if reporter.site_id:
        audit_source.set("AuditEnterpriseSiteID", _token(reporter.site_id))
    for code in reporter.type_codes:
        etree.SubElement(audit_source, "AuditSourceTypeCode", {"csd-code": code})
    for obj in event.objects:
        _object(root, obj)
    return root


def render(event: AuditEvent, source: AuditSource) -> str:
    """The message as sent: an XML declaration and one line (syslog receivers split on none)."""
    body = etree.tostring(element(event, source), encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>' + body


@cache
def schema(path: Path = SCHEMA_FILE) -> etree.RelaxNG:
    """The DICOM audit message schema, compiled once per process."""
    return etree.RelaxNG(etree.parse(str(path)))


def problems(xml: str | bytes) -> list[str]:
    """Why a message does not validate against the schema; empty when it does."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    document = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    checker = schema()
    if checker.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in checker.error_log]
