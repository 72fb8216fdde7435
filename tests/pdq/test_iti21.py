"""PDQ ITI-21: QBP^Q22 -> PdqQuery, RSP^K22 with QRI and continuation, QCN^J01 cancel."""

from __future__ import annotations

import hl7
import pytest

from esb.errors import Hl7Error
from profiles.empi.model import Domain, Identifier, PatientRecord, PersonName
from profiles.pdq import (
    PdqQuery,
    ack_j01,
    domain_errors,
    error_response,
    is_wildcard,
    like,
    matcher,
    parse_qbp_q22,
    parse_qcn_j01,
    rsp_k22,
)
from transforms.hl7v2.codec import V2Message

HIS1 = Domain("HIS1", "1.2.156.112.1.1", "ISO")
HIS2 = Domain("HIS2", "1.2.156.112.1.2", "ISO")
EMPI = Domain("EMPI", "1.2.156.112.9999.1.1", "ISO")
MSH = "MSH|^~\\&|PACS|HOSP2|EMPI|REGION|20240301101500||QBP^Q22^QBP_Q21|PDQ-0001|P|2.5||||||UNICODE UTF-8"


def request(qpd: str, *extra: str, rcp: str = "RCP|I|10^RD") -> str:
    return "\r".join([MSH, qpd, rcp, *extra]) + "\r"


QUERY = request(
    "QPD|IHE PDQ Query|QRY-77|@PID.5.1.1^张*~@PID.7^19800506~@PID.3.4.1^HIS1~@PID.8^f"
    "|||||^^^HIS1~^^^&1.2.156.112.9999.1.1&ISO"
)


def patient(family: str, given: str, *ids: Identifier) -> PatientRecord:
    return PatientRecord(identifiers=ids, names=(PersonName(family, given, representation="I"),), sex="F")


def hits() -> list[tuple[PatientRecord, list[Identifier], float | None]]:
    a = patient("张", "丽", Identifier("H1", HIS1, "MR"), Identifier("E1", EMPI))
    b = patient("张", "莉", Identifier("R2", HIS2, "MR"), Identifier("E2", EMPI))
    c = patient("章", "丽", Identifier("R3", HIS2, "MR"))
    return [(a, list(a.identifiers), 0.98765), (b, list(b.identifiers), 0.8), (c, list(c.identifiers), None)]


def answer(text: str) -> V2Message:
    assert hl7.parse(text).segment("MSH")[9][0][1][0] in ("K22", "J01")
    return V2Message(text)


def test_parse_reads_fields_domains_and_limit() -> None:
    q = parse_qbp_q22(QUERY.encode("utf-8"))
    assert q.fields == {"family": "张*", "birth_date": "19800506", "identifier.namespace": "HIS1", "sex": "F"}
    assert q.domains == (Domain("HIS1"), Domain("", "1.2.156.112.9999.1.1", "ISO"))
    assert (q.limit, q.query_tag, q.continuation, q.query_name) == (10, "QRY-77", "", "IHE PDQ Query")


@pytest.mark.parametrize(
    ("qip", "fields"),
    [
        ("@PID.5.1^DOE~@PID.5.2^JOHN", {"family": "DOE", "given": "JOHN"}),
        ("@PID.3.1^RJ-439~@PID.3.4.1^TEST", {"identifier": "RJ-439", "identifier.namespace": "TEST"}),
        (
            "@PID.3^H1~@PID.3.4^HIS1&1.2.156.112.1.1&iso",
            {
                "identifier": "H1",
                "identifier.namespace": "HIS1",
                "identifier.universal_id": "1.2.156.112.1.1",
                "identifier.universal_id_type": "ISO",
            },
        ),
        ("@PID.3.1^110101199003071234~@PID.3.5^ni", {"national_id": "110101199003071234"}),
        ("@PID.3.1^110101199003071234~@PID.3.4.2^2.16.156.10011.1.3", {"national_id": "110101199003071234"}),
        (
            "@PID.7.1^1980-05-06~@PID.11.3^北京市~@PID.11.5^100000",
            {"birth_date": "19800506", "city": "北京市", "postal_code": "100000"},
        ),
        (
            "@PID.13.1^138*~@PID.18^ACC-9~@PID.19^11010119900307123X",
            {"phone": "138*", "account_number": "ACC-9", "national_id": "11010119900307123X"},
        ),
        ("@PID.6.1.1^王~@PID.5.1.1^~@PID.22^01", {"mother_family": "王", "ethnic_group": "01"}),
    ],
)
def test_query_parameters_are_normalized(qip: str, fields: dict[str, str]) -> None:
    assert parse_qbp_q22(request(f"QPD|IHE PDQ Query|Q1|{qip}")).fields == fields


@pytest.mark.parametrize(
    ("text", "code", "location", "ack"),
    [
        (request("QPD|IHE PDQ Query|Q1|@PID.99^X"), "103", "QPD^1^3^1^1", "AE"),
        (request("QPD|IHE PDQ Query|Q1|@PID.5.1^A~@PID.3.4.99^B"), "103", "QPD^1^3^2^1", "AE"),
        (request("QPD|IHE PDQ Query|Q1|@PID.7^sometime"), "102", "QPD^1^3^1^2", "AE"),
        (request("QPD|IHE PDQ Query|Q1|"), "101", "QPD^1^3", "AE"),
        (request("QPD|IHE PDQ Query||@PID.5.1^A"), "101", "QPD^1^2", "AE"),
        (request("QPD|IHE PDQ Query|Q1|@PID.5.1^A|||||HIS1"), "101", "QPD^1^8^1^4", "AE"),
        (request("QPD|IHE PDQ Query|Q1|@PID.5.1^A", rcp="RCP|I|ten^RD"), "102", "RCP^1^2^1^1", "AE"),
        (request("QPD|IHE PDQ Query|Q1|@PID.5.1^A", rcp="RCP|I|10^CH"), "103", "RCP^1^2^1^2", "AE"),
        (request("QPD|IHE PDQ Query|Q1|@PID.5.1^A").replace("Q22", "Q23"), "201", "MSH^1^9^1^2", "AR"),
        (MSH + "\rRCP|I\r", "100", "QPD", "AE"),
    ],
)
def test_malformed_queries(text: str, code: str, location: str, ack: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_qbp_q22(text)
    assert (caught.value.error_code, caught.value.location, caught.value.ack_code) == (code, location, ack)


def test_error_response_is_an_rsp_k22_with_err() -> None:
    text = request("QPD|IHE PDQ Query|Q1|@PID.99^X")
    with pytest.raises(Hl7Error) as caught:
        parse_qbp_q22(text)
    rsp_text = error_response(text, caught.value)
    assert rsp_text is not None
    rsp = answer(rsp_text)
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "ERR", "QAK", "QPD"]
    assert rsp.segments[0].wire(9) == "RSP^K22^RSP_K21" and rsp.segments[1].value(1) == "AE"


def test_hits_are_returned_with_domain_filtered_pids_and_qri() -> None:
    q = parse_qbp_q22(QUERY)
    rsp = answer(rsp_k22(q, hits(), algorithm="FS"))
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "QAK", "QPD", "PID", "QRI", "PID", "QRI"]
    assert rsp.segments[1].render() == "MSA|AA|PDQ-0001"
    assert rsp.segments[2].render() == "QAK|QRY-77|OK|IHE PDQ Query|2|2|0"
    assert rsp.segments[3].render() == QUERY.split("\r")[1]
    first, second = rsp.all("PID")
    assert first.render() == (
        "PID|1||H1^^^HIS1&1.2.156.112.1.1&ISO^MR~E1^^^EMPI&1.2.156.112.9999.1.1&ISO||张^丽^^^^^L^I|||F"
    )
    assert second.value(1) == "2" and [r[0][0] for r in second.reps(3)] == ["E2"]  # R2 is in HIS2, not asked
    assert [q.render() for q in rsp.all("QRI")] == ["QRI|0.9877||FS", "QRI|0.8||FS"]


def test_continuation_pointer_and_counts() -> None:
    q = parse_qbp_q22(request("QPD|IHE PDQ Query|QRY-78|@PID.5.1.1^张*", rcp="RCP|I|2^RD"))
    assert q.limit == 2 and q.domains == ()
    first = answer(rsp_k22(q, hits()[:2], remaining=1, continuation="QRY-78:2"))
    assert first.segments[2].render() == "QAK|QRY-78|OK|IHE PDQ Query|3|2|1"
    dsc = first.segments[-1]
    assert dsc.render() == "DSC|QRY-78:2|I"
    follow_up = parse_qbp_q22(request("QPD|IHE PDQ Query|QRY-78|@PID.5.1.1^张*", "DSC|QRY-78:2|I", rcp="RCP|I|2^RD"))
    assert (follow_up.continuation, follow_up.query_tag) == ("QRY-78:2", "QRY-78")
    last = answer(rsp_k22(follow_up, hits()[2:]))
    assert last.segments[2].render() == "QAK|QRY-78|OK|IHE PDQ Query|1|1|0"
    assert last.first("DSC") is None and last.first("QRI") is None


def test_no_hits_is_aa_nf() -> None:
    q = parse_qbp_q22(QUERY)
    rsp = answer(rsp_k22(q, []))
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "QAK", "QPD"]
    assert rsp.segments[2].render() == "QAK|QRY-77|NF|IHE PDQ Query|0|0|0"
    only_his2 = [h for h in hits() if h[0].identifiers[0].domain == HIS2 and len(h[0].identifiers) == 1]
    assert answer(rsp_k22(q, only_his2)).segments[2].value(2) == "NF"


def test_unknown_what_domain_is_ae_with_err_at_qpd_8() -> None:
    # NIST ITI-21-Query-Case3: an unknown domain in QPD-8
    q = parse_qbp_q22(request("QPD|IHE PDQ Query|QRY121548499947|@PID.5.1.1^NXEAL|||||^^^UNKNOWNDOMAIN"))
    errors = domain_errors(q, lambda d: d.namespace in ("HIS1", "HIS2", "EMPI"))
    rsp = answer(rsp_k22(q, hits(), errors=errors))
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "ERR", "QAK", "QPD"]
    err = rsp.segments[2]
    assert (err.wire(2), err.value(3), rsp.segments[1].value(1)) == ("QPD^1^8^1", "204", "AE")
    assert rsp.segments[3].render() == "QAK|QRY121548499947|AE|IHE PDQ Query"


def test_cancel_is_acknowledged() -> None:
    text = "MSH|^~\\&|PACS|HOSP2|EMPI|REGION|20240301||QCN^J01^QCN_J01|CAN-1|P|2.5\rQID|QRY-78|IHE PDQ Query\r"
    cancel = parse_qcn_j01(text)
    assert (cancel.query_tag, cancel.query_name) == ("QRY-78", "IHE PDQ Query")
    ack = answer(ack_j01(cancel))
    assert ack.segments[0].wire(9) == "ACK^J01^ACK"
    assert ack.segments[1].render() == "MSA|AA|CAN-1"
    with pytest.raises(Hl7Error) as caught:
        parse_qcn_j01(text.replace("QID|QRY-78", "QID|"))
    assert (caught.value.error_code, caught.value.location) == ("101", "QID^1^1")


def test_wildcards() -> None:
    assert matcher("张*").fullmatch("张三丰") and not matcher("张*").fullmatch("章三")
    assert (
        matcher("zh*ng").fullmatch("ZHANG") and matcher("a.b").fullmatch("a.b") and not matcher("a.b").fullmatch("axb")
    )
    assert like("O'NEIL_50%*") == "O'NEIL\\_50\\%%"
    assert is_wildcard("ZH*") and not is_wildcard("ZHANG")


def test_rsp_needs_a_parsed_query() -> None:
    with pytest.raises(ValueError, match="parsed from a request"):
        rsp_k22(PdqQuery(fields={"family": "A"}, domains=(), limit=None, query_tag="Q"), [])


def test_national_id_is_returned_as_an_ni_identifier_when_its_domain_is_wanted() -> None:
    record = patient("张", "丽", Identifier("H1", HIS1, "MR")).with_(national_id="11010119900307123X")
    national = "11010119900307123X^^^&2.16.156.10011.1.3&ISO^NI"
    every_domain = parse_qbp_q22(request("QPD|IHE PDQ Query|Q1|@PID.19^11010119900307123X"))
    assert national in rsp_k22(every_domain, [(record, list(record.identifiers), None)])
    his1_only = parse_qbp_q22(request("QPD|IHE PDQ Query|Q1|@PID.19^11010119900307123X|||||^^^HIS1"))
    assert national not in rsp_k22(his1_only, [(record, list(record.identifiers), None)])
