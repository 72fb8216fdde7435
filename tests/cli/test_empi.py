"""``esb empi ...`` against an index filled through MasterPatientIndex, with the real
standardizer and matching model, on both databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from esb.journal import Journal
from profiles.empi.matching.config import DEFAULT_MODEL_FILE
from profiles.empi.model import Domain, Identifier, PatientRecord, PersonName
from profiles.empi.mpi import MasterPatientIndex
from profiles.empi.service import build_index
from tests.cli.conftest import Cli

HIS = Domain("HIS1", "1.2.3.1", "ISO")
RIS = Domain("RIS1", "1.2.3.2", "ISO")
ZHANG_NID = "110101198005060015"  # GB 11643 with a valid check character, male, born 1980-05-06


def rec(
    value: str, domain: Domain, family: str, given: str, born: str, sex: str, *, nid: str = "", phone: str = ""
) -> PatientRecord:
    return PatientRecord(
        identifiers=(Identifier(value, domain, "MR"),),
        names=(PersonName(family, given),),
        birth_date=born,
        sex=sex,
        national_id=nid,
        phones=(phone,) if phone else (),
        source=domain.namespace,
        event_time="20261129080000",
    )


@dataclass
class Seeded:
    cli: Cli
    mpi: MasterPatientIndex
    zhang: str  # the person of H100 (张三丰) and R900 (ZHANG^SANFENG), linked by matching


@pytest.fixture
def seeded(
    db_url: str, make_cli: Callable[[str], Cli], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Seeded]:
    # The shipped model with its decision band pinned, so tuning does not move these pairs between
    # link, review and new; comparators and weights are the real ones. With the weights of
    # 2026-11-29: 张三丰/ZHANG SANFENG 42.7 (link), 诸葛明亮 36.5 and 宋佳怡/宋嘉怡 30.9 (review),
    # 李四 without a birth date 16.5 (new).
    model = yaml.safe_load(DEFAULT_MODEL_FILE.read_text(encoding="utf-8"))
    model["matching"]["thresholds"] = {"upper": 40, "lower": 20}
    (tmp_path / "matching.yaml").write_text(yaml.safe_dump(model, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("ESB_EMPI_MATCHING_MODEL", str(tmp_path / "matching.yaml"))
    monkeypatch.setenv("ESB_ACTOR", "dr-wang")
    monkeypatch.delenv("ESB_ADMIN_DENY", raising=False)
    journal = Journal(db_url)
    journal.upgrade()
    mpi = build_index(journal.engine)
    mpi.setup()
    zhang = mpi.feed(rec("H100", HIS, "张", "三丰", "19800506", "M", nid=ZHANG_NID, phone="13812345678"), actor="his")
    mpi.feed(rec("R900", RIS, "ZHANG", "SANFENG", "19800506", "M", phone="+86 138 1234 5678"), actor="ris")
    # homophone given names (佳怡/嘉怡), same birth date: a review, not a link
    mpi.feed(rec("H300", HIS, "宋", "佳怡", "19920817", "F"), actor="his")
    mpi.feed(rec("R300", RIS, "宋", "嘉怡", "19920817", "F"), actor="ris")
    # same name, birth year one apart: a weaker review
    mpi.feed(rec("H400", HIS, "诸葛", "明亮", "19620315", "M"), actor="his")
    mpi.feed(rec("R400", RIS, "诸葛", "明亮", "19630315", "M"), actor="ris")
    # a duplicate registration at the HIS (emergency, no birth date): a separate person until merged
    mpi.feed(rec("H200", HIS, "李", "四", "19900101", "F"), actor="his")
    mpi.feed(rec("H201", HIS, "李", "四", "", "F"), actor="his")
    assert zhang.person_id is not None
    yield Seeded(make_cli(db_url), mpi, zhang.person_id)
    journal.close()


def person_of(mpi: MasterPatientIndex, value: str, domain: Domain = HIS) -> str | None:
    person: str | None = mpi.patient(Identifier(value, domain))["person_id"]
    return person


def test_domains_list_and_add(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = seeded.cli
    listed = {d["key"]: d for d in cli.json("empi", "domains", "list")}
    assert listed["1.2.156.112.9999.1.1"]["kind"] == "master"
    assert listed["1.2.3.1"]["namespace"] == "HIS1" and listed["1.2.3.1"]["auto_registered"] is True

    added = cli.json("empi", "domains", "add", "PACS", "--oid", "1.2.3.3", "--description", "影像归档")
    assert added == [
        {
            "key": "1.2.3.3", "namespace": "PACS", "universal_id": "1.2.3.3", "universal_id_type": "ISO",
            "kind": "local", "auto_registered": False, "description": "影像归档", "created_at": added[0]["created_at"],
        }
    ]  # fmt: skip
    again = cli("empi", "domains", "add", "PACS", "--oid", "1.2.3.3")
    assert again.exit_code == 0 and "already registered" in again.stdout
    table = cli("empi", "domains", "list")
    assert table.exit_code == 0 and table.stdout.splitlines()[0].split()[:3] == ["key", "namespace", "universal_id"]
    assert "影像归档" in table.stdout

    clash = cli("empi", "domains", "add", "PACS", "--oid", "1.2.3.9")
    assert clash.exit_code == 1 and "'PACS'" in clash.stderr and "1.2.3.3" in clash.stderr
    bad = cli("empi", "domains", "add", "PACS2", "--oid", "1.2.x")
    assert bad.exit_code == 2 and "'1.2.x' is not an OID" in bad.stderr
    assert cli("empi", "domains", "add", "HIS^2").exit_code == 2

    monkeypatch.setenv("ESB_ADMIN_DENY", "empi.domains")
    denied = cli("empi", "domains", "add", "LIS")
    assert denied.exit_code == 1 and "'dr-wang' may not empi.domains" in denied.stderr
    assert "LIS" not in {d["namespace"] for d in seeded.mpi.domains()}


def test_patient_person_pix_and_search(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, zhang = seeded.cli, seeded.zhang
    found = cli.json("empi", "patient", "H100^^^HIS1&1.2.3.1&ISO")
    assert (found["person_id"], found["status"], found["link"], found["domain"]) == (zhang, "active", "auto", "1.2.3.1")
    assert found["record"]["names"][0]["family"] == "张" and found["record"]["national_id"] == ZHANG_NID
    by_key = cli("empi", "patient", "--domain", "RIS1", "R900")
    assert by_key.exit_code == 0, by_key.output
    assert f"person_id: {zhang}" in by_key.stdout and "name: ZHANG^SANFENG" in by_key.stdout
    assert cli.json("empi", "patient", "--domain", "1.2.3.2", "R900")["local_id"] == "R900"

    person = cli.json("empi", "person", zhang)
    assert person["person_id"] == zhang and person["status"] == "active"
    assert {(p["domain"], p["local_id"]) for p in person["patients"]} == {("1.2.3.1", "H100"), ("1.2.3.2", "R900")}
    assert person["identifiers"][0] == {
        "value": zhang, "namespace": "EMPI", "universal_id": "1.2.156.112.9999.1.1",
        "universal_id_type": "ISO", "type_code": "PI",
    }  # fmt: skip
    assert person["golden"]["national_id"] == ZHANG_NID
    table = cli("empi", "person", zhang)
    assert table.exit_code == 0 and "identifiers:" in table.stdout and "patients:" in table.stdout

    pix = cli.json("empi", "pix", "H100^^^HIS1")
    assert [(i["namespace"], i["value"]) for i in pix] == [("EMPI", zhang), ("RIS1", "R900")]
    assert [i["value"] for i in cli.json("empi", "pix", "H100^^^HIS1", "--domain", "RIS1")] == ["R900"]
    master = cli.json("empi", "pix", f"{zhang}^^^EMPI&1.2.156.112.9999.1.1&ISO", "--domain", "1.2.3.1")
    assert [i["value"] for i in master] == ["H100"]

    # 张, ZHANG and Zhang find the same person, whose golden record merges both sources
    for args in (("--family", "张", "--given", "三丰"), ("--family", "zhang"), ("--family", "Zhang", "--sex", "m")):
        hits = cli.json("empi", "search", *args)
        assert [h["person_id"] for h in hits] == [zhang], args
        assert {i["value"] for i in hits[0]["identifiers"]} == {zhang, "H100", "R900"}
    song = cli("empi", "search", "--family", "宋", "--birth-date", "1992-08-17")
    assert song.exit_code == 0 and len(song.stdout.splitlines()) == 4  # header, rule, two persons
    assert cli.json("empi", "search", "--national-id", ZHANG_NID)[0]["person_id"] == zhang
    assert cli.json("empi", "search", "--family", "欧阳") == []

    # not found: exit 1 naming the identifier and its domain, with no demographics
    missing = cli("empi", "patient", "H999^^^HIS1")
    assert missing.exit_code == 1 and "no patient H999 in domain '1.2.3.1'" in missing.stderr
    unknown = cli("empi", "pix", "H100^^^NOPE")
    assert unknown.exit_code == 1 and "unknown assigning authority 'NOPE'" in unknown.stderr
    nobody = cli("empi", "person", "P0000")
    assert nobody.exit_code == 1 and "no person P0000" in nobody.stderr
    # bad syntax: exit 2
    for usage in (("patient", "H100"), ("patient", "^^^HIS1"), ("pix", "H100^^^"), ("search",)):
        result = cli("empi", *usage)
        assert result.exit_code == 2, (usage, result.output)
    assert "no assigning authority" in cli("empi", "patient", "H100").stderr
    assert "YYYYMMDD" in cli("empi", "search", "--birth-date", "80-5-6").stderr

    # reading a patient is itself an operation
    monkeypatch.setenv("ESB_ADMIN_DENY", "empi.read")
    denied = cli("empi", "patient", "H100^^^HIS1")
    assert denied.exit_code == 1 and "may not empi.read" in denied.stderr
    assert "张" not in denied.output and denied.stdout == ""


def test_reviews_list_link_and_distinct(seeded: Seeded) -> None:
    cli, mpi = seeded.cli, seeded.mpi
    opened = cli.json("empi", "reviews", "list")
    assert len(opened) == 2 and opened[0]["weight"] > opened[1]["weight"] > 0
    song, zhuge = sorted(opened, key=lambda r: "H300" not in (r["a"]["identifier"] + r["b"]["identifier"]))
    assert {song["a"]["identifier"], song["b"]["identifier"]} == {
        "H300^^^HIS1&1.2.3.1&ISO",
        "R300^^^RIS1&1.2.3.2&ISO",
    }
    evidence = {e["field"]: e for e in song["evidence"]}
    assert evidence["birth_date"]["level"] == "exact" and evidence["birth_date"]["weight"] > 0
    assert evidence["given"]["level"] == "pinyin" and "a" not in evidence["given"]
    assert {e["field"]: e["level"] for e in zhuge["evidence"]}["birth_date"] == "one_year"
    # the compared values only when asked
    with_values = {r["id"]: r for r in cli.json("empi", "reviews", "list", "--values")}
    shown = {e["field"]: {e["a"], e["b"]} for e in with_values[song["id"]]["evidence"]}
    assert shown["given"] == {"佳怡", "嘉怡"} and shown["birth_date"] == {"19920817"}
    table = cli("empi", "reviews", "list")
    assert table.exit_code == 0 and f"review {song['id']}" in table.stdout and "佳怡" not in table.stdout

    linked = cli.json("empi", "reviews", "link", str(song["id"]))
    assert linked["operation"] == "linked" and linked["actor"] == "dr-wang"
    assert person_of(mpi, "H300") == person_of(mpi, "R300", RIS) == linked["person_id"]
    assert [c["changed"] for c in linked["changes"]].count(True) == 1

    kept = cli("empi", "reviews", "distinct", str(zhuge["id"]))
    assert kept.exit_code == 0, kept.output
    assert kept.stdout.startswith("distinct: person ")
    assert person_of(mpi, "H400") != person_of(mpi, "R400", RIS)
    assert cli.json("empi", "reviews", "list") == []
    assert [r["id"] for r in cli.json("empi", "reviews", "list", "--status", "linked")] == [song["id"]]
    decided = cli.json("empi", "reviews", "list", "--status", "distinct")
    assert [r["id"] for r in decided] == [zhuge["id"]]

    again = cli("empi", "reviews", "link", str(zhuge["id"]))
    assert again.exit_code == 1 and f"review {zhuge['id']} is already decided (distinct)" in again.stderr
    assert person_of(mpi, "H400") != person_of(mpi, "R400", RIS)
    gone = cli("empi", "reviews", "distinct", "4711")
    assert gone.exit_code == 1 and "no review 4711" in gone.stderr
    assert cli("empi", "reviews", "link", "first").exit_code == 2
    # the decisions are in the history with their actor
    ops = [(h["op"], h["actor"]) for h in cli.json("empi", "history", "--person", linked["person_id"])]
    assert ops[0] == ("registered", "his" if linked["changes"][0]["patient"].startswith("H") else "ris")
    assert ops[-1] == ("linked", "dr-wang")


def test_merge_unmerge_link_unlink_split(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, mpi = seeded.cli, seeded.mpi
    li, dup = person_of(mpi, "H200"), person_of(mpi, "H201")
    assert li != dup
    before = cli.json("empi", "stats")
    assert before == {"persons": 7, "patients": 8, "open_reviews": 2, "domains": 3}

    # a denied merge changes nothing
    monkeypatch.setenv("ESB_ADMIN_DENY", "empi.merge")
    denied = cli("empi", "merge", "--domain", "HIS1", "H200", "H201")
    assert denied.exit_code == 1 and "may not empi.merge" in denied.stderr
    assert mpi.patient(Identifier("H201", HIS))["status"] == "active" and person_of(mpi, "H201") == dup
    monkeypatch.delenv("ESB_ADMIN_DENY")

    merged = cli.json("empi", "merge", "--domain", "HIS1", "H200", "H201")
    assert merged["operation"] == "merged" and merged["events"] == ["updated", "merged"]
    changes = {c["patient"]: c for c in merged["changes"]}
    assert changes["H201^^^HIS1&1.2.3.1&ISO"] == {
        "patient": "H201^^^HIS1&1.2.3.1&ISO", "person_before": dup, "person_after": li,
        "status": "merged", "changed": True,
    }  # fmt: skip
    assert changes["H200^^^HIS1&1.2.3.1&ISO"]["changed"] is False
    assert cli.json("empi", "stats")["patients"] == 7
    retired = cli("empi", "merge", "H201^^^HIS1", "H200^^^HIS1")
    assert retired.exit_code == 1 and "survivor H201^^^HIS1 is merged" in retired.stderr
    twice = cli("empi", "merge", "H200^^^HIS1", "H201^^^HIS1")
    assert twice.exit_code == 1 and "H201 is already merged" in twice.stderr

    table = cli("empi", "unmerge", "H201^^^HIS1")
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("unmerged: person ") and "person_before" in table.stdout
    assert mpi.patient(Identifier("H201", HIS))["status"] == "active" and person_of(mpi, "H201") != li
    assert cli("empi", "unmerge", "H201^^^HIS1").exit_code == 1  # not merged any more

    # 李四 H200 and the RIS's 诸葛明亮: a wrong manual link, undone by unlink, redone, then split off
    linked = cli.json("empi", "link", "H200^^^HIS1", "R400^^^RIS1&1.2.3.2&ISO")
    assert person_of(mpi, "R400", RIS) == li == linked["person_id"]
    unlinked = cli.json("empi", "unlink", "H200^^^HIS1", "R400^^^RIS1")
    assert person_of(mpi, "R400", RIS) not in (li, None) and unlinked["events"] == ["unlinked"]
    cli.json("empi", "link", "H200^^^HIS1", "H201^^^HIS1")
    split = cli.json("empi", "split", "H201^^^HIS1")
    after = {c["patient"]: (c["person_before"], c["person_after"]) for c in split["changes"]}
    assert after["H201^^^HIS1&1.2.3.1&ISO"] == (li, split["person_id"]) and split["person_id"] != li
    assert after["H200^^^HIS1&1.2.3.1&ISO"] == (li, li)
    alone = cli("empi", "split", "H201^^^HIS1")
    assert alone.exit_code == 1 and "nothing to split" in alone.stderr
    assert cli("empi", "link", "H200", "H201").exit_code == 2

    history = cli.json("empi", "history", "--patient", "H201^^^HIS1")
    assert [h["op"] for h in history if h["op"] != "moved"] == ["registered", "merged", "unmerged", "linked", "split"]
    assert history[1]["detail"]["survivor"] == "H200^^^HIS1&1.2.3.1&ISO" and history[1]["actor"] == "dr-wang"
    by_person = cli.json("empi", "history", "--person", li or "", "--limit", "2")
    assert len(by_person) == 2 and all(h["person_id"] == li for h in by_person)
    shown = cli("empi", "history", "--person", li or "")
    assert shown.exit_code == 0 and shown.stdout.splitlines()[0].split()[:3] == ["id", "at", "op"]
    assert cli("empi", "stats").stdout.splitlines()[1] == "patients: 8"


def test_commands_refuse_a_database_without_the_schema(db_url: str, make_cli: Callable[[str], Cli]) -> None:
    result = make_cli(db_url)("empi", "stats")
    assert result.exit_code == 1 and "run 'esb db upgrade' first" in result.stderr
