"""The EMPI behind the registry: ITI-8 feed and ITI-9 PIX over MLLP (routes/hl7-in.yaml), then XDS over SOAP.

A Document Source registers its patient (ADT^A01), asks the PIX Manager for the
affinity-domain ID (QBP^Q23 naming the master domain of config/empi.yaml) and
submits under it at once. A merge (ADT^A40) then shows in the registry: the
survivor's queries find the merged patient's documents, under the survivor's
ID, and the merged ID takes no new submissions.
"""

from __future__ import annotations

import uuid

from profiles.empi.config import load_empi_config
from profiles.xds import ebxml
from tests.xds import samples
from tests.xds_e2e.harness import MllpClient, RunningEngine, segment
from tests.xds_e2e.zeep_xds import (
    APPROVED,
    XdsClient,
    document_unique_ids,
    failed,
    find_documents,
    identifier,
    of_kind,
    ok,
    quoted,
    slot,
    unique_ids,
)

HIS = "HIS1&1.2.3.1&ISO"
MASTER = load_empi_config().master_domain


def msh(kind: str, control: str, stamp: str) -> str:
    return f"MSH|^~\\&|HIS1|HOSP|EMPI|REGION|{stamp}||{kind}|{control}|P|2.5|||||||UNICODE UTF-8"


def feed(mllp: MllpClient, trigger: str, pid_segment: str, stamp: str, *extra: str) -> None:
    structure = "ADT_A39" if trigger == "A40" else "ADT_A01"
    control = uuid.uuid4().hex[:12]
    header = msh(f"ADT^{trigger}^{structure}", control, stamp)
    message = "\r".join([header, f"EVN|{trigger}|{stamp}", pid_segment, *extra])
    ack = mllp.call(message)
    assert segment(ack, "MSA")[1:3] == ["AA", control], ack


def master_id(mllp: MllpClient, local_id: str) -> str:
    """ITI-9: the patient's ID in the master domain, as an XDS patient ID (CX with the OID)."""
    control = uuid.uuid4().hex[:12]
    master = f"{MASTER.namespace}&{MASTER.universal_id}&{MASTER.universal_id_type}"
    query = f"QPD|IHE PIX Query|{control}|{local_id}^^^{HIS}|^^^{master}"
    rsp = mllp.call("\r".join([msh("QBP^Q23^QBP_Q21", control, "20261129080500"), query, "RCP|I"]))
    assert segment(rsp, "MSA")[1] == "AA" and segment(rsp, "QAK")[2] == "OK", rsp
    [value] = [rep.split("^")[0] for rep in segment(rsp, "PID")[3].split("~") if rep.split("^")[3] == master]
    return f"{value}^^^&{MASTER.universal_id}&ISO"


def provide(client: XdsClient, pid: str, local_id: str) -> str:
    """ITI-41 of one document for ``pid``; its uniqueId."""
    source = f"{local_id}^^^&1.2.3.1&ISO"
    submit = samples.submission(pid, document={"source_patient_id": source})
    ok(client.provide(submit, {"Document01": samples.CONTENT}))
    return unique_ids(submit)[0]


def test_registered_patient_receives_documents_and_a_merge_shows_in_the_registry(
    xds: RunningEngine, client: XdsClient
) -> None:
    a_local, b_local = f"A{uuid.uuid4().hex[:8]}", f"B{uuid.uuid4().hex[:8]}"
    with MllpClient(xds.mllp_port) as mllp:
        feed(mllp, "A01", f"PID|1||{a_local}^^^{HIS}^MR||张^伟||19700101|M", "20261129080000")
        a_master = master_id(mllp, a_local)
        a_doc = provide(client, a_master, a_local)  # at once after the feed: no other step needed

        feed(mllp, "A01", f"PID|1||{b_local}^^^{HIS}^MR||李^娜||19920202|F", "20261129081000")
        b_master = master_id(mllp, b_local)
        assert b_master != a_master
        b_doc = provide(client, b_master, b_local)
        assert document_unique_ids(find_documents(client, a_master)) == [a_doc]

        pid_a = f"PID|1||{a_local}^^^{HIS}^MR||张^伟||19700101|M"
        feed(mllp, "A40", pid_a, "20261129090000", f"MRG|{b_local}^^^{HIS}")
        assert master_id(mllp, a_local) == a_master  # the survivor keeps its master ID

    merged = find_documents(client, a_master)
    assert document_unique_ids(merged) == sorted([a_doc, b_doc])
    entries = {identifier(e, ebxml.DE_UNIQUE_ID): e for e in of_kind(merged, "ExtrinsicObject")}
    # the registry answers with the survivor's ID; the source's own patient ID stays as submitted
    assert {uid: identifier(e, ebxml.DE_PATIENT_ID) for uid, e in entries.items()} == {a_doc: a_master, b_doc: a_master}
    assert slot(entries[b_doc], "sourcePatientId") == [f"{b_local}^^^&1.2.3.1&ISO"]
    by_id = ok(client.query("GetDocuments", {"$XDSDocumentEntryUniqueId": f"({quoted(b_doc)}, {quoted(a_doc)})"}))
    assert [identifier(e, ebxml.DE_PATIENT_ID) for e in of_kind(by_id, "ExtrinsicObject")] == [a_master, a_master]
    sets = ok(client.query("FindSubmissionSets", {"$XDSSubmissionSetPatientId": quoted(a_master),
                                                  "$XDSSubmissionSetStatus": APPROVED}))  # fmt: skip
    packages = of_kind(sets, "RegistryPackage")
    assert [identifier(p, ebxml.SS_PATIENT_ID) for p in packages] == [a_master, a_master]

    # the subsumed ID takes no new documents, neither through the repository nor the registry
    before = xds.counts()
    late = samples.submission(b_master)
    answer = client.provide(late, {"Document01": samples.CONTENT})
    assert failed(answer) == [("XDSUnknownPatientId", "SubmissionSet01")]
    assert failed(client.register(samples.submission(b_master))) == [("XDSUnknownPatientId", "SubmissionSet01")]
    assert xds.counts() == before
    assert failed(client.retrieve(("1.2.156.112.9999.3.1", unique_ids(late)[0]))) == [
        ("XDSDocumentUniqueIdError", unique_ids(late)[0])
    ]


def test_an_identifier_the_empi_never_issued_is_refused(xds: RunningEngine, client: XdsClient) -> None:
    local = f"C{uuid.uuid4().hex[:8]}"
    with MllpClient(xds.mllp_port) as mllp:
        feed(mllp, "A01", f"PID|1||{local}^^^{HIS}^MR||王^芳||19800808|F", "20261129100000")
        real = master_id(mllp, local)
    forged = f"{real.split('^')[0]}X^^^&{MASTER.universal_id}&ISO"
    answer = client.provide(samples.submission(forged), {"Document01": samples.CONTENT})
    assert failed(answer) == [("XDSUnknownPatientId", "SubmissionSet01")]
    local_id_instead = f"{local}^^^&1.2.3.1&ISO"  # the HIS's own ID is not the affinity domain's
    assert failed(client.register(samples.submission(local_id_instead))) == [("XDSUnknownPatientId", "SubmissionSet01")]
