"""transforms.etl.patients: HIS patient rows -> ADT^A04/A08 that the EMPI feed reads back as the same patient."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esb.errors import TransformError
from esb.exchange import Exchange
from profiles.empi.model import Domain
from transforms.etl.patients import to_adt
from transforms.hl7v2.adt import parse_feed


def exchange(row: dict[str, Any]) -> Exchange:
    headers = {"etl-job": "his-patients", "etl-key": str(row.get("patient_no")), "etl-watermark": "2024-05-01T09:30:00"}
    return Exchange(body=json.dumps(row, ensure_ascii=False).encode("utf-8"), headers=headers)


BASE = {"patient_no": "H1", "name": "欧阳小明", "sex": "男", "birth_date": "1980年5月6日",
        "id_card": "110101198005060014", "phone": "13812345678", "address": "北京市东城区",
        "created_at": "2024-01-01T08:00:00", "updated_at": "2024-01-01T08:00:00"}  # fmt: skip


def test_a_new_patient_row_becomes_an_a04_the_feed_reads_back() -> None:
    ex = exchange(BASE)
    event = parse_feed(to_adt(ex, {"authority": "HIS1&1.2.156.112.1.1&ISO"}))
    assert (event.kind, event.trigger, event.sending_system, event.event_time) == (
        "register", "A04", "ETL^HIS1", "20240101080000")  # fmt: skip
    record = event.record
    (identifier,) = record.identifiers
    assert (identifier.value, identifier.domain, identifier.type_code) == (
        "H1", Domain("HIS1", "1.2.156.112.1.1", "ISO"), "PI")  # fmt: skip
    assert (record.names[0].family, record.names[0].given) == ("欧阳", "小明")  # compound surname kept whole
    assert (record.sex, record.birth_date, record.national_id) == ("M", "19800506", "110101198005060014")
    assert record.phones == ("13812345678",) and record.addresses[0].street == "北京市东城区"
    assert ex.headers["hl7-message-type"] == "ADT^A04"
    # the same row version gives the same message control ID (a re-run sends the same message)
    assert parse_feed(to_adt(exchange(BASE))).message_control_id == event.message_control_id


@pytest.mark.parametrize(("raw", "code"), [("1", "M"), ("2", "F"), ("女", "F"), ("F", "F"), ("9", "U"), ("7", "7")])
def test_sex_codes_map_through_the_empi_code_sets(raw: str, code: str) -> None:
    assert parse_feed(to_adt(exchange({**BASE, "sex": raw}))).record.sex == code


def test_a_changed_row_is_an_a08_and_hospital_column_names_map_by_params() -> None:
    row = {"PAT_NO": "77", "XM": "李四", "XB": "2", "CSRQ": "1975/3/9", "GXSJ": "2024-06-01 10:00:00",
           "JLSJ": "2020-01-01 00:00:00"}  # fmt: skip
    params = {"id": "pat_no", "name": "xm", "sex": "xb", "birth_date": "csrq", "updated": "gxsj", "created": "jlsj",
              "authority": "HIS2", "sending_application": "LIS"}  # fmt: skip
    event = parse_feed(to_adt(exchange(row), params))
    assert (event.trigger, event.kind, event.sending_system, event.event_time) == (
        "A08", "update", "LIS^HIS2", "20240601100000")  # fmt: skip
    assert (event.record.identifiers[0].value, event.record.sex, event.record.birth_date) == ("77", "F", "19750309")
    forced = parse_feed(to_adt(exchange(row), {**params, "trigger": "A04"}))
    assert forced.trigger == "A04"


def test_without_a_timestamp_column_the_watermark_dates_the_event() -> None:
    row = {k: v for k, v in BASE.items() if k not in ("updated_at", "created_at")}
    assert parse_feed(to_adt(exchange(row))).event_time == "20240501093000"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patient_no": None}, "patient row: column 'patient_no' (the patient number) is empty"),
        ({"patient_no": "  "}, "patient row: column 'patient_no' (the patient number) is empty"),
        ({"birth_date": "1980-02-30"}, "patient row: column 'birth_date' is not a possible birth date"),
        ({"birth_date": "2999-01-01"}, "patient row: column 'birth_date' is not a possible birth date"),
        ({"birth_date": "unknown"}, "patient row: column 'birth_date' is not a possible birth date"),
    ],
)
def test_rows_the_empi_cannot_take_raise_with_the_column_not_the_value(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TransformError) as caught:
        to_adt(exchange({**BASE, **change}))
    assert str(caught.value).startswith(message)
    assert "1980-02-30" not in str(caught.value) and "2999" not in str(caught.value)


def test_missing_columns_and_unknown_params_are_named() -> None:
    with pytest.raises(TransformError, match=r"no column 'pat_no' \(the patient number\); columns: patient_no, name"):
        to_adt(exchange(BASE), {"id": "pat_no"})
    with pytest.raises(TransformError, match=r"unknown params birthdate \(known: id, name"):
        to_adt(exchange(BASE), {"birthdate": "x"})
    with pytest.raises(TransformError, match="the message is not a JSON row"):
        to_adt(Exchange(body=b"MSH|^~\\&|"))
    # an empty birth date is no error: the EMPI takes a patient without one
    assert parse_feed(to_adt(exchange({**BASE, "birth_date": ""}))).record.birth_date == ""
