"""Historical bulk load (A1.5): millions of registrations into the index, resumable.

Feeding a hospital's history record by record through :meth:`feed` costs a
candidate query, a scoring pass and a dozen statements per record. Here a
batch is standardized at once, clustered in memory with :func:`link_batch`
(the feed's model), and its members are scored against the patients already
in the index through the blocking table (one ``IN`` query per batch), so a
cluster joins the existing person it links to. Rows are written with
``executemany`` in one transaction per batch, which also advances the
load's checkpoint row: a killed load resumes after the last committed batch
and never inserts a patient twice.

What the bulk path cannot decide alone goes through the index's own feed
rules, one transaction per record and before the batch's commit: records
whose local ID is already registered (updates), local IDs repeated within a
batch, and clusters that link to two different existing persons. Re-running
such a feed after a crash is an update, so the checkpoint still holds.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Engine, bindparam, insert, select, text, tuple_, update
from sqlalchemy.engine import Connection

from esb.errors import EmpiError
from esb.journal.store import utcnow
from profiles.empi import codec, store
from profiles.empi.golden import golden_record
from profiles.empi.matching import Matcher, link_batch
from profiles.empi.matching.matcher import Features
from profiles.empi.model import Domain, Identifier, PatientRecord
from profiles.empi.mpi import MasterPatientIndex
from profiles.empi.schema import blocking, bulk_loads, domains, history, identifiers, patients, persons, reviews

#: bound parameters per IN list (SQLite >= 3.32 allows 32766; pairs count twice)
CHUNK = 2000
#: an existing blocking key shared by more patients than this is not used for candidates
MAX_BLOCK = 1000


@dataclass(frozen=True)
class BadRow:
    """An input row the reader could not turn into a record; it is rejected with this reason."""

    reason: str
    identifier: str = ""


@dataclass(frozen=True)
class Reject:
    row: int  # 1-based position in the input
    reason: str
    identifier: str = ""


@dataclass
class BulkReport:
    skipped: int = 0  # rows a previous run of the same load already committed
    read: int = 0
    loaded: int = 0  # new patients
    updated: int = 0  # rows whose local ID was already registered
    linked: int = 0  # new patients placed with a person that has other patients
    persons: int = 0  # new persons
    batches: int = 0
    finished: bool = False
    rejected: list[Reject] = field(default_factory=list)


@dataclass
class _Entry:
    row: int
    record: PatientRecord  # standardized
    domain_key: str
    others: list[tuple[str, Identifier]]
    keys: list[str] = field(default_factory=list)


class _Memo(Matcher):
    """The index's matcher remembering one batch's keys and features by record, which
    :func:`link_batch` and the cross-batch scoring would otherwise each compute."""

    def __init__(self, matcher: Matcher) -> None:
        self.__dict__.update(matcher.__dict__)
        self.keys: dict[int, list[str]] = {}
        self.prepared: dict[int, Features] = {}

    def blocking_keys(self, record: PatientRecord) -> list[str]:
        found = self.keys.get(id(record))
        if found is None:
            found = self.keys[id(record)] = super().blocking_keys(record)
        return found

    def features(self, record: PatientRecord) -> Features:
        found = self.prepared.get(id(record))
        if found is None:
            found = self.prepared[id(record)] = super().features(record)
        return found


class _IdRow(NamedTuple):
    domain_key: str
    value: str
    type_code: str


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _resume(engine: Engine, name: str | None) -> int:
    if name is None:
        return 0
    with engine.begin() as conn:
        row = conn.execute(select(bulk_loads.c.rows_done).where(bulk_loads.c.name == name)).first()
        if row is not None:
            return int(row.rows_done)
        now = utcnow()
        conn.execute(
            insert(bulk_loads).values(
                name=name, rows_done=0, loaded=0, linked=0, rejected=0, started_at=now, updated_at=now
            )
        )
        return 0


def load(
    engine: Engine,
    records_iter: Iterable[PatientRecord | BadRow],
    *,
    batch_size: int = 5000,
    checkpoint: str | None = None,
    index: MasterPatientIndex | None = None,
    stop_after: int | None = None,
    progress: Callable[[BulkReport], None] | None = None,
    actor: str = "bulk-load",
) -> BulkReport:
    """Load ``records_iter`` in batches; ``checkpoint`` names the load so a re-run resumes it.

    ``stop_after`` ends the run after that many batches (an interruption, for
    tests and for loading in slices).
    """
    if batch_size < 1:
        raise ValueError(f"bulk load: batch_size must be at least 1 (got {batch_size})")
    if index is None:
        from profiles.empi.service import build_index

        index = build_index(engine)
    index.setup()
    report = BulkReport(skipped=_resume(engine, checkpoint))
    items = iter(records_iter)
    next(itertools.islice(items, report.skipped, report.skipped), None)  # consume what was done
    row = report.skipped
    while stop_after is None or report.batches < stop_after:
        chunk = list(itertools.islice(items, batch_size))
        if not chunk:
            report.finished = True
            break
        _Batch(engine, index, report, actor, checkpoint).run(row, chunk)
        row += len(chunk)
        report.batches += 1
        if progress is not None:
            progress(report)
    if report.batches and engine.dialect.name == "postgresql":
        # the planner has no statistics for freshly filled tables: without them the feed's candidate
        # query picks hash joins over all patients (100-200 ms instead of 0.2 ms at 100,000 patients)
        with engine.begin() as conn:
            for table in (blocking, patients, identifiers, persons):
                conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}"))
    if report.finished and checkpoint is not None:
        with engine.begin() as conn:
            conn.execute(update(bulk_loads).where(bulk_loads.c.name == checkpoint).values(finished_at=utcnow()))
    return report


class _Batch:
    def __init__(
        self, engine: Engine, index: MasterPatientIndex, report: BulkReport, actor: str, checkpoint: str | None
    ) -> None:
        self.engine, self.index, self.report, self.actor, self.checkpoint = engine, index, report, actor, checkpoint
        matcher = index.matcher
        if not isinstance(matcher, Matcher):
            raise TypeError(f"bulk load needs the index's matcher to be a Matcher (got {type(matcher).__name__})")
        self.plain = matcher  # for records that do not outlive the call (their id() is reused)
        self.matcher: Matcher = _Memo(matcher)  # lives as long as the batch and its records
        self.rejected_before = len(report.rejected)

    def reject(self, row: int, reason: str, identifier: str = "") -> None:
        self.report.rejected.append(Reject(row, reason, identifier))

    def run(self, first_row: int, chunk: list[PatientRecord | BadRow]) -> None:
        self.report.read += len(chunk)
        entries = self.prepare(first_row, chunk)
        loaded_before, linked_before = self.report.loaded, self.report.linked
        fed, bulk_clusters = self.plan(entries)
        for entry in fed:
            self.feed(entry)
        with self.engine.begin() as conn:
            self.write(conn, bulk_clusters)
            if self.checkpoint is not None:
                conn.execute(
                    update(bulk_loads)
                    .where(bulk_loads.c.name == self.checkpoint)
                    .values(
                        rows_done=first_row + len(chunk),
                        loaded=bulk_loads.c.loaded + (self.report.loaded - loaded_before),
                        linked=bulk_loads.c.linked + (self.report.linked - linked_before),
                        rejected=bulk_loads.c.rejected + (len(self.report.rejected) - self.rejected_before),
                        updated_at=utcnow(),
                    )
                )

    # -- standardize and check -------------------------------------------------------

    def prepare(self, first_row: int, chunk: list[PatientRecord | BadRow]) -> list[_Entry]:
        entries: list[_Entry] = []
        domain_keys: dict[Domain, str] = {}
        for offset, item in enumerate(chunk):
            row = first_row + offset + 1
            if isinstance(item, BadRow):
                self.reject(row, item.reason, item.identifier)
                continue
            if not item.identifiers or not item.identifiers[0].value:
                self.reject(row, "no patient identifier")
                continue
            primary = item.identifiers[0]
            label = f"{primary.domain.key}/{primary.value}"
            try:
                domain_key = self._domain(domain_keys, primary.domain)
                others = [(self._domain(domain_keys, i.domain), i) for i in item.identifiers[1:] if i.domain.key]
                record = self.index.standardize(item)
            except (EmpiError, ValueError) as exc:
                self.reject(row, str(exc), label)
                continue
            entries.append(_Entry(row, record, domain_key, others, self.matcher.blocking_keys(record)))
        return entries

    def _domain(self, cache: dict[Domain, str], domain: Domain) -> str:
        if domain not in cache:
            with self.engine.begin() as conn:
                cache[domain] = self.index._domain_key(conn, domain)  # registers it unless domains are strict
        return cache[domain]

    # -- decide: bulk clusters and records for the feed rules ------------------------

    def plan(self, entries: list[_Entry]) -> tuple[list[_Entry], list[tuple[list[_Entry], str | None]]]:
        """Records to feed one by one, and clusters to write in bulk with their existing person (or None)."""
        self.entries = entries
        if not entries:
            return [], []
        result = link_batch([e.record for e in entries], self.matcher)
        self.batch_reviews = result.reviews
        self.cluster_of = result.cluster_of()
        local = [(e.domain_key, e.record.identifiers[0].value) for e in entries]
        repeated = {k for k, n in Counter(local).items() if n > 1}
        registered = self._registered(sorted(set(local)))
        links, self.existing_reviews = self._existing_matches(entries)
        fed: list[_Entry] = []
        clusters: list[tuple[list[_Entry], str | None]] = []
        for members in result.clusters:
            group = [entries[i] for i in members]
            targets: dict[str, float] = {}
            for i in members:
                for person_id, weight in links.get(i, {}).items():
                    targets[person_id] = max(weight, targets.get(person_id, weight))
            special = any(local[i] in repeated or local[i] in registered for i in members)
            if special or len(targets) > 1:
                fed.extend(group)
            else:
                clusters.append((group, next(iter(targets), None)))
        fed.sort(key=lambda e: e.row)
        return fed, clusters

    def _registered(self, local: list[tuple[str, str]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for part in _chunks(local):
                query = select(patients.c.domain_key, patients.c.local_id).where(
                    tuple_(patients.c.domain_key, patients.c.local_id).in_(list(part))
                )
                found.update((r.domain_key, r.local_id) for r in conn.execute(query))
        return found

    def _existing_matches(
        self, entries: list[_Entry]
    ) -> tuple[dict[int, dict[str, float]], list[tuple[int, str, str, float]]]:
        """Per entry, the existing persons it links to (best weight), and review pairs (entry, patient, person)."""
        all_keys = sorted({k for e in entries for k in e.keys})
        by_key: dict[str, list[str]] = defaultdict(list)
        with self.engine.connect() as conn:
            for part in _chunks(all_keys):
                for r in conn.execute(select(blocking.c.key, blocking.c.patient_id).where(blocking.c.key.in_(part))):
                    by_key[r.key].append(r.patient_id)
            wanted: dict[int, list[str]] = {}
            limit = self.index.config.candidate_limit
            for n, entry in enumerate(entries):
                shared: Counter[str] = Counter()
                for key in entry.keys:
                    ids = by_key.get(key, ())
                    if len(ids) <= MAX_BLOCK:
                        shared.update(ids)
                if shared:
                    wanted[n] = [pid for pid, _ in shared.most_common(limit)]
            ids = sorted({pid for pids in wanted.values() for pid in pids})
            rows: dict[str, tuple[str, Any]] = {}
            for part in _chunks(ids):
                query = select(patients.c.id, patients.c.person_id, patients.c.record).where(
                    patients.c.id.in_(part), patients.c.status == "active", patients.c.person_id.is_not(None)
                )
                for found in conn.execute(query):
                    rows[found.id] = (found.person_id, self.plain.features(codec.from_json(found.record)))
        links: dict[int, dict[str, float]] = {}
        found_reviews: list[tuple[int, str, str, float]] = []
        upper, lower = self.matcher.model.upper, self.matcher.model.lower
        for n, pids in wanted.items():
            mine = self.matcher.features(entries[n].record)
            for pid in pids:
                if pid not in rows:
                    continue
                person_id, theirs = rows[pid]
                weight, supported = self.matcher.weigh(mine, theirs)
                if weight >= upper and supported:
                    best = links.setdefault(n, {})
                    best[person_id] = max(weight, best.get(person_id, weight))
                elif weight >= lower:
                    found_reviews.append((n, pid, person_id, weight))
        return links, found_reviews

    # -- the feed rules, one record at a time ------------------------------------------

    def feed(self, entry: _Entry) -> None:
        primary = entry.record.identifiers[0]
        try:
            with self.engine.begin() as conn:
                known = store.patient_by_local(conn, entry.domain_key, primary.value) is not None
                # the record is standardized already: the index's feed minus standardization
                result = self.index._feed(conn, entry.record, self.actor)
                others = conn.execute(
                    select(patients.c.id).where(
                        patients.c.person_id == result.person_id,
                        patients.c.status == "active",
                        patients.c.id != result.patient_id,
                    )
                ).first()
        except EmpiError as exc:
            self.reject(entry.row, str(exc), f"{entry.domain_key}/{primary.value}")
            return
        if known:
            self.report.updated += 1
        else:
            self.report.loaded += 1
            self.report.linked += others is not None

    # -- bulk writes -------------------------------------------------------------------

    def write(self, conn: Connection, clusters: list[tuple[list[_Entry], str | None]]) -> None:
        if not clusters:
            return
        now = utcnow()
        new_persons: list[dict[str, Any]] = []
        patient_rows: list[dict[str, Any]] = []
        patient_of: dict[int, tuple[str, str]] = {}  # entry row -> (patient id, person id)
        for group, target in clusters:
            person_id = target
            if person_id is None:
                person_id = store.new_person_id()
                new_persons.append(dict(id=person_id, status="active", golden={}, created_at=now, updated_at=now))
                self.report.persons += 1
            for position, entry in enumerate(group):
                patient_id = store.new_id()
                patient_of[entry.row] = (patient_id, person_id)
                record = entry.record
                joined = target is not None or position > 0
                self.report.loaded += 1
                self.report.linked += joined
                patient_rows.append(
                    store.patient_row(
                        patient_id, entry.domain_key, record.identifiers[0].value, record, now, person_id=person_id
                    )
                )
        entries = [e for group, _ in clusters for e in group]
        if new_persons:
            conn.execute(insert(persons), new_persons)
        conn.execute(insert(patients), patient_rows)
        id_rows = self._write_identifiers(conn, entries, patient_of)
        key_rows = [
            {"key": key, "patient_id": patient_of[e.row][0]}
            for e in entries
            for key in sorted({k[:200] for k in e.keys})
        ]
        if key_rows:
            conn.execute(insert(blocking), key_rows)
        conn.execute(
            insert(history),
            [
                dict(at=now, op="registered", person_id=patient_of[e.row][1], patient_id=patient_of[e.row][0],
                     detail={"source": e.record.source, "load": self.checkpoint or ""}, actor=self.actor[:200])
                for e in entries
            ],
        )  # fmt: skip
        self._write_reviews(conn, patient_of, now)
        fresh: dict[str, list[tuple[PatientRecord, list[Any]]]] = defaultdict(list)
        for group, target in clusters:
            if target is None:
                for e in group:
                    patient_id, person_id = patient_of[e.row]
                    fresh[person_id].append((e.record, id_rows.get(patient_id, [])))
        self._refresh_goldens(conn, fresh, sorted({t for _, t in clusters if t is not None}))

    def _write_identifiers(
        self, conn: Connection, entries: list[_Entry], patient_of: dict[int, tuple[str, str]]
    ) -> dict[str, list[_IdRow]]:
        """Like the feed: an identifier another patient already holds stays with that patient."""
        wanted = [(e, dk, i) for e in entries for dk, i in [(e.domain_key, e.record.identifiers[0]), *e.others]]
        pairs = sorted({(dk, i.value) for _, dk, i in wanted})
        taken: set[tuple[str, str]] = set()
        for part in _chunks(pairs):
            query = select(identifiers.c.domain_key, identifiers.c.value).where(
                tuple_(identifiers.c.domain_key, identifiers.c.value).in_(list(part))
            )
            taken.update((r.domain_key, r.value) for r in conn.execute(query))
        rows = []
        written: dict[str, list[_IdRow]] = defaultdict(list)
        for entry, domain_key, identifier in wanted:
            if (domain_key, identifier.value) in taken:
                continue
            taken.add((domain_key, identifier.value))
            patient_id = patient_of[entry.row][0]
            row = _IdRow(domain_key, identifier.value, identifier.type_code[:10])
            written[patient_id].append(row)
            rows.append({"patient_id": patient_id, **row._asdict()})
        if rows:
            conn.execute(insert(identifiers), rows)
        return written

    def _write_reviews(self, conn: Connection, patient_of: dict[int, tuple[str, str]], now: Any) -> None:
        pairs: dict[tuple[str, str], float] = {}
        for i, j, weight in self.batch_reviews:
            a, b = patient_of.get(self.entries[i].row), patient_of.get(self.entries[j].row)
            if a and b and a[1] != b[1]:
                pairs[tuple(sorted((a[0], b[0])))] = weight  # type: ignore[index]
        for n, patient_id, person_id, weight in self.existing_reviews:
            mine = patient_of.get(self.entries[n].row)
            if mine and mine[1] != person_id:
                pairs[tuple(sorted((mine[0], patient_id)))] = weight  # type: ignore[index]
        rows = [
            dict(patient_a=a, patient_b=b, weight=float(w), evidence=[], status="open", created_at=now)
            for (a, b), w in pairs.items()
        ]
        if rows:
            conn.execute(insert(reviews), rows)

    def _refresh_goldens(
        self, conn: Connection, fresh: dict[str, list[tuple[PatientRecord, list[Any]]]], existing: list[str]
    ) -> None:
        """Golden records: new persons' from the batch in memory, joined persons' read back (with the new rows)."""
        members: dict[str, list[tuple[PatientRecord, list[Any]]]] = dict(fresh)
        found: dict[str, list[Any]] = defaultdict(list)
        for part in _chunks(existing):
            query = select(patients.c.id, patients.c.person_id, patients.c.record).where(
                patients.c.person_id.in_(part), patients.c.status == "active"
            )
            for r in conn.execute(query.order_by(patients.c.created_at, patients.c.id)):
                found[r.person_id].append(r)
        ids_of: dict[str, list[Any]] = defaultdict(list)
        patient_ids = [r.id for rows in found.values() for r in rows]
        for part in _chunks(patient_ids):
            for r in conn.execute(select(identifiers).where(identifiers.c.patient_id.in_(part))):
                ids_of[r.patient_id].append(r)
        for person_id, rows in found.items():
            members[person_id] = [(codec.from_json(r.record), ids_of.get(r.id, [])) for r in rows]
        known = {r.key: r for r in conn.execute(select(domains))}
        config = self.index.config
        updates = []
        now = utcnow()
        for person_id, group in members.items():
            out = [Identifier(person_id, config.master_domain, "PI")]
            for _, id_rows in group:
                for i in id_rows:
                    d = known.get(i.domain_key)
                    domain = Domain(d.namespace, d.universal_id, d.universal_id_type) if d else Domain(i.domain_key)
                    out.append(Identifier(i.value, domain, i.type_code or ""))
            golden = golden_record([record for record, _ in group], out, trust=config.trust)
            updates.append({"pid": person_id, "doc": codec.to_json(golden, with_derived=False), "at": now})
        statement = (
            update(persons)
            .where(persons.c.id == bindparam("pid"))
            .values(golden=bindparam("doc"), status="active", updated_at=bindparam("at"))
        )
        if updates:
            conn.execute(statement, updates)
