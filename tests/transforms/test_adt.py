"""ITI-8 / ITI-30 ADT messages -> FeedEvent, and PID written back (transforms.hl7v2.adt, .pid)."""

from __future__ import annotations

import pytest

from esb.errors import Hl7Error
from profiles.empi.model import Address, Domain, Identifier, PatientRecord, PersonName
from transforms.hl7v2.adt import FEED_TRIGGERS, parse_feed, pid_segment
from transforms.hl7v2.codec import V2Message
from transforms.hl7v2.pid import NATIONAL_ID_DOMAIN, PidOptions, read_pid, split_hanzi

HIS1 = Domain("HIS1", "1.2.156.112.1.1", "ISO")
HIS2 = Domain("HIS2", "1.2.156.112.1.2", "ISO")


def message(*segments: str) -> str:
    return "\r".join(segments) + "\r"


def pid(**fields: str) -> str:
    """A PID segment from fields named f3, f5, ... (counting bars by hand is how tests go wrong)."""
    numbered = {int(k[1:]): v for k, v in fields.items()}
    return "|".join(["PID", *(numbered.get(n, "") for n in range(1, max(numbered) + 1))])


def msh(trigger: str, structure: str = "ADT_A01", control_id: str = "MSG0001", charset: str = "UNICODE UTF-8") -> str:
    return (
        f"MSH|^~\\&|HIS|HOSP1|EMPI|REGION|20240301101500+0800||ADT^{trigger}^{structure}|{control_id}|P|2.5"
        f"||||||{charset}"
    )


A01_CN = message(
    msh("A01"),
    "EVN|A01|20240301101455+0800",
    pid(
        f1="1",
        f3="H0001^^^HIS1&1.2.156.112.1.1&ISO^MR~110101199003071234^^^^NI",
        f5="张三丰^^^^^^L^I~ZHANG^SANFENG^^^^^L^P",
        f6="王^秀英^^^^^M",
        f7="19900307",
        f8="M",
        f10="2106-3^汉族^HL70005",
        f11="中山路1号&中山路&1号^3单元^北京市^北京^100000^CHN^H",
        f13="^PRN^CP^^86^^13800138000~010-66667777^PRN^PH",
        f15="zh",
        f16="20",
        f18="ACC-9",
        f22="01^汉族^GB3304",
        f23="北京",
        f24="N",
        f28="CHN",
    ),
    "PD1|||市一院^^1001",
    "NK1|1|王秀英^^^^^^L|MTH^母亲^HL70063" + "|" * 30 + "430102196501011234^^^^NI~M-77^^^HIS1&1.2.156.112.1.1&ISO^MR",
    "PV1|1|O",
)


def test_a01_with_chinese_demographics_maps_every_pid_field() -> None:
    event = parse_feed(A01_CN.encode("utf-8"))
    record = event.record
    assert (event.kind, event.trigger, event.message_control_id, event.version) == ("register", "A01", "MSG0001", "2.5")
    assert event.sending_system == "HIS^HOSP1" == record.source
    assert event.event_time == "20240301101455+0800" == record.event_time
    assert record.identifiers == (Identifier("H0001", HIS1, "MR"),)
    assert record.national_id == "110101199003071234"
    assert record.names == (
        PersonName(family="张", given="三丰", use="L", representation="I"),
        PersonName(family="ZHANG", given="SANFENG", use="L", representation="P"),
    )
    assert record.primary_name.family == "张"
    assert record.mother_maiden_name == PersonName(family="王", given="秀英", use="M")
    assert record.mother_identifiers == (
        Identifier("430102196501011234", NATIONAL_ID_DOMAIN, "NI"),
        Identifier("M-77", HIS1, "MR"),
    )
    assert (record.birth_date, record.sex, record.race, record.marital_status) == ("19900307", "M", "2106-3", "20")
    assert (record.ethnic_group, record.birth_place, record.multiple_birth, record.nationality) == (
        "01",
        "北京",
        False,
        "CHN",
    )
    assert record.addresses == (
        Address(
            street="中山路1号", other="3单元", city="北京市", state="北京", postal_code="100000", country="CHN", use="H"
        ),
    )
    assert record.phones == ("+8613800138000", "010-66667777")
    assert record.deceased is None and record.birth_order is None


def test_gb18030_message_is_decoded_by_its_msh18() -> None:
    text = message(msh("A04", charset="GB 18030-2000"), "EVN||20240301", "PID|||H2^^^HIS1||欧阳娜娜||20010203|F")
    event = parse_feed(text.encode("gb18030"))
    assert event.record.names == (PersonName(family="欧阳", given="娜娜"),)
    assert event.kind == "register"


def test_ihe_pam_a04_sample_reads_xtn_local_number_and_sad_street() -> None:
    # PAM Simulator (Gazelle) style A04: XAD street as SAD subcomponents, phone only in XTN-7
    text = message(
        "MSH|^~\\&|ADT_AGFA_0|AGFA|PAMSimulator|IHE|20130328142923||ADT^A04^ADT_A01|1143408|P|2.5||||||UNICODE UTF-8",
        "EVN||201303281429||O|ORBIS|201303281426",
        "PID|1||801812^^^HIMSS2005&1.3.6.1.4.1.21367.2005.1.1&ISO^PI||Awphx^080419-A04-03^^^^^L~Gebname^^^^^^B"
        "|||M|||Burggasse 456&Burggasse&456^^Trier^^54294^DEU^L~^^Gebort^^^^BDL||^PRN^PH^^^^06511234",
        "PV1|1|O",
    )
    record = parse_feed(text).record
    assert record.identifiers == (Identifier("801812", Domain("HIMSS2005", "1.3.6.1.4.1.21367.2005.1.1", "ISO"), "PI"),)
    assert record.names[1] == PersonName(family="Gebname", use="B")
    assert record.addresses[0].street == "Burggasse 456"
    assert record.addresses[1] == Address(city="Gebort", use="BDL")
    assert record.phones == ("06511234",)
    assert record.event_time == "201303281429"


@pytest.mark.parametrize(("trigger", "kind"), sorted(FEED_TRIGGERS.items()))
def test_every_supported_trigger_maps_to_its_kind(trigger: str, kind: str) -> None:
    segment = "PID|||H1^^^HIS1||LI^SI"
    extra = {"A40": ["MRG|H0^^^HIS1"], "A24": ["PID|||X9^^^HIS2||LI^SI"], "A37": ["PID|||X9^^^HIS2||LI^SI"]}
    event = parse_feed(message(msh(trigger), "EVN||20240301", segment, *extra.get(trigger, [])))
    assert event.kind == kind and event.trigger == trigger


def test_a08_without_evn_uses_msh7_as_event_time() -> None:
    event = parse_feed(message(msh("A08"), "PID|||H1^^^HIS1||LI^SI"))
    assert event.kind == "update"
    assert event.event_time == "20240301101500+0800" == event.record.event_time


def test_v23_sender_naming_the_trigger_in_evn_only() -> None:
    text = "MSH|^~\\&|HIS|HOSP1|EMPI|REGION|20240301||ADT|C1|P|2.3\rEVN|A04|20240301\rPID|||H1^^^HIS1||LI^SI\r"
    assert parse_feed(text).kind == "register"


def test_a40_merge_carries_the_prior_identifiers() -> None:
    text = message(
        msh("A40", "ADT_A39"),
        "EVN||20240302",
        "PID|||H0001^^^HIS1&1.2.156.112.1.1&ISO^MR||张^三",
        "MRG|H0009^^^HIS1&1.2.156.112.1.1&ISO^MR~H0010^^^HIS1&1.2.156.112.1.1&ISO^MR",
    )
    event = parse_feed(text)
    assert event.kind == "merge"
    assert event.record.identifiers == (Identifier("H0001", HIS1, "MR"),)
    assert event.prior_identifiers == (Identifier("H0009", HIS1, "MR"), Identifier("H0010", HIS1, "MR"))


@pytest.mark.parametrize(
    ("segments", "code", "location"),
    [
        (["PID|||H1^^^HIS1"], "100", "MRG"),
        (["PID|||H1^^^HIS1", "MRG|"], "101", "MRG^1^1"),
        (["PID|||H1^^^HIS1", "MRG|110101199003071234^^^^NI"], "101", "MRG^1^1"),
        (["PID|||H1^^^HIS1", "MRG|H2^^^HIS1", "PID|||H3^^^HIS1", "MRG|H4^^^HIS1"], "100", "MRG^2"),
    ],
)
def test_a40_without_a_usable_mrg_is_refused(segments: list[str], code: str, location: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_feed(message(msh("A40", "ADT_A39"), "EVN||20240302", *segments))
    assert (caught.value.error_code, caught.value.location, caught.value.ack_code) == (code, location, "AE")


@pytest.mark.parametrize(("trigger", "kind"), [("A24", "link"), ("A37", "unlink")])
def test_a24_a37_read_both_patients(trigger: str, kind: str) -> None:
    text = message(
        msh(trigger, "ADT_A24" if trigger == "A24" else "ADT_A37"),
        "EVN||20240303",
        "PID|||H0001^^^HIS1&1.2.156.112.1.1&ISO^MR||张^三||19900307|M",
        "PV1||N",
        "PID|||R777^^^HIS2&1.2.156.112.1.2&ISO^MR||张^三||19900307|M",
        "PV1||N",
    )
    event = parse_feed(text)
    assert event.kind == kind
    assert event.record.identifiers == (Identifier("H0001", HIS1, "MR"),)
    assert event.other is not None
    assert event.other.identifiers == (Identifier("R777", HIS2, "MR"),)
    assert event.other.source == "HIS^HOSP1" and event.other.event_time == "20240303"


def test_a24_with_one_pid_is_a_segment_error() -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_feed(message(msh("A24", "ADT_A24"), "EVN||20240303", "PID|||H1^^^HIS1"))
    assert (caught.value.error_code, caught.value.location) == ("100", "PID^2")


@pytest.mark.parametrize(
    ("header", "code", "location"),
    [
        ("MSH|^~\\&|HIS|H|EMPI|R|20240301||ORU^R01^ORU_R01|C1|P|2.5", "200", "MSH^1^9^1^1"),
        ("MSH|^~\\&|HIS|H|EMPI|R|20240301||ADT^A47^ADT_A30|C1|P|2.5", "201", "MSH^1^9^1^2"),
        ("MSH|^~\\&|HIS|H|EMPI|R|20240301||ADT^A01^ADT_A01||P|2.5", "101", "MSH^1^10"),
    ],
)
def test_wrong_message_types_are_rejected(header: str, code: str, location: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_feed(message(header, "PID|||H1^^^HIS1"))
    error = caught.value
    assert (error.error_code, error.location) == (code, location)
    assert error.ack_code == ("AE" if code == "101" else "AR")


@pytest.mark.parametrize(
    ("segment", "code", "location"),
    [
        ("PID|1||||ZHANG^SAN", "101", "PID^1^3"),
        ("PID|1||H1||ZHANG^SAN", "101", "PID^1^3^1^4"),
        ("PID|1||H1^^^HIS1~^^^HIS2||ZHANG^SAN", "101", "PID^1^3^2^1"),
        ("PID|1||H1^^^HIS1||ZHANG^SAN||May 6 1980", "102", "PID^1^7"),
        (pid(f3="H1^^^HIS1", f5="ZHANG^SAN", f24="X"), "103", "PID^1^24"),
        (pid(f3="H1^^^HIS1", f5="ZHANG^SAN", f24="Y", f25="two"), "102", "PID^1^25"),
        (pid(f3="H1^^^HIS1", f5="ZHANG^SAN", f30="dead"), "103", "PID^1^30"),
    ],
)
def test_missing_and_malformed_pid_fields(segment: str, code: str, location: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_feed(message(msh("A04"), "EVN||20240301", segment))
    assert (caught.value.error_code, caught.value.location, caught.value.ack_code) == (code, location, "AE")
    assert "ZHANG" not in caught.value.text  # no patient data in error texts


def test_identifier_without_authority_takes_the_configured_default_domain() -> None:
    options = PidOptions(default_domain=HIS1)
    event = parse_feed(message(msh("A04"), "PID|||H1||LI^SI"), options=options)
    assert event.record.identifiers == (Identifier("H1", HIS1),)


@pytest.mark.parametrize(
    ("segment", "national"),
    [
        ("PID|||H1^^^HIS1~11010119900307123X^^^&2.16.156.10011.1.3&ISO||LI^SI", "11010119900307123X"),
        ("PID|||H1^^^HIS1~110101900307123^^^CNID^NNCHN||LI^SI", "110101900307123"),
        (pid(f3="H1^^^HIS1", f5="LI^SI", f19="110101199003071234"), "110101199003071234"),
        (pid(f2="H1^^^HIS1~110101199003071234^^^^NI", f5="LI^SI"), "110101199003071234"),
    ],
)
def test_national_ids_leave_the_identifier_list(segment: str, national: str) -> None:
    record = parse_feed(message(msh("A04"), segment)).record
    assert record.national_id == national
    assert record.identifiers == (Identifier("H1", Domain("HIS1")),)


def test_national_id_domain_is_configurable() -> None:
    options = PidOptions(national_id_domains=frozenset({"CITIZEN"}))
    record = parse_feed(message(msh("A04"), "PID|||H1^^^HIS1~X77^^^CITIZEN||LI^SI"), options=options).record
    assert record.national_id == "X77"


def test_births_deaths_and_partial_dates() -> None:
    segment = pid(
        f3="H1^^^HIS1", f5="LI^SI", f7="1980-05-06T10:00", f8="F", f24="Y", f25="2", f29="20240101083000", f30="Y"
    )
    record = parse_feed(message(msh("A08"), segment)).record
    assert (record.birth_date, record.multiple_birth, record.birth_order) == ("19800506", True, 2)
    assert (record.deceased, record.death_date) == (True, "20240101")
    assert parse_feed(message(msh("A08"), "PID|||H1^^^HIS1||LI^SI||1980")).record.birth_date == "1980"


def test_escape_sequences_are_decoded_and_written_back() -> None:
    segment = "PID|||A\\T\\B-1^^^HIS1||O\\S\\NEIL^MARY\\F\\ANN||||||Flat 3\\R\\4^^DUBLIN"
    record = parse_feed(message(msh("A04"), segment)).record
    assert record.identifiers[0].value == "A&B-1"
    assert record.names[0] == PersonName(family="O^NEIL", given="MARY|ANN")
    assert record.addresses[0].street == "Flat 3~4"
    written = pid_segment(record)
    assert "A\\T\\B-1^^^HIS1" in written and "O\\S\\NEIL^MARY\\F\\ANN" in written
    assert read_pid(V2Message(message(msh("A04"), written)).all("PID")[0]) == record.with_(source="", event_time="")


def test_hanzi_names_sent_whole_are_split() -> None:
    assert split_hanzi("张三丰") == ("张", "三丰")
    assert split_hanzi("欧阳娜娜") == ("欧阳", "娜娜")
    assert split_hanzi("諸葛亮") == ("諸葛", "亮")
    assert split_hanzi("王　芳") == ("王", "芳")
    assert split_hanzi("买买提·艾力") == ("买买提·艾力", "")
    assert split_hanzi("ZHANG SAN") == ("ZHANG SAN", "")
    assert split_hanzi("张") == ("张", "")


def test_pid_segment_round_trips_a_full_record() -> None:
    record = PatientRecord(
        identifiers=(
            Identifier("H0001", HIS1, "MR"),
            Identifier("E-42", Domain("EMPI", "1.2.156.112.9999.1.1", "ISO")),
        ),
        names=(PersonName("张", "三丰", use="L", representation="I"), PersonName("ZHANG", "SANFENG", use="L")),
        sex="M",
        birth_date="19900307",
        birth_place="北京",
        multiple_birth=True,
        birth_order=1,
        mother_maiden_name=PersonName("王", "秀英", use="M"),
        mother_identifiers=(Identifier("M-77", HIS1, "MR"), Identifier("430102196501011234", NATIONAL_ID_DOMAIN, "NI")),
        phones=("13800138000", "+86 10 6666 7777"),
        addresses=(Address("中山路1号", "", "北京市", "北京", "100000", "CHN", "H"),),
        national_id="110101199003071234",
        marital_status="20",
        ethnic_group="01",
        race="2106-3",
        nationality="CHN",
        deceased=False,
    )
    text = pid_segment(record, set_id="1")
    assert text.startswith("PID|1||H0001^^^HIS1&1.2.156.112.1.1&ISO^MR~E-42^^^EMPI&1.2.156.112.9999.1.1&ISO~")
    assert f"110101199003071234^^^&{NATIONAL_ID_DOMAIN.universal_id}&ISO^NI" in text
    assert read_pid(V2Message(message(msh("A08"), text)).all("PID")[0]) == record


def test_pseudonymous_pid_carries_only_identifiers() -> None:
    record = PatientRecord(identifiers=(Identifier("H1", HIS1),), names=(PersonName("张", "三"),), sex="M")
    assert pid_segment(record, pseudonymous=True) == "PID|||H1^^^HIS1&1.2.156.112.1.1&ISO||~^^^^^^S"


@pytest.mark.parametrize(
    ("text", "code", "location"),
    [
        ("PID|||H1^^^HIS1\r", "100", "MSH"),
        ("", "100", "MSH"),
        ("MSH|^~\\&|HIS|H|EMPI|R|20240301||ADT^A04|C1|P|2.5\rEVN||1\rP1|x\r", "100", ""),
        ("MSH|^~\\&|HIS|H|EMPI|R|20240301||ADT^A04|C1|P|2.5\rEVN||1\rpid|||H1^^^HIS1\r", "100", ""),
    ],
)
def test_malformed_messages_are_rejected_with_ar(text: str, code: str, location: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_feed(text)
    assert (caught.value.error_code, caught.value.location, caught.value.ack_code) == (code, location, "AR")


def test_missing_pid_segment() -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_feed(message(msh("A04"), "EVN||20240301", "PV1||O"))
    assert (caught.value.error_code, caught.value.location) == ("100", "PID")


def test_lf_separated_file_and_invalid_bytes() -> None:
    text = message(msh("A04"), "EVN||20240301", "PID|||H1^^^HIS1||LI^SI").replace("\r", "\r\n")
    assert parse_feed(text).record.names == (PersonName("LI", "SI"),)
    with pytest.raises(Hl7Error) as caught:
        parse_feed(message(msh("A04"), "PID|||H1^^^HIS1||李^四").encode("gb18030"))  # says UTF-8, is GB18030
    assert (caught.value.error_code, caught.value.ack_code) == ("102", "AR")
