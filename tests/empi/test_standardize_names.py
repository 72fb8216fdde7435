"""Names: one comparable form and one pinyin key for a person however the source wrote the name."""

from __future__ import annotations

import pytest

from profiles.empi.model import PatientRecord, PersonName
from profiles.empi.standardize import names, parse_dicom_pn, standardize


def derived(*person_names: PersonName) -> dict[str, object]:
    return standardize(PatientRecord(names=person_names)).derived


def name_keys(record_derived: dict[str, object]) -> tuple[object, ...]:
    return tuple(record_derived[k] for k in ("family", "given", "family_pinyin", "given_pinyin", "is_hanzi"))


def test_traditional_becomes_simplified_and_record_keeps_the_script() -> None:
    record = standardize(PatientRecord(names=(PersonName("張", "三豐"),)))
    assert name_keys(record.derived) == ("张", "三丰", "zhang", "sanfeng", True)
    assert record.names[0].family == "張"  # the stored name is the patient's, only cleaned
    assert name_keys(derived(PersonName("张", "三丰"))) == name_keys(record.derived)


@pytest.mark.parametrize(
    "family, given",
    [
        ("张　", "三丰"),  # ideographic space
        ("张", " 三 丰 "),  # spaces typed inside the name
        ("张三丰", ""),  # whole name in PID-5.1
        ("", "张三丰"),  # whole name in PID-5.2
        ("張 三 豐", ""),
    ],
)
def test_whitespace_and_one_field_names(family: str, given: str) -> None:
    assert name_keys(derived(PersonName(family, given))) == ("张", "三丰", "zhang", "sanfeng", True)


def test_full_width_letters_and_digits_fold() -> None:
    keys = derived(PersonName("ＺＨＡＮＧ", "ＳＡＮＦＥＮＧ"))
    assert name_keys(keys) == ("ZHANG", "SANFENG", "zhang", "sanfeng", False)
    assert names.clean("ＡＢＣ１２３") == "ABC123"


@pytest.mark.parametrize(
    "full, family, given, family_pinyin, given_pinyin",
    [
        ("单雄信", "单", "雄信", "shan", "xiongxin"),
        ("曾国藩", "曾", "国藩", "zeng", "guofan"),
        ("解缙", "解", "缙", "xie", "jin"),
        ("区志强", "区", "志强", "ou", "zhiqiang"),
        ("仇英", "仇", "英", "qiu", "ying"),
        ("朴树", "朴", "树", "piao", "shu"),
        ("查良镛", "查", "良镛", "zha", "liangyong"),
        ("乐嘉", "乐", "嘉", "yue", "jia"),
        ("盖叫天", "盖", "叫天", "ge", "jiaotian"),
        ("覃振", "覃", "振", "qin", "zhen"),
        ("尉迟恭", "尉迟", "恭", "yuchi", "gong"),
        ("万俟卨", "万俟", "卨", "moqi", "xie"),
        ("长孙无忌", "长孙", "无忌", "zhangsun", "wuji"),
        ("單雄信", "单", "雄信", "shan", "xiongxin"),  # traditional 單
        ("區志強", "区", "志强", "ou", "zhiqiang"),
    ],
)
def test_polyphonic_surnames_read_as_surnames(
    full: str, family: str, given: str, family_pinyin: str, given_pinyin: str
) -> None:
    expected = (family, given, family_pinyin, given_pinyin, True)
    assert name_keys(derived(PersonName(full))) == expected
    assert name_keys(derived(PersonName(family, given))) == expected
    # the same person registered by a foreign system in pinyin meets the hanzi record
    latin = derived(PersonName(family_pinyin.upper(), given_pinyin.upper()))
    assert (latin["family_pinyin"], latin["given_pinyin"]) == (family_pinyin, given_pinyin)


def test_polyphonic_characters_keep_their_common_reading_outside_the_surname() -> None:
    keys = derived(PersonName("张", "单"))
    assert keys["given_pinyin"] == "dan"


@pytest.mark.parametrize(
    "full, family, given, family_pinyin",
    [
        ("欧阳修", "欧阳", "修", "ouyang"),
        ("歐陽修", "欧阳", "修", "ouyang"),
        ("司马光", "司马", "光", "sima"),
        ("诸葛亮", "诸葛", "亮", "zhuge"),
        ("上官婉儿", "上官", "婉儿", "shangguan"),
        ("澹台灭明", "澹台", "灭明", "tantai"),
        ("单于", "单于", "", "chanyu"),  # a compound surname alone is not split
        ("爱新觉罗溥仪", "爱新觉罗", "溥仪", "aixinjueluo"),
    ],
)
def test_compound_surnames_split_correctly(full: str, family: str, given: str, family_pinyin: str) -> None:
    keys = derived(PersonName(full))
    assert (keys["family"], keys["given"], keys["family_pinyin"]) == (family, given, family_pinyin)


def test_compound_surname_given_separately_is_read_whole() -> None:
    keys = derived(PersonName("尉迟", "恭"))
    assert (keys["family_pinyin"], keys["given_pinyin"]) == ("yuchi", "gong")


def test_minority_names_with_any_middle_dot_agree() -> None:
    dotted = derived(PersonName("买买提·艾力"))
    assert dotted["family"] == "买买提·艾力"
    for variant in ("买买提・艾力", "买买提•艾力", "买买提.艾力", "买买提 · 艾力"):
        assert name_keys(derived(PersonName(variant))) == name_keys(dotted)
    assert dotted["family_pinyin"] == "maimaitiaili"


@pytest.mark.parametrize(
    "name",
    [
        PersonName("Zhang San Feng"),
        PersonName("ZHANG^SANFENG"),
        PersonName("ZHANG, SANFENG"),
        PersonName("zhang", "sanfeng"),
        PersonName("ZHANG", "SAN FENG"),
        PersonName("Zhang", "San-Feng"),
        PersonName("Zhāng", "Sānfēng"),  # with tone marks
        PersonName("ＺＨＡＮＧ", "ｓａｎｆｅｎｇ"),
    ],
)
def test_pinyin_spellings_meet_the_hanzi_name(name: PersonName) -> None:
    hanzi = derived(PersonName("张", "三丰"))
    latin = derived(name)
    assert (latin["family_pinyin"], latin["given_pinyin"]) == (hanzi["family_pinyin"], hanzi["given_pinyin"])
    assert latin["family"] == "ZHANG" and latin["is_hanzi"] is False


def test_latin_names_lose_accents_punctuation_and_case() -> None:
    keys = derived(PersonName("O'Brien-Müller", "José"))
    assert (keys["family"], keys["given"]) == ("OBRIEN MULLER", "JOSE")
    assert derived(PersonName("Łukasz", "Øster"))["family"] == "LUKASZ"


@pytest.mark.parametrize("latin", ["Lü", "LYU", "lv", "Lu:"])
def test_pinyin_u_umlaut_spellings_agree(latin: str) -> None:
    assert derived(PersonName(latin, "Bu"))["family_pinyin"] == derived(PersonName("吕", "布"))["family_pinyin"] == "lv"


def test_dicom_pn_groups_parse_into_representations() -> None:
    parsed = parse_dicom_pn("Zhang^San=张^三=zhang^san")
    assert parsed == (
        PersonName("Zhang", "San", representation="A"),
        PersonName("张", "三", representation="I"),
        PersonName("zhang", "san", representation="P"),
    )
    assert parse_dicom_pn("=王^小明") == (PersonName("王", "小明", representation="I"),)
    assert parse_dicom_pn("Wang^Xiao Ming^^Dr.^") == (
        PersonName("Wang", "Xiao Ming", prefix="Dr.", representation="A"),
    )
    assert parse_dicom_pn("") == ()


def test_dicom_pn_groups_match_their_hanzi() -> None:
    from_modality = derived(*parse_dicom_pn("Zhang^Sanfeng=張^三豐=zhang^san feng"))
    from_his = derived(PersonName("张", "三丰"))
    assert name_keys(from_modality) == name_keys(from_his)
    pinyin_only = derived(*parse_dicom_pn("ZHANG^SANFENG"))
    assert (pinyin_only["family_pinyin"], pinyin_only["given_pinyin"]) == ("zhang", "sanfeng")


def test_the_hanzi_representation_is_picked_among_pid5_repetitions() -> None:
    keys = derived(PersonName("LI", "XIAOLONG", representation="A"), PersonName("李", "小龍", representation="I"))
    assert name_keys(keys) == ("李", "小龙", "li", "xiaolong", True)
    alias_first = derived(PersonName("小龙", use="A"), PersonName("李", "小龙"))
    assert alias_first["family"] == "李"


def test_mother_maiden_name_is_normalized_like_the_patient_name() -> None:
    record = standardize(PatientRecord(mother_maiden_name=PersonName("歐陽 娜娜")))
    assert (record.derived["mother_family"], record.derived["mother_given"]) == ("欧阳", "娜娜")
    assert standardize(PatientRecord()).derived["mother_family"] == ""
