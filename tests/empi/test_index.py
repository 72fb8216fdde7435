"""The index's rules (placement, merge, link, unlink, split, delete, stale updates, PIX, search)
on both databases, with a small rule-based matcher so every decision is predictable.
The real matching model has its own tests; the end-to-end EMPI tests use it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from esb.errors import EmpiError, StaleUpdateError, UnknownDomainError, UnknownPatientError
from esb.journal import Journal
from profiles.empi.config import EmpiConfig
from profiles.empi.model import Domain, Identifier, PatientRecord, PersonName
from profiles.empi.mpi import MasterPatientIndex

HIS = Domain("HIS", "1.2.3.1", "ISO")
RIS = Domain("RIS", "1.2.3.2", "ISO")


@dataclass
class Result:
    weight: float
    decision: str
    evidence: list[Any] = field(default_factory=list)


class RuleMatcher:
    """Same national ID: link; same name and birth date: review; otherwise new."""

    def blocking_keys(self, record: PatientRecord) -> list[str]:
        d = record.derived
        keys = [f"nm:{d['family']}{d['given']}"]
        if d.get("national_id"):
            keys.append(f"id:{d['national_id']}")
        return keys

    def score(self, a: PatientRecord, b: PatientRecord) -> Result:
        x, y = a.derived, b.derived
        if x.get("national_id") and x["national_id"] == y.get("national_id"):
            return Result(20.0, "link", [("national_id", "exact", 20.0)])
        if (x["family"], x["given"], x["birth_date"]) == (y["family"], y["given"], y["birth_date"]):
            return Result(5.0, "review", [("name", "exact", 3.0), ("birth_date", "exact", 2.0)])
        return Result(-10.0, "new")


def simple_standardize(record: PatientRecord) -> PatientRecord:
    name = record.primary_name
    derived = {
        "family": name.family.upper(),
        "given": name.given.upper(),
        "birth_date": record.birth_date,
        "national_id": record.national_id,
    }
    return record.with_(derived=derived)


def rec(
    value: str,
    domain: Domain = HIS,
    *,
    family: str = "ZHANG",
    given: str = "SAN",
    nid: str = "",
    born: str = "19800506",
    at: str = "20260101120000",
    extra: tuple[Identifier, ...] = (),
) -> PatientRecord:
    return PatientRecord(
        identifiers=(Identifier(value, domain, "MR"), *extra),
        names=(PersonName(family, given),),
        birth_date=born,
        national_id=nid,
        source=domain.namespace,
        event_time=at,
    )


@pytest.fixture
def mpi(db_url: str) -> Iterator[MasterPatientIndex]:
    journal = Journal(db_url)
    journal.upgrade()
    index = MasterPatientIndex(journal.engine, EmpiConfig(), RuleMatcher(), simple_standardize)
    index.setup()
    yield index
    journal.close()


def ids(mpi: MasterPatientIndex, value: str, domain: Domain = HIS) -> set[tuple[str, str]]:
    return {(i.domain.namespace, i.value) for i in mpi.pix(Identifier(value, domain))}


def test_same_national_id_links_and_pix_returns_every_domain_and_the_master_id(mpi: MasterPatientIndex) -> None:
    first = mpi.feed(rec("H1", nid="110101198005060011"), actor="t")
    second = mpi.feed(rec("R9", RIS, family="CHANG", nid="110101198005060011"), actor="t")
    assert first.person_id == second.person_id and first.person_id is not None
    assert ids(mpi, "H1") == {("RIS", "R9"), ("EMPI", first.person_id)}
    assert {(i.domain.namespace, i.value) for i in mpi.pix(Identifier("H1", HIS), [RIS])} == {("RIS", "R9")}
    master = Identifier(first.person_id, EmpiConfig().master_domain)
    assert {i.value for i in mpi.pix(master)} == {"H1", "R9"}
    assert [e.kind for e in first.events] == ["registered"]


def test_review_band_opens_a_review_and_keeps_persons_apart(mpi: MasterPatientIndex) -> None:
    a = mpi.feed(rec("H1"), actor="t")
    b = mpi.feed(rec("R1", RIS), actor="t")
    assert a.person_id != b.person_id
    (review,) = mpi.reviews()
    assert review["weight"] == 5.0 and review["evidence"][0][0] == "name"
    linked = mpi.link(Identifier("H1", HIS), Identifier("R1", RIS), actor="reviewer")
    assert linked.person_id == a.person_id
    assert mpi.reviews() == [] and mpi.reviews("linked")[0]["id"] == review["id"]
    # the reviewer's decision survives an update that re-runs matching
    mpi.feed(rec("R1", RIS, at="20260102000000"), actor="t")
    assert ids(mpi, "H1") == {("RIS", "R1"), ("EMPI", a.person_id)}


def test_update_keeps_links_and_rejects_stale_messages(mpi: MasterPatientIndex) -> None:
    mpi.feed(rec("H1", at="20260105000000"), actor="t")
    updated = mpi.feed(rec("H1", given="SI", at="20260106000000"), actor="t")
    assert [e.kind for e in updated.events] == ["updated"]
    assert mpi.patient(Identifier("H1", HIS))["record"]["names"][0]["given"] == "SI"
    with pytest.raises(StaleUpdateError):
        mpi.feed(rec("H1", given="OLD", at="20260101000000"), actor="t")
    assert mpi.patient(Identifier("H1", HIS))["record"]["names"][0]["given"] == "SI"


def test_merge_retires_the_prior_id_and_unmerge_restores_it(mpi: MasterPatientIndex) -> None:
    survivor = mpi.feed(rec("H1", nid="110101198005060011"), actor="t")
    prior = mpi.feed(rec("H2", given="WU"), actor="t")
    other = mpi.feed(rec("R2", RIS, given="WU"), actor="t")  # reviewed against H2 only
    mpi.link(Identifier("H2", HIS), Identifier("R2", RIS), actor="t")
    merged = mpi.merge(rec("H1", nid="110101198005060011", at="20260103000000"), Identifier("H2", HIS), actor="t")
    assert merged.person_id == survivor.person_id
    assert [e.kind for e in merged.events] == ["updated", "merged"]
    with pytest.raises(UnknownPatientError):
        mpi.pix(Identifier("H2", HIS))
    assert ids(mpi, "H1") == {("RIS", "R2"), ("EMPI", survivor.person_id)}
    assert mpi.golden(prior.person_id or "")["person_id"] == survivor.person_id  # merged person redirects
    restored = mpi.unmerge(Identifier("H2", HIS), actor="t")
    assert restored.person_id == prior.person_id
    assert ids(mpi, "H2") == {("RIS", "R2"), ("EMPI", prior.person_id)}
    assert ids(mpi, "H1") == {("EMPI", survivor.person_id)}
    assert other.patient_id != survivor.patient_id
    ops = [h["op"] for h in mpi.history(patient_id=prior.patient_id)]
    assert "merged" in ops and "unmerged" in ops


def test_unlink_and_split_are_kept_by_later_matching(mpi: MasterPatientIndex) -> None:
    a = mpi.feed(rec("H1", nid="110101198005060011"), actor="t")
    b = mpi.feed(rec("R1", RIS, nid="110101198005060011"), actor="t")
    assert a.person_id == b.person_id
    apart = mpi.unlink(Identifier("H1", HIS), Identifier("R1", RIS), actor="t")
    assert apart.person_id != a.person_id
    mpi.feed(rec("R1", RIS, nid="110101198005060011", at="20260109000000"), actor="t")
    assert ids(mpi, "R1", RIS) == {("EMPI", apart.person_id)}  # the must-not-link assertion held
    c = mpi.feed(rec("C1", Domain("CLINIC", "1.2.3.3", "ISO"), nid="110101198005060011"), actor="t")
    split = mpi.split(Identifier("C1", Domain("CLINIC", "1.2.3.3", "ISO")), actor="t")
    assert split.person_id not in {a.person_id, apart.person_id, c.person_id}
    assert ids(mpi, "C1", Domain("CLINIC", "1.2.3.3", "ISO")) == {("EMPI", split.person_id)}
    with pytest.raises(EmpiError, match="nothing to split"):
        mpi.split(Identifier("C1", Domain("CLINIC", "1.2.3.3", "ISO")), actor="t")


def test_delete_is_logical_and_domains_are_policed(mpi: MasterPatientIndex) -> None:
    mpi.feed(rec("H1"), actor="t")
    deleted = mpi.delete(Identifier("H1", HIS), actor="t")
    assert [e.kind for e in deleted.events] == ["deleted"]
    with pytest.raises(UnknownPatientError):
        mpi.pix(Identifier("H1", HIS))
    with pytest.raises(UnknownDomainError):
        mpi.pix(Identifier("X", Domain("NOPE", "9.9.9", "ISO")))
    strict = MasterPatientIndex(mpi.engine, EmpiConfig(strict_domains=True), RuleMatcher(), simple_standardize)
    with pytest.raises(UnknownDomainError, match="unknown assigning authority '7.7.7'"):
        strict.feed(rec("Z1", Domain("NEW", "7.7.7", "ISO")), actor="t")
    assert {d["key"] for d in mpi.domains()} >= {"1.2.3.1", EmpiConfig().master_domain.key}


def test_search_by_name_wildcard_birth_date_and_identifier(mpi: MasterPatientIndex) -> None:
    mpi.feed(rec("H1", nid="110101198005060011"), actor="t")
    mpi.feed(rec("H2", family="LI", given="SI", born="19900101"), actor="t")
    assert len(mpi.search(family="ZHANG")) == 1
    assert len(mpi.search(family="Z*")) == 1
    assert len(mpi.search(family="*", birth_date="19900101")) == 1
    hits = mpi.search(identifier=Identifier("H2", HIS))
    assert len(hits) == 1 and hits[0].record.names[0].family == "LI"
    assert mpi.search(family="WANG") == []
    assert mpi.counts() == {"persons": 2, "patients": 2, "open_reviews": 0}
