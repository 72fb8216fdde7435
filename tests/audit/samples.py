"""One event of every kind the platform records, built by the factories with realistic values."""

from __future__ import annotations

from esb.audit import events as e
from esb.audit.model import AuditEvent, SopClassCount

HIS = e.Party("HIS1|HOSP", "10.1.2.3")
EMPI = e.this_node("EMPI|REGION")
CONSUMER = e.Party("http://consumer.example/reply", "10.1.2.4")
REPOSITORY = e.this_node("http://127.0.0.1:8080/xds/repository")
MODALITY = e.Party("CT01", "10.1.2.5")
ARCHIVE = e.this_node("ESB")
PATIENT = "P123^^^&1.2.156.1.1&ISO"
STUDY = "1.2.826.0.1.3680043.8.498.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def every_event() -> dict[str, AuditEvent]:
    return {
        "application start": e.application_activity(started=True, node="node-1", user="esb"),
        "application stop": e.application_activity(started=False, node="node-1"),
        "user login refused": e.user_authentication(user="alice", success=False, peer_host="127.0.0.1",
                                                    method="password"),  # fmt: skip
        "user logout": e.user_authentication(user="alice", success=True, peer_host=None, method="token", logout=True),
        "node authentication failure": e.node_authentication_failure(
            local="mllp:2575", peer_host="127.0.0.1", peer_port=51234, reason="certificate not allowed",
            subject="CN=rogue",
        ),  # fmt: skip
        "ws-security alert": e.security_alert(kind="ws-security", detail="signature invalid", peer_host="10.0.0.9"),
        "clock alert": e.security_alert(kind="clock-offset", detail="offset 3.2s over 1s"),
        "admin read of patients": e.admin_operation(user="alice", permission="empi.read", granted=True,
                                                    target="patient", patient_ids=(PATIENT,)),  # fmt: skip
        "admin refused": e.admin_operation(user="bob", permission="empi.merge", granted=False, target="patient",
                                           patient_ids=(PATIENT, "P9^^^HIS1")),  # fmt: skip
        "admin operation": e.admin_operation(user="alice", permission="deadletter.manage", granted=True,
                                             target="queue"),
        "audit log used": e.audit_log_used(user="officer", log_uri="sqlite:///var/esb.db#esb_audit_records",
                                           query='{"patient": "P123"}'),  # fmt: skip
        "patient created (ITI-8)": e.patient_record(action="C", patient_id=PATIENT, source=HIS, destination=EMPI,
                                                    message_id="MSG0001"),  # fmt: skip
        "patient merged away (ITI-8)": e.patient_record(action="D", patient_id="P9^^^HIS1", source=HIS,
                                                        destination=EMPI, message_id="MSG0002"),  # fmt: skip
        "patient updated (ITI-44)": e.patient_record(action="U", patient_id=PATIENT, source=HIS, destination=EMPI,
                                                     transaction="ITI-44", message_id="1.2.3^msg7", human="alice"),
        "PIX query (ITI-9)": e.patient_query(
            transaction="ITI-9", source=HIS, destination=EMPI, query=b"QPD|IHE PIX Query|q1|P1^^^HIS1",
            patient_ids=[PATIENT], message_id="q1", query_tag="q1",
        ),
        "PDQ query (ITI-21)": e.patient_query(
            transaction="ITI-21", source=HIS, destination=EMPI, query=b"QPD|IHE PDQ Query|q2|@PID.5.1^WANG",
            patient_ids=[PATIENT, "P9^^^HIS1"], message_id="q2",
        ),
        "provide and register (ITI-41)": e.document_import(
            transaction="ITI-41", source=CONSUMER, destination=REPOSITORY, submission_set_uid="1.2.3.4.5",
            patient_id=PATIENT, human="dr.li",
        ),  # fmt: skip
        "register (ITI-42)": e.document_import(transaction="ITI-42", source=REPOSITORY, destination=EMPI,
                                               submission_set_uid="1.2.3.4.6", outcome=8),  # fmt: skip
        "retrieve (ITI-43)": e.document_export(
            source=REPOSITORY, destination=CONSUMER,
            documents=[e.DocumentRef("1.2.3.9", "1.2.3.100", "urn:oid:1.2.3"), e.DocumentRef("1.2.3.10")],
        ),  # fmt: skip
        "registry query (ITI-18)": e.registry_query(
            source=CONSUMER, destination=REPOSITORY, query_id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
            query=b"<query:AdhocQueryRequest/>", patient_id=PATIENT,
        ),  # fmt: skip
        "instances stored (C-STORE)": e.dicom_instances_transferred(
            action="C", source=MODALITY, destination=ARCHIVE, study_uid=STUDY, patient_id="P1^^^HIS1",
            sop_classes=[SopClassCount(CT, 120), SopClassCount("1.2.840.10008.5.1.4.1.1.88.59", 1, ("1.2.3.77",))],
            accessions=("A1001",),
        ),  # fmt: skip
        "instances moved (C-MOVE)": e.dicom_instances_transferred(
            action="R", source=ARCHIVE, destination=e.Party("VIEWER", "10.0.0.8"), study_uid=STUDY, patient_id="",
            sop_classes=[SopClassCount(CT, 3)], requestor="other", other=e.Party("WORKSTATION", "10.0.0.7"),
            outcome=4, description="1 instance(s) not transferred",
        ),  # fmt: skip
        "imaging document set (RAD-69)": e.dicom_instances_transferred(
            action="R", source=ARCHIVE, destination=CONSUMER, study_uid=STUDY, patient_id="P1^^^HIS1",
            sop_classes=[SopClassCount(CT, 2)], requestor="destination", transaction="RAD-69",
        ),  # fmt: skip
        "C-FIND": e.dicom_query(source=MODALITY, destination=ARCHIVE, sop_class_uid="1.2.840.10008.5.1.4.1.2.2.1",
                                query=b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ", transfer_syntax="1.2.840.10008.1.2"),
    }  # fmt: skip
