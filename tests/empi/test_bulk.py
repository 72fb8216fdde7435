"""The bulk loader on both databases: clusters like link_batch, resumes exactly once, rejects with reasons."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from esb.cli.common import main_group
from esb.journal import Journal
from profiles.empi.bulk import BadRow, load
from profiles.empi.matching import link_batch
from profiles.empi.matching.synthetic import generate
from profiles.empi.model import Domain, Identifier, PatientRecord, PersonName
from profiles.empi.mpi import MasterPatientIndex
from profiles.empi.schema import blocking, bulk_loads, patients, persons
from profiles.empi.service import build_index
from profiles.empi.standardize import standardize

RECORDS = generate(1200, seed=17).records()  # about 2,700 registrations


@pytest.fixture
def journal(db_url: str) -> Iterator[Journal]:
    journal = Journal(db_url)
    journal.upgrade()
    yield journal
    journal.close()


@pytest.fixture
def index(journal: Journal) -> MasterPatientIndex:
    return build_index(journal.engine)


def partition(journal: Journal) -> set[frozenset[tuple[str, str]]]:
    """The persons as sets of (domain, local id)."""
    groups: dict[str, set[tuple[str, str]]] = {}
    with journal.engine.connect() as conn:
        query = select(patients.c.domain_key, patients.c.local_id, patients.c.person_id)
        for row in conn.execute(query.where(patients.c.status == "active")):
            groups.setdefault(row.person_id, set()).add((row.domain_key, row.local_id))
    return {frozenset(g) for g in groups.values()}


def expected(records: list[PatientRecord]) -> set[frozenset[tuple[str, str]]]:
    clusters = link_batch([standardize(r) for r in records])
    keys = [(r.identifiers[0].domain.key, r.identifiers[0].value) for r in records]
    return {frozenset(keys[i] for i in cluster) for cluster in clusters.clusters}


def pairs(partition_: set[frozenset[tuple[str, str]]]) -> set[frozenset[tuple[str, str]]]:
    return {frozenset((a, b)) for group in partition_ for a in group for b in group if a < b}


def count(journal: Journal, table: object) -> int:
    with journal.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_one_batch_gives_link_batch_clusters(journal: Journal, index: MasterPatientIndex) -> None:
    report = load(journal.engine, RECORDS, batch_size=len(RECORDS), index=index)
    assert report.finished and report.loaded == len(RECORDS) and not report.rejected
    got = partition(journal)
    assert got == expected(RECORDS)
    assert report.persons == len(got) and report.linked == len(RECORDS) - len(got)
    assert count(journal, blocking) > len(RECORDS)
    with journal.engine.connect() as conn:
        golden = conn.execute(select(persons.c.golden).limit(1)).scalar_one()
    assert golden["identifiers"][0]["namespace"] == "EMPI"


def test_batches_link_across_batches_through_the_index(journal: Journal, index: MasterPatientIndex) -> None:
    report = load(journal.engine, RECORDS, batch_size=400, index=index)
    assert report.finished and report.batches == -(-len(RECORDS) // 400)
    assert report.loaded + report.updated == len(RECORDS) and count(journal, patients) == len(RECORDS)
    got, want = pairs(partition(journal)), pairs(expected(RECORDS))
    agree = len(got & want)
    # feeding across batches places records one at a time (no transitive bridging of two persons)
    assert agree / len(want) > 0.97 and agree / len(got) > 0.97


def test_interrupted_load_resumes_exactly_once(journal: Journal, index: MasterPatientIndex) -> None:
    first = load(journal.engine, RECORDS, batch_size=500, checkpoint="his-2019", index=index, stop_after=2)
    assert not first.finished and first.batches == 2 and count(journal, patients) == 1000
    second = load(journal.engine, RECORDS, batch_size=500, checkpoint="his-2019", index=index)
    assert second.finished and second.skipped == 1000 and second.read == len(RECORDS) - 1000
    assert count(journal, patients) == len(RECORDS)
    with journal.engine.connect() as conn:
        row = conn.execute(select(bulk_loads).where(bulk_loads.c.name == "his-2019")).one()
    assert row.rows_done == len(RECORDS) and row.finished_at is not None
    assert row.loaded == len(RECORDS)
    again = load(journal.engine, RECORDS, batch_size=500, checkpoint="his-2019", index=index)
    assert again.read == 0 and count(journal, patients) == len(RECORDS)


def test_reloading_without_checkpoint_updates_instead_of_duplicating(
    journal: Journal, index: MasterPatientIndex
) -> None:
    some = RECORDS[:300]
    load(journal.engine, some, batch_size=300, index=index)
    report = load(journal.engine, some, batch_size=300, index=index)
    assert report.updated == 300 and report.loaded == 0 and count(journal, patients) == 300


def test_bad_rows_are_rejected_with_reasons(journal: Journal, index: MasterPatientIndex) -> None:
    good = PatientRecord(
        identifiers=(Identifier("1", Domain("H01")),), names=(PersonName("张", "三"),), birth_date="19800101"
    )
    rows: list[PatientRecord | BadRow] = [
        good,
        BadRow("column 'birth_date': not a date (got '1980-13-45x')", "H01/2"),
        PatientRecord(names=(PersonName("李", "四"),)),
        PatientRecord(identifiers=(Identifier("3", Domain()),), names=(PersonName("王", "五"),)),
        good.with_(identifiers=(Identifier("1", Domain("H01")),)),  # same local ID again: an update
    ]
    report = load(journal.engine, rows, batch_size=10, index=index)
    assert [(r.row, r.identifier) for r in report.rejected] == [(2, "H01/2"), (3, ""), (4, "/3")]
    assert "not a date" in report.rejected[0].reason
    assert report.rejected[1].reason == "no patient identifier"
    assert "assigning authority" in report.rejected[2].reason
    assert count(journal, patients) == 1 and report.loaded == 1


def test_cli_loads_csv_and_jsonl_and_writes_rejects(journal: Journal, db_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "his.csv"
    csv_file.write_text(
        "id,domain,family,given,sex,birth_date,national_id,phone\n"
        "1001,H01,张,三丰,M,1980-05-06,110101198005060015,13800138000\n"
        "1002,H01,李,四,F,19900101,,\n"
        "1003,H01,王,五,M,1980-13,,\n",
        encoding="utf-8",
    )
    jsonl = tmp_path / "ris.jsonl"
    row = {"id": "R9", "domain": "R01&1.2.3.9&ISO", "family": "ZHANG", "given": "SANFENG", "sex": "M",
           "birth_date": "19800506", "national_id": "110101198005060015", "other_ids": "1001^^^H01"}  # fmt: skip
    jsonl.write_text(json.dumps(row, ensure_ascii=False) + "\n{not json\n", encoding="utf-8")
    env = {"ESB_DB_URL": db_url, "ESB_DATA_DIR": str(tmp_path / "var"), "ESB_CONFIG": None, "ESB_ADMIN_DENY": None}
    runner = CliRunner(env=env)
    first = runner.invoke(main_group, ["--json", "empi", "load", str(csv_file)], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["read"], report["loaded"], report["rejected"]) == (3, 2, 1)
    rejects = (tmp_path / "his.csv.rejects.csv").read_text(encoding="utf-8").splitlines()
    assert rejects[0] == "row,identifier,reason" and rejects[1].startswith("3,H01/1003,column 'birth_date'")
    second = runner.invoke(main_group, ["--json", "empi", "load", str(jsonl)], catch_exceptions=False)
    report = json.loads(second.stdout)
    assert (report["loaded"], report["linked"], report["rejected"]) == (1, 1, 1)
    assert "not JSON" in (tmp_path / "ris.jsonl.rejects.csv").read_text(encoding="utf-8")
    again = runner.invoke(main_group, ["--json", "empi", "load", str(csv_file)], catch_exceptions=False)
    assert json.loads(again.stdout)["resumed_after"] == 3 and count(journal, patients) == 3
