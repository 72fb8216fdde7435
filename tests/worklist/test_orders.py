"""Reading RAD-4 orders (profiles.worklist.orders): names for DICOM, steps, derived Study Instance UIDs."""

from __future__ import annotations

import pytest

from esb.errors import Hl7Error
from profiles.empi.model import PersonName
from profiles.worklist.orders import dicom_name, parse_order, study_uid_for
from tests.worklist.samples import omi, orm


@pytest.mark.parametrize(
    ("names", "pn"),
    [
        ([PersonName("王", "小东", representation="I")], "WANG^XIAODONG=王^小东"),
        ([PersonName("欧阳", "娜娜")], "OUYANG^NANA=欧阳^娜娜"),  # a compound surname, unmarked hanzi
        ([PersonName("单", "田芳", representation="I")], "SHAN^TIANFANG=单^田芳"),  # 单 as a surname is Shan
        ([PersonName("LI", "LEI"), PersonName("李", "雷", representation="I")], "LI^LEI=李^雷"),
        ([PersonName("Smith", "John")], "Smith^John"),
    ],
)
def test_names_become_pn_with_pinyin_made_up_for_hanzi_only(names: list[PersonName], pn: str) -> None:
    assert dicom_name(names) == pn


def test_an_order_without_a_study_uid_gets_the_same_one_each_time() -> None:
    first = parse_order(orm("c1", accession="K1").encode())
    again = parse_order(orm("c2", order_control="XO", accession="K1", station="CT2").encode())
    assert first.steps[0].study_uid == again.steps[0].study_uid == study_uid_for("K1")
    assert study_uid_for("K1").startswith("2.25.") and len(study_uid_for("K1")) <= 64
    given = parse_order(orm("c3", accession="K2", study_uid="1.2.840.99.1").encode())
    assert given.steps[0].study_uid == "1.2.840.99.1"


def test_an_omi_has_a_step_per_ipc() -> None:
    order = parse_order(omi("c1", steps=(("S1", "MR", "MR1"), ("S2", "CT", "CT9"))).encode())
    assert [(s.sps_id, s.modality, s.station_ae) for s in order.steps] == [("S1", "MR", "MR1"), ("S2", "CT", "CT9")]
    assert {s.start_date + s.start_time for s in order.steps} == {"20261201140000"}


@pytest.mark.parametrize(
    ("message", "code", "location"),
    [
        (orm("e1", order_control="ZZ"), "103", "ORC^1^1"),
        (orm("e2", order_control="SC", status="XX"), "103", "ORC^1^5"),
        (orm("e3", accession=""), "101", "OBR^1^18"),
        (orm("e4", patient_id=""), "101", "PID^1^3"),
        (omi("e5").replace("\rIPC|", "\rZZZ|"), "100", "IPC"),
    ],
)
def test_unusable_orders_say_where(message: str, code: str, location: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_order(message.encode())
    assert (caught.value.error_code, caught.value.location) == (code, location)
