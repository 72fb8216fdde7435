"""Every audit event the platform records is a valid DICOM audit message (PS3.15 A.5.1 schema),
with the codes the standards name; and the schema file really refuses what PS3.15 forbids."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from esb.audit import xml
from esb.audit.model import AuditSource
from tests.audit.samples import PATIENT, STUDY, every_event

SOURCE = AuditSource("node-1", "REGION-1")
EVENTS = every_event()


def parsed(name: str) -> etree._Element:
    return etree.fromstring(xml.render(EVENTS[name], SOURCE).encode("utf-8"))


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_event_validates_against_the_dicom_schema(name: str) -> None:
    assert xml.problems(xml.render(EVENTS[name], SOURCE)) == []


@pytest.mark.parametrize(
    ("name", "event_id", "action", "outcome", "type_code"),
    [
        ("application start", "110100", "E", "0", "110120"),
        ("application stop", "110100", "E", "0", "110121"),
        ("user login refused", "110114", "E", "4", "110122"),
        ("user logout", "110114", "E", "0", "110123"),
        ("node authentication failure", "110113", "E", "4", "110126"),
        ("ws-security alert", "110113", "E", "4", "110126"),
        ("admin read of patients", "110110", "R", "0", "empi.read"),
        ("admin refused", "110113", "E", "4", "110132"),
        ("audit log used", "110101", "R", "0", None),
        ("patient created (ITI-8)", "110110", "C", "0", "ITI-8"),
        ("patient merged away (ITI-8)", "110110", "D", "0", "ITI-8"),
        ("patient updated (ITI-44)", "110110", "U", "0", "ITI-44"),
        ("PIX query (ITI-9)", "110112", "E", "0", "ITI-9"),
        ("PDQ query (ITI-21)", "110112", "E", "0", "ITI-21"),
        ("provide and register (ITI-41)", "110107", "C", "0", "ITI-41"),
        ("register (ITI-42)", "110107", "C", "8", "ITI-42"),
        ("retrieve (ITI-43)", "110106", "R", "0", "ITI-43"),
        ("registry query (ITI-18)", "110112", "E", "0", "ITI-18"),
        ("instances stored (C-STORE)", "110104", "C", "0", None),
        ("imaging document set (RAD-69)", "110104", "R", "0", "RAD-69"),
        ("C-FIND", "110112", "E", "0", None),
    ],
)
def test_event_identification_codes(name: str, event_id: str, action: str, outcome: str, type_code: str | None) -> None:
    ident = parsed(name).find("EventIdentification")
    assert ident is not None
    assert ident.find("EventID").get("csd-code") == event_id  # type: ignore[union-attr]
    assert (ident.get("EventActionCode"), ident.get("EventOutcomeIndicator")) == (action, outcome)
    types = [t.get("csd-code") for t in ident.findall("EventTypeCode")]
    assert (types[0] if types else None) == type_code


def test_ihe_transaction_codes_carry_their_code_system_and_name() -> None:
    code = parsed("patient created (ITI-8)").find("EventIdentification/EventTypeCode")
    assert code is not None and dict(code.attrib) == {
        "csd-code": "ITI-8", "codeSystemName": "IHE Transactions", "originalText": "Patient Identity Feed",
    }  # fmt: skip


def test_patient_and_roles_of_a_feed() -> None:
    root = parsed("patient created (ITI-8)")
    source, destination = root.findall("ActiveParticipant")
    assert (source.get("UserID"), source.get("UserIsRequestor"), source.get("NetworkAccessPointTypeCode")) == (
        "HIS1|HOSP", "true", "2",
    )  # fmt: skip
    assert source.find("RoleIDCode").get("csd-code") == "110153"  # type: ignore[union-attr]
    assert destination.find("RoleIDCode").get("csd-code") == "110152"  # type: ignore[union-attr]
    patient = root.find("ParticipantObjectIdentification")
    assert patient is not None
    assert (patient.get("ParticipantObjectID"), patient.get("ParticipantObjectTypeCode"),
            patient.get("ParticipantObjectTypeCodeRole")) == (PATIENT, "1", "1")  # fmt: skip
    detail = patient.find("ParticipantObjectDetail")
    assert detail is not None and detail.get("type") == "MSH-10"
    assert base64.b64decode(detail.get("value", "")) == b"MSG0001"
    source_id = root.find("AuditSourceIdentification")
    assert source_id is not None
    assert (source_id.get("AuditSourceID"), source_id.get("AuditEnterpriseSiteID")) == ("node-1", "REGION-1")


def test_query_objects_carry_the_query_base64() -> None:
    root = parsed("PIX query (ITI-9)")
    query = [
        o for o in root.findall("ParticipantObjectIdentification") if o.get("ParticipantObjectTypeCodeRole") == "24"
    ]
    assert len(query) == 1
    assert base64.b64decode(query[0].findtext("ParticipantObjectQuery") or "") == b"QPD|IHE PIX Query|q1|P1^^^HIS1"
    assert query[0].find("ParticipantObjectIDTypeCode").get("csd-code") == "ITI-9"  # type: ignore[union-attr]


def test_submission_set_and_study_descriptions() -> None:
    submission = parsed("provide and register (ITI-41)").findall("ParticipantObjectIdentification")[1]
    assert submission.get("ParticipantObjectID") == "1.2.3.4.5"
    assert submission.find("ParticipantObjectIDTypeCode").get("csd-code") == (  # type: ignore[union-attr]
        "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
    )
    humans = [
        p for p in parsed("provide and register (ITI-41)").findall("ActiveParticipant") if p.get("UserID") == "dr.li"
    ]
    assert humans and humans[0].get("UserIsRequestor") == "true"
    study = parsed("instances stored (C-STORE)").find("ParticipantObjectIdentification")
    assert study is not None and study.get("ParticipantObjectID") == STUDY
    counts = {s.get("UID"): s.get("NumberOfInstances") for s in study.iter("SOPClass")}
    assert counts == {"1.2.840.10008.5.1.4.1.1.2": "120", "1.2.840.10008.5.1.4.1.1.88.59": "1"}
    assert study.find("ParticipantObjectDescription/Accession").get("Number") == "A1001"  # type: ignore[union-attr]


def test_text_a_peer_controls_cannot_break_the_message() -> None:
    from esb.audit import events

    event = events.node_authentication_failure(local="mllp:2575", peer_host="127.0.0.1", peer_port=1,
                                               reason="bad\x00cert <x> & \"y\"", subject="CN=a\x1bb")  # fmt: skip
    assert xml.problems(xml.render(event, SOURCE)) == []


def _mutated(name: str, change: str) -> bytes:
    root = parsed(name)
    if change == "no object name":
        obj = root.find("ParticipantObjectIdentification")
        assert obj is not None
        obj.remove(obj.find("ParticipantObjectName"))  # type: ignore[arg-type]
    elif change == "bad outcome":
        root.find("EventIdentification").set("EventOutcomeIndicator", "3")  # type: ignore[union-attr]
    elif change == "no originalText":
        del root.find("EventIdentification/EventID").attrib["originalText"]  # type: ignore[union-attr]
    elif change == "source before participants":
        source = root.find("AuditSourceIdentification")
        assert source is not None
        root.remove(source)
        root.insert(1, source)
    elif change == "query not base64":
        query = root.find("ParticipantObjectIdentification/ParticipantObjectQuery")
        assert query is not None
        query.text = "not base64!"
    return etree.tostring(root)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("patient created (ITI-8)", "no object name"),
        ("application start", "bad outcome"),
        ("application start", "no originalText"),
        ("application start", "source before participants"),
        ("registry query (ITI-18)", "query not base64"),
    ],
)
def test_the_schema_refuses_what_ps3_15_forbids(name: str, change: str) -> None:
    assert xml.problems(_mutated(name, change)) != []
