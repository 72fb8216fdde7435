"""A synthetic archive index for ``dicom-find``: patient, study and series rows written in bulk.

Apart from :mod:`bench.dicom` so the benchmark reads as what it measures; the
population (names from syllables, modalities and dates in realistic
proportions) and the queries asked of it are seeded, so runs compare.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

FAMILY_SYLLABLES = (
    "AN BAO CHEN DA FEN GAO HAN JIN KAI LAN MEI NING PEI QIN RUI SHAN TAO WEN XIA YAN ZHOU BER CAR DEL "
    "FOR GIL HOL KEM LOR MAR NEL OST PAR ROS SAN TOR VAL WIL"
).split()
GIVEN = (
    "ANNA BEN CLARA DAVID EMMA FELIX GRACE HUGO IRIS JONAS KIRA LEON MAYA NOAH OLGA PAUL ROSA SIMON TINA VERA WEI XIN "
    "YUN ZOE"
).split()
MODALITIES = ("CT",) * 30 + ("MR",) * 20 + ("CR",) * 20 + ("US",) * 15 + ("DX",) * 10 + ("CT\\PT",) * 5
FIRST_DAY = dt.date(2017, 1, 1)
DAYS = 3650


@dataclass
class Population:
    patient_ids: list[str]
    names: list[str]
    accessions: list[str]


def _pn(value: str) -> dict[str, Any]:
    return {"vr": "PN", "Value": [{"Alphabetic": value}]}


def _value(vr: str, value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def fill_index(db: sa.Engine, count: int, seed: int = 20261129) -> Population:
    """``count`` studies of ``count // 2`` patients, each with one series per modality, straight into the tables.

    The rows are what :func:`profiles.dicom.indexer.index_instance` writes for
    a study of 100 instances (columns normalized as it does, attributes as
    DICOM JSON), with no instance rows: study-level queries never read them.
    """
    from profiles.dicom.schema import ARCHIVED, patients, series, studies

    rnd = random.Random(seed)
    now = dt.datetime(2026, 11, 29, 12, 0, 0)
    people = max(1, count // 2)
    population = Population([], [], [])
    patient_rows: list[dict[str, Any]] = []
    study_rows: list[dict[str, Any]] = []
    series_rows: list[dict[str, Any]] = []
    for pk in range(1, people + 1):
        family = rnd.choice(FAMILY_SYLLABLES) + rnd.choice(FAMILY_SYLLABLES)
        name = f"{family}^{rnd.choice(GIVEN)}"
        patient_id, birth = f"PID{pk:07d}", f"19{rnd.randint(30, 99)}{rnd.randint(1, 12):02d}{rnd.randint(1, 28):02d}"
        sex = rnd.choice("MF")
        population.patient_ids.append(patient_id)
        population.names.append(name)
        patient_rows.append({
            "pk": pk, "patient_id": patient_id, "issuer": "HIS1", "issuer_uid": "", "name_upper": name,
            "birth_date": birth, "sex": sex, "num_studies": 0, "num_series": 0, "num_instances": 0,
            "attributes": {"00100010": _pn(name), "00100020": _value("LO", patient_id),
                           "00100021": _value("LO", "HIS1"), "00100030": _value("DA", birth),
                           "00100040": _value("CS", sex)},
            "created_at": now, "updated_at": now,
        })  # fmt: skip
    series_pk = 0
    for pk in range(1, count + 1):
        patient = patient_rows[(pk - 1) % people]
        day = (FIRST_DAY + dt.timedelta(days=rnd.randrange(DAYS))).strftime("%Y%m%d")
        time_of_day = f"{rnd.randint(7, 19):02d}{rnd.randint(0, 59):02d}00"
        uid, accession = f"1.2.826.0.1.3680043.10.1234.{pk}", f"ACC{pk:08d}"
        modalities = rnd.choice(MODALITIES)
        population.accessions.append(accession)
        description = f"{modalities.split(chr(92))[0]} EXAM"
        study_rows.append({
            "pk": pk, "patient_pk": patient["pk"], "study_uid": uid, "study_date": day,
            "study_time": f"{time_of_day}.000000", "accession": accession, "study_id": str(pk),
            "description": description, "referring_upper": "REFERRER^A", "modalities": modalities,
            "num_series": len(modalities.split("\\")), "num_instances": 100 * len(modalities.split("\\")),
            "size": 52_600_000, "status": ARCHIVED,
            "attributes": {"0020000D": _value("UI", uid), "00080020": _value("DA", day),
                           "00080030": _value("TM", time_of_day), "00080050": _value("SH", accession),
                           "00200010": _value("SH", str(pk)), "00081030": _value("LO", description),
                           "00080090": _pn("Referrer^A")},
            "created_at": now, "updated_at": now, "completed_at": now,
        })  # fmt: skip
        for number, modality in enumerate(modalities.split("\\"), 1):
            series_pk += 1
            series_uid = f"{uid}.{number}"
            series_rows.append({
                "pk": series_pk, "study_pk": pk, "series_uid": series_uid, "modality": modality,
                "series_number": number, "description": "", "body_part": "", "series_date": day,
                "pps_start_date": "", "pps_start_time": "", "num_instances": 100,
                "attributes": {"0020000E": _value("UI", series_uid), "00080060": _value("CS", modality),
                               "00200011": _value("IS", number)},
                "created_at": now, "updated_at": now,
            })  # fmt: skip
        patient["num_studies"] += 1
        patient["num_series"] += len(modalities.split("\\"))
        patient["num_instances"] += 100 * len(modalities.split("\\"))
    for table, rows in ((patients, patient_rows), (studies, study_rows), (series, series_rows)):
        for start in range(0, len(rows), 5000):
            with db.begin() as conn:
                conn.execute(table.insert(), rows[start : start + 5000])
    _after_bulk_load(db)
    return population


def _after_bulk_load(db: sa.Engine) -> None:
    """Sequences past the explicit keys, and fresh planner statistics (autovacuum would do it within a minute)."""
    if db.dialect.name == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("esb_dicom_patients", "esb_dicom_studies", "esb_dicom_series"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), (SELECT max(pk) FROM {table}))"
                )
            conn.exec_driver_sql("ANALYZE")
    else:
        with db.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def queries(population: Population, count: int, seed: int = 7) -> dict[str, list[dict[str, str]]]:
    """``count`` requests of each kind: the matching keys only (return keys are added when sent)."""
    rnd = random.Random(seed)
    out: dict[str, list[dict[str, str]]] = {"patient_id": [], "accession": [], "date_modality": [], "name_prefix": []}
    for _ in range(count):
        out["patient_id"].append({"PatientID": rnd.choice(population.patient_ids)})
        out["accession"].append({"AccessionNumber": rnd.choice(population.accessions)})
        first = FIRST_DAY + dt.timedelta(days=rnd.randrange(DAYS - 1))
        days = f"{first:%Y%m%d}-{first + dt.timedelta(days=1):%Y%m%d}"
        out["date_modality"].append({"StudyDate": days, "ModalitiesInStudy": "CT"})
        family, given = rnd.choice(population.names).split("^")
        out["name_prefix"].append({"PatientName": f"{family}^{given[0]}*"})
    return out
