"""``esb empi ...``: the master patient index seen and corrected by an admin.

Domains (A1.9), a patient by local ID (A1.17), a person's golden record
(A1.18), PIX, search, the review queue, and the corrections of B2.7-B2.9 and
B2.13 (merge, unmerge, link, unlink, split). Like the other admin commands
they work on the database alone, so they run against a live cluster.

Every command passes :func:`esb.authz.authorize` before it does anything:
reading a patient is an operation too. Demographics are printed only by the
commands whose point is to show them (``patient``, ``person``, ``search``,
``reviews list --values``); errors and change reports name identifiers and
master IDs, never names or birth dates.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import click
from sqlalchemy import select

from esb.authz import authorize
from esb.cli.common import emit, fail, guard, journal_of, main_group
from esb.errors import UnknownPatientError
from profiles.empi import codec, store
from profiles.empi.config import load_empi_config
from profiles.empi.index import FeedResult
from profiles.empi.model import Domain, Identifier, PatientRecord
from profiles.empi.mpi import MasterPatientIndex

OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
#: characters an HL7 v2 namespace cannot hold (they are delimiters)
HL7_DELIMITERS = set("^&~\\|")
DOMAIN_COLUMNS = ["key", "namespace", "universal_id", "universal_id_type", "kind", "auto_registered", "description"]
CHANGE_COLUMNS = ["patient", "person_before", "person_after", "status", "changed"]
HISTORY_COLUMNS = ["id", "at", "op", "actor", "person_id", "patient", "detail"]

domain_option = click.option(
    "--domain", "domain", metavar="KEY", help="Assigning authority (namespace or OID) of identifiers given as VALUE."
)


# -- identifiers -------------------------------------------------------------------


def domain_of(text: str) -> Domain:
    """``HIS1``, ``1.2.3.1`` or ``HIS1&1.2.3.1&ISO``: the HD an admin types."""
    if "&" in text:
        namespace, oid, kind = (text.split("&") + ["", ""])[:3]
        return Domain(namespace, oid, kind or ("ISO" if oid else ""))
    return Domain(universal_id=text, universal_id_type="ISO") if OID.fullmatch(text) else Domain(namespace=text)


def parse_cx(text: str, domain: str | None, what: str = "CX") -> Identifier:
    """``VALUE^^^NAMESPACE&OID&ISO`` (HL7 CX), or a bare VALUE with ``--domain KEY``."""
    value, authority, type_code = text, "", ""
    if "^" in text:
        parts = text.split("^")
        value = parts[0]
        authority = parts[3] if len(parts) > 3 else ""
        type_code = parts[4] if len(parts) > 4 else ""
    authority = authority or (domain or "")
    if not value.strip():
        raise click.BadParameter(f"identifier '{text}' has no value (write VALUE^^^NAMESPACE&OID&ISO)", param_hint=what)
    if not authority.strip("&"):
        raise click.BadParameter(
            f"identifier '{text}' has no assigning authority (write VALUE^^^NAMESPACE&OID&ISO or give --domain KEY)",
            param_hint=what,
        )
    return Identifier(value, domain_of(authority), type_code)


def cx_text(value: str, domain: Domain) -> str:
    if domain.universal_id:
        return f"{value}^^^{domain.namespace}&{domain.universal_id}&{domain.universal_id_type}"
    return f"{value}^^^{domain.namespace}"


# -- the index ---------------------------------------------------------------------


@contextlib.contextmanager
def index_of(ctx: click.Context, *, write: bool = False) -> Iterator[MasterPatientIndex]:
    """The index on the configured database; missing tables say 'run esb db upgrade' (no silent migration)."""
    from profiles.empi.service import build_index

    config = load_empi_config()
    with journal_of(ctx) as journal:
        index = build_index(journal.engine, config)
        if write:
            index.setup()  # the master domain, as a starting engine would register it
        yield index


class Domains:
    """Domain keys -> HDs, read once per command."""

    def __init__(self, index: MasterPatientIndex) -> None:
        self.by_key = {
            r["key"]: Domain(r["namespace"], r["universal_id"], r["universal_id_type"]) for r in index.domains()
        }

    def cx(self, key: str, value: str) -> str:
        return cx_text(value, self.by_key.get(key, Domain(key)))

    def identifier(self, key: str, value: str) -> Identifier:
        return Identifier(value, self.by_key.get(key, Domain(key)))


# -- what a change did ---------------------------------------------------------------


def _members(index: MasterPatientIndex, identifiers: Sequence[Identifier]) -> dict[tuple[str, str], str | None]:
    """The named patients and every patient of their persons: (domain key, local id) -> person."""
    out: dict[tuple[str, str], str | None] = {}
    for identifier in identifiers:
        found = index.patient(identifier)
        out[(found["domain"], found["local_id"])] = found["person_id"]
        if found["person_id"]:
            with contextlib.suppress(UnknownPatientError):
                for member in index.golden(found["person_id"])["patients"]:
                    out.setdefault((member["domain"], member["local_id"]), found["person_id"])
    return out


def _changes(
    index: MasterPatientIndex, domains: Domains, before: dict[tuple[str, str], str | None]
) -> list[dict[str, Any]]:
    rows = []
    for (key, value), person in before.items():
        now = index.patient(domains.identifier(key, value))
        rows.append({
            "patient": domains.cx(key, value), "person_before": person, "person_after": now["person_id"],
            "status": now["status"], "changed": person != now["person_id"] or now["status"] != "active",
        })  # fmt: skip
    return rows


def _change(
    ctx: click.Context, what: str, actor: str, index: MasterPatientIndex, identifiers: Sequence[Identifier], op: Any
) -> None:
    """Run ``op`` and report every affected patient's person before and after."""
    domains = Domains(index)
    before = _members(index, identifiers)
    result: FeedResult = op()
    rows = _changes(index, domains, before)
    if ctx.obj.get("json"):
        emit(ctx, {
            "operation": what, "actor": actor, "person_id": result.person_id,
            "events": [e.kind for e in result.events], "changes": rows,
        })  # fmt: skip
        return
    click.echo(f"{what}: person {result.person_id} ({', '.join(e.kind for e in result.events)})")
    emit(ctx, [{**r, "changed": "*" if r["changed"] else ""} for r in rows], CHANGE_COLUMNS)


# -- commands ----------------------------------------------------------------------


@main_group.group()
def empi() -> None:
    """The master patient index: domains, patients, persons, reviews, corrections."""


@empi.group()
def domains() -> None:
    """Assigning authorities: the master domain and the local ones (A1.9)."""


@domains.command(name="list")
@click.pass_context
@guard
def domains_list(ctx: click.Context) -> None:
    """Every registered domain, the master domain included."""
    authorize("empi.read")
    with index_of(ctx) as index:
        rows = index.domains()
    emit(ctx, rows, DOMAIN_COLUMNS)


@domains.command(name="add")
@click.argument("namespace")
@click.option("--oid", help="The domain's universal ID (ISO OID, e.g. 1.2.156.112.1.3).")
@click.option("--description", default="", help="What the domain is (a hospital's HIS, a PACS...).")
@click.pass_context
@guard
def domains_add(ctx: click.Context, namespace: str, oid: str | None, description: str) -> None:
    """Register a local domain; feeds from it are then accepted with strict_domains on."""
    authorize("empi.domains")
    if not namespace.strip() or HL7_DELIMITERS & set(namespace):
        raise click.BadParameter(f"'{namespace}' must be a non-empty name without ^ & ~ \\ |", param_hint="NAMESPACE")
    if oid is not None and not OID.fullmatch(oid):
        raise click.BadParameter(f"'{oid}' is not an OID (digits joined by dots: 1.2.156.112.1)", param_hint="--oid")
    domain = Domain(namespace, oid or "", "ISO" if oid else "")
    with index_of(ctx, write=True) as index:
        known = [d for d in index.domains() if d["namespace"] == namespace or (oid and d["universal_id"] == oid)]
        same = [d for d in known if d["namespace"] == namespace and d["universal_id"] == (oid or "")]
        if known and not same:
            other = known[0]
            fail(
                f"domain '{namespace}' ({oid or 'no OID'}) conflicts with registered domain '{other['key']}' "
                f"({other['namespace']}&{other['universal_id']}); a namespace and an OID name one domain"
            )
        if not same:
            index.register_domain(domain, description)
        rows = [d for d in index.domains() if d["key"] == domain.key]
    if not ctx.obj.get("json"):
        click.echo(f"domain '{domain.key}' {'was already registered' if same else 'registered'}")
    emit(ctx, rows, DOMAIN_COLUMNS)


@empi.command()
@click.argument("cx")
@domain_option
@click.pass_context
@guard
def patient(ctx: click.Context, cx: str, domain: str | None) -> None:
    """A patient by local ID: its person, how it is linked, its record (A1.17)."""
    authorize("empi.read")
    identifier = parse_cx(cx, domain)
    with index_of(ctx) as index:
        found = index.patient(identifier)
    if ctx.obj.get("json"):
        emit(ctx, found)
        return
    head = {k: v for k, v in found.items() if k != "record" and v is not None}
    emit(ctx, {**head, **_record_lines(codec.from_json(found["record"]))})


@empi.command()
@click.argument("master_id")
@click.pass_context
@guard
def person(ctx: click.Context, master_id: str) -> None:
    """A person by master ID: golden record, identifiers, member patients (A1.18)."""
    authorize("empi.read")
    with index_of(ctx) as index:
        found = index.golden(master_id)
    if ctx.obj.get("json"):
        emit(ctx, found)
        return
    if found["person_id"] != master_id:
        click.echo(f"{master_id} was merged into {found['person_id']}")
    emit(ctx, {"person_id": found["person_id"], "status": found["status"], **_record_lines(_golden(found))})
    click.echo("\nidentifiers:")
    emit(ctx, found["identifiers"], ["value", "namespace", "universal_id", "type_code"])
    click.echo("\npatients:")
    emit(ctx, found["patients"], ["domain", "local_id", "link"])


@empi.command()
@click.argument("cx")
@click.option("--domain", "domains", multiple=True, metavar="KEY", help="Only identifiers in this domain; repeatable.")
@click.pass_context
@guard
def pix(ctx: click.Context, cx: str, domains: tuple[str, ...]) -> None:
    """The identifiers of the same person in other domains (PIX, A1.1), master ID first."""
    authorize("empi.read")
    identifier = parse_cx(cx, None)
    with index_of(ctx) as index:
        found = index.pix(identifier, [domain_of(d) for d in domains])
    emit(ctx, [codec.identifier_to_json(i) for i in found], ["value", "namespace", "universal_id", "type_code"])


@empi.command()
@click.option("--family", default="", help="Family name: hanzi or pinyin, * as a wildcard.")
@click.option("--given", default="", help="Given name: hanzi or pinyin, * as a wildcard.")
@click.option("--birth-date", default="", metavar="YYYY[MM[DD]]")
@click.option("--sex", type=click.Choice(["M", "F", "O", "U"], case_sensitive=False))
@click.option("--national-id", default="", metavar="ID", help="18-digit resident ID (15-digit IDs are converted).")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=20, show_default=True)
@click.pass_context
@guard
def search(
    ctx: click.Context, family: str, given: str, birth_date: str, sex: str | None, national_id: str, limit: int
) -> None:
    """Persons by demographics, as PDQ finds them (張三, 张三 and ZHANG^SAN alike)."""
    authorize("empi.read")
    if birth_date and not re.fullmatch(r"[0-9]{4}(-?[0-9]{2}(-?[0-9]{2})?)?", birth_date):
        raise click.BadParameter(f"'{birth_date}' is not YYYY, YYYYMM or YYYYMMDD", param_hint="--birth-date")
    birth_date = birth_date.replace("-", "")
    if not (family or given or birth_date or sex or national_id):
        raise click.UsageError("give at least one of --family, --given, --birth-date, --sex, --national-id")
    with index_of(ctx) as index:
        hits = index.search(
            family=family,
            given=given,
            birth_date=birth_date,
            sex=(sex or "").upper(),
            national_id=national_id,
            limit=limit,
        )
    if ctx.obj.get("json"):
        emit(ctx, [
            {"person_id": h.person_id, "record": codec.to_json(h.record, with_derived=False),
             "identifiers": [codec.identifier_to_json(i) for i in h.identifiers]}
            for h in hits
        ])  # fmt: skip
        return
    rows = []
    for hit in hits:
        name = hit.record.primary_name
        ids = ", ".join(cx_text(i.value, i.domain) for i in hit.identifiers[1:])
        rows.append({
            "person_id": hit.person_id, "family": name.family, "given": name.given, "sex": hit.record.sex,
            "birth_date": hit.record.birth_date, "identifiers": ids,
        })  # fmt: skip
    emit(ctx, rows)


def _golden(found: dict[str, Any]) -> PatientRecord:
    return codec.from_json(found["golden"]) if found.get("golden") else PatientRecord()


def _record_lines(record: PatientRecord) -> dict[str, Any]:
    """The record's non-empty fields as one line each, for people (``--json`` gives it whole)."""
    names = [f"{n.family}^{n.given}" + (f" ({n.use})" if n.use not in ("", "L") else "") for n in record.names]
    addresses = [", ".join(p for p in (a.street, a.city, a.state, a.postal_code) if p) for a in record.addresses]
    out: dict[str, Any] = {
        "name": " / ".join(names),
        "sex": record.sex,
        "birth_date": record.birth_date,
        "national_id": record.national_id,
        "phones": ", ".join(record.phones),
        "address": " / ".join(addresses),
        "mother": record.mother_maiden_name.full if record.mother_maiden_name else "",
        "deceased": "yes" if record.deceased else "",
        "source": record.source,
        "event_time": record.event_time,
    }
    return {k: v for k, v in out.items() if v}


# -- corrections (B2.7-B2.9, B2.13) ---------------------------------------------------


@empi.command()
@click.argument("survivor")
@click.argument("prior")
@domain_option
@click.pass_context
@guard
def merge(ctx: click.Context, survivor: str, prior: str, domain: str | None) -> None:
    """Merge PRIOR into SURVIVOR (like ADT^A40): PRIOR is retired, its person's patients follow."""
    actor = authorize("empi.merge")
    kept, retired = parse_cx(survivor, domain, "SURVIVOR"), parse_cx(prior, domain, "PRIOR")
    with index_of(ctx, write=True) as index:
        current = index.patient(kept)
        if current["status"] != "active":
            fail(f"survivor {survivor} is {current['status']}; merge into an active patient")
        record = codec.from_json(current["record"])
        _change(ctx, "merged", actor, index, [kept, retired], lambda: index.merge(record, retired, actor=actor))


@empi.command()
@click.argument("prior")
@domain_option
@click.pass_context
@guard
def unmerge(ctx: click.Context, prior: str, domain: str | None) -> None:
    """Undo the merge of PRIOR: it and the patients that followed it get their person back."""
    actor = authorize("empi.merge")
    retired = parse_cx(prior, domain, "PRIOR")
    with index_of(ctx, write=True) as index:
        _change(ctx, "unmerged", actor, index, [retired], lambda: index.unmerge(retired, actor=actor))


@empi.command()
@click.argument("first")
@click.argument("second")
@domain_option
@click.pass_context
@guard
def link(ctx: click.Context, first: str, second: str, domain: str | None) -> None:
    """SECOND joins FIRST's person, and stays there when matching runs again."""
    actor = authorize("empi.write")
    a, b = parse_cx(first, domain, "FIRST"), parse_cx(second, domain, "SECOND")
    with index_of(ctx, write=True) as index:
        _change(ctx, "linked", actor, index, [a, b], lambda: index.link(a, b, actor=actor, kind="manual"))


@empi.command()
@click.argument("first")
@click.argument("second")
@domain_option
@click.pass_context
@guard
def unlink(ctx: click.Context, first: str, second: str, domain: str | None) -> None:
    """FIRST and SECOND are different people, for good (SECOND leaves a shared person)."""
    actor = authorize("empi.write")
    a, b = parse_cx(first, domain, "FIRST"), parse_cx(second, domain, "SECOND")
    with index_of(ctx, write=True) as index:
        _change(ctx, "unlinked", actor, index, [a, b], lambda: index.unlink(a, b, actor=actor, kind="manual"))


@empi.command()
@click.argument("cx")
@domain_option
@click.pass_context
@guard
def split(ctx: click.Context, cx: str, domain: str | None) -> None:
    """Take a wrongly linked patient out of its person into a new one (B2.7)."""
    actor = authorize("empi.write")
    identifier = parse_cx(cx, domain)
    with index_of(ctx, write=True) as index:
        _change(ctx, "split", actor, index, [identifier], lambda: index.split(identifier, actor=actor))


# -- history and counts ------------------------------------------------------------


@empi.command()
@click.option("--person", metavar="MASTER_ID", help="Only what happened to this person.")
@click.option("--patient", "cx", metavar="CX", help="Only what happened to this patient.")
@domain_option
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="The newest N entries.")
@click.pass_context
@guard
def history(ctx: click.Context, person: str | None, cx: str | None, domain: str | None, limit: int) -> None:
    """What the index did, oldest first: registrations, moves, merges, links, splits, with the actor."""
    authorize("empi.read")
    identifier = parse_cx(cx, domain, "--patient") if cx else None
    with index_of(ctx) as index:
        patient_id = index.patient(identifier)["patient_id"] if identifier else None
        entries = _newest_history(index, person, patient_id, limit)
        names = _patient_names(index, entries)
    rows = []
    for entry in entries:
        detail = {k: _name_ids(v, names) for k, v in (entry["detail"] or {}).items()}
        rows.append({**entry, "patient": names.get(entry["patient_id"] or "", entry["patient_id"]), "detail": detail})
    if not ctx.obj.get("json"):
        rows = [{**r, "detail": json.dumps(r["detail"], ensure_ascii=False)} for r in rows]
    emit(ctx, rows, HISTORY_COLUMNS)


def _newest_history(
    index: MasterPatientIndex, person_id: str | None, patient_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, oldest first.

    Queried here rather than through ``index.history()``, which returns every
    matching entry: unfiltered, that is the whole history of a million patients.
    """
    from profiles.empi.schema import history as table

    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if person_id:
        query = query.where(table.c.person_id == person_id)
    if patient_id:
        query = query.where(table.c.patient_id == patient_id)
    with index.engine.connect() as conn:
        return [dict(r._mapping) for r in reversed(conn.execute(query).all())]


def _patient_names(index: MasterPatientIndex, entries: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Internal patient ids in the entries -> the CX an admin knows them by."""
    ids: set[str] = set()
    for entry in entries:
        ids.add(entry["patient_id"] or "")
        for value in (entry["detail"] or {}).values():
            ids.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    domains = Domains(index)
    with index.engine.connect() as conn:
        rows = store.patients_by_ids(conn, sorted(i for i in ids if i))
    return {r.id: domains.cx(r.domain_key, r.local_id) for r in rows}


def _name_ids(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_name_ids(v, names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value


@empi.command()
@click.pass_context
@guard
def stats(ctx: click.Context) -> None:
    """Active persons and patients, open reviews, registered domains."""
    authorize("empi.read")
    with index_of(ctx) as index:
        counts: dict[str, Any] = {**index.counts(), "domains": len(index.domains())}
    emit(ctx, counts)
