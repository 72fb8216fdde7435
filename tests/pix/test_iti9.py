"""PIX Query ITI-9: QBP^Q23 parsing and the RSP^K23 of each case of ITI TF-2 3.9.4.2.2.6."""

from __future__ import annotations

import hl7
import pytest

from esb.errors import Hl7Error
from profiles.empi.model import Domain, Identifier
from profiles.pix import PixQuery, domain_errors, error_response, parse_qbp_q23, rsp_k23
from transforms.hl7v2.codec import V2Message

NIST1 = Domain("NIST2010", "2.16.840.1.113883.3.72.5.9.1", "ISO")
NIST2 = Domain("NIST2010-2", "2.16.840.1.113883.3.72.5.9.2", "ISO")
NIST3 = Domain("NIST2010-3", "2.16.840.1.113883.3.72.5.9.3", "ISO")
EMPI = Domain("EMPI", "1.2.156.112.9999.1.1", "ISO")
KNOWN = (NIST1, NIST2, NIST3, EMPI)

MSH = "MSH|^~\\&|NIST_Hydra_PIX_Consumer|NIST|EMPI|REGION|20130810082516||QBP^Q23^QBP_Q21|NIST-20130810082516|P|2.5"


def query(qpd: str, header: str = MSH) -> str:
    return f"{header}\r{qpd}\rRCP|I\r"


CASE = query(
    "QPD|IHE PIX Query|QRY12434188486468|HC-352^^^NIST2010&2.16.840.1.113883.3.72.5.9.1&ISO"
    "|^^^NIST2010-2&2.16.840.1.113883.3.72.5.9.2&ISO~^^^&2.16.840.1.113883.3.72.5.9.3&ISO"
)
PERSON = [
    Identifier("HC-352", NIST1, "PI"),
    Identifier("HC-352b", NIST1, "PI"),
    Identifier("N2-101", NIST2, "PI"),
    Identifier("N3-7", NIST3),
    Identifier("E000042", EMPI),
]


def is_known(domain: Domain) -> bool:
    return any(domain.universal_id == d.universal_id or domain.namespace == d.namespace for d in KNOWN)


def answer(text: str) -> V2Message:
    """Parse a response back, with python-hl7 as an independent reader, then our typed view."""
    assert hl7.parse(text).segment("MSH")[9][0][0][0] == "RSP"
    assert text.endswith("\r") and "\n" not in text
    return V2Message(text)


def test_parse_reads_identifier_domains_and_tag() -> None:
    q = parse_qbp_q23(CASE.encode())
    assert q.identifier == Identifier("HC-352", NIST1)
    assert q.domains == (NIST2, Domain("", "2.16.840.1.113883.3.72.5.9.3", "ISO"))
    assert q.query_tag == "QRY12434188486468"
    assert q.header.control_id == "NIST-20130810082516"


def test_case1_returns_identifiers_of_requested_domains_in_a_pseudonymous_pid() -> None:
    q = parse_qbp_q23(CASE)
    rsp = answer(rsp_k23(q, PERSON, application="EMPI^1.2.156.112.9999^ISO"))
    msh = rsp.segments[0]
    assert msh.wire(9) == "RSP^K23^RSP_K23"
    assert (msh.wire(3), msh.wire(4), msh.wire(5), msh.wire(6)) == (
        "EMPI^1.2.156.112.9999^ISO",
        "REGION",
        "NIST_Hydra_PIX_Consumer",
        "NIST",
    )
    assert msh.value(10) and msh.value(10) != "NIST-20130810082516" and len(msh.value(10)) <= 20
    assert msh.value(12) == "2.5"
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "QAK", "QPD", "PID"]
    assert rsp.segments[1].render() == "MSA|AA|NIST-20130810082516"
    assert rsp.segments[2].render() == "QAK|QRY12434188486468|OK"
    assert rsp.segments[3].render() == CASE.split("\r")[1]
    pid = rsp.segments[4]
    assert pid.render() == (
        "PID|||N2-101^^^NIST2010-2&2.16.840.1.113883.3.72.5.9.2&ISO^PI"
        "~N3-7^^^NIST2010-3&2.16.840.1.113883.3.72.5.9.3&ISO||~^^^^^^S"
    )


def test_no_what_domains_returns_every_other_identifier_but_not_the_queried_one() -> None:
    q = parse_qbp_q23(query("QPD|IHE PIX Query|Q2|HC-352^^^&2.16.840.1.113883.3.72.5.9.1&ISO"))
    pid = answer(rsp_k23(q, PERSON)).all("PID")[0]
    values = [rep[0][0] for rep in pid.reps(3)]
    assert values == ["HC-352b", "N2-101", "N3-7", "E000042"]


def test_case2_known_patient_without_identifiers_there_is_aa_nf() -> None:
    q = parse_qbp_q23(query("QPD|IHE PIX Query|Q3|HC-352^^^NIST2010|^^^EMPI"))
    rsp = answer(rsp_k23(q, [Identifier("HC-352", NIST1), Identifier("N2-101", NIST2)]))
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "QAK", "QPD"]
    assert rsp.segments[1].value(1) == "AA" and rsp.segments[2].value(2) == "NF"


def test_case3_unknown_patient_is_ae_with_err_at_qpd_3_1_1() -> None:
    q = parse_qbp_q23(CASE)
    rsp = answer(rsp_k23(q, None))
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "ERR", "QAK", "QPD"]
    err = rsp.first("ERR")
    assert err is not None
    assert (err.wire(2), err.value(3), err.value(3, 1, 3), err.value(4)) == ("QPD^1^3^1^1", "204", "HL70357", "E")
    assert rsp.segments[1].value(1) == "AE" and rsp.segments[3].render() == "QAK|QRY12434188486468|AE"


def test_case3_can_be_answered_nf_for_consumers_that_expect_it() -> None:
    rsp = answer(rsp_k23(parse_qbp_q23(CASE), None, unknown_patient="nf"))
    assert (rsp.segments[1].value(1), rsp.segments[2].value(2), rsp.first("ERR")) == ("AA", "NF", None)


def test_case4_unknown_source_domain() -> None:
    q = parse_qbp_q23(query("QPD|IHE PIX Query|Q4|ABC10503^^^XXXX"))
    errors = domain_errors(q, is_known)
    rsp = answer(rsp_k23(q, None, errors=errors))
    err = rsp.first("ERR")
    assert err is not None and (err.wire(2), err.value(3)) == ("QPD^1^3^1^4", "204")
    assert rsp.segments[1].value(1) == "AE" and rsp.first("PID") is None


def test_case5_each_unknown_what_domain_gets_its_err() -> None:
    q = parse_qbp_q23(query("QPD|IHE PIX Query|Q5|HC-352^^^NIST2010|^^^NIST2010-2~^^^UNKNOWN1~^^^&9.9.9&ISO~^^^EMPI"))
    rsp = answer(rsp_k23(q, PERSON, errors=domain_errors(q, is_known)))
    assert [e.wire(2) for e in rsp.all("ERR")] == ["QPD^1^4^2", "QPD^1^4^3"]
    assert rsp.segments[1].value(1) == "AE" and rsp.first("PID") is None


@pytest.mark.parametrize(
    ("text", "code", "location", "ack"),
    [
        (query("QPD|IHE PIX Query|Q6|^^^NIST2010"), "101", "QPD^1^3^1^1", "AE"),
        (query("QPD|IHE PIX Query|Q6|HC-352"), "101", "QPD^1^3^1^4", "AE"),
        (query("QPD|IHE PIX Query||HC-352^^^NIST2010"), "101", "QPD^1^2", "AE"),
        (query("QPD|IHE PIX Query|Q6|HC-352^^^NIST2010|^^^NIST2010-2~HC-1"), "101", "QPD^1^4^2^4", "AE"),
        (f"{MSH}\rRCP|I\r", "100", "QPD", "AE"),
        (query("QPD|IHE PIX Query|Q6|HC-352^^^NIST2010", MSH.replace("Q23", "Q22")), "201", "MSH^1^9^1^2", "AR"),
        (query("QPD|IHE PIX Query|Q6|HC-352^^^NIST2010", MSH.replace("QBP^", "ADT^")), "200", "MSH^1^9^1^1", "AR"),
    ],
)
def test_malformed_queries(text: str, code: str, location: str, ack: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_qbp_q23(text)
    assert (caught.value.error_code, caught.value.location, caught.value.ack_code) == (code, location, ack)


def test_error_response_answers_a_broken_query_with_an_rsp() -> None:
    text = query("QPD|IHE PIX Query|Q7|HC-352")
    with pytest.raises(Hl7Error) as caught:
        parse_qbp_q23(text)
    rsp_text = error_response(text, caught.value)
    assert rsp_text is not None
    rsp = answer(rsp_text)
    assert [s.name for s in rsp.segments] == ["MSH", "MSA", "ERR", "QAK", "QPD"]
    assert rsp.segments[2].wire(2) == "QPD^1^3^1^4" and rsp.segments[3].render() == "QAK|Q7|AE"
    # not a readable QBP^Q23: the MLLP side answers with a plain ACK instead
    assert error_response("garbage", caught.value) is None
    assert error_response(text.replace("Q23", "Q22"), caught.value) is None


def test_chinese_namespaces_and_escapes_survive_the_echo() -> None:
    text = query(
        "QPD|IHE PIX Query|Q8|住院\\T\\123^^^市一院&1.2.156.112.1.1&ISO|^^^市二院&1.2.156.112.1.2&ISO",
        MSH + "||||||UNICODE UTF-8",
    )
    q = parse_qbp_q23(text.encode("utf-8"))
    assert q.identifier.value == "住院&123" and q.identifier.domain.namespace == "市一院"
    rsp_text = rsp_k23(q, [q.identifier, Identifier("门诊|9", Domain("市二院", "1.2.156.112.1.2", "ISO"))])
    assert V2Message(rsp_text).segments[0].value(18) == "UNICODE UTF-8"
    assert "住院\\T\\123^^^市一院&1.2.156.112.1.1&ISO" in rsp_text
    assert "PID|||门诊\\F\\9^^^市二院&1.2.156.112.1.2&ISO||~^^^^^^S" in rsp_text
    assert isinstance(q, PixQuery)
