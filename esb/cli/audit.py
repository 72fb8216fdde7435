"""``esb audit search|report|status``: the security log of the platform (ATNA, B5.13).

Reading the log needs the ``audit.read`` permission and is itself recorded
(Audit Log Used, DICOM PS3.15 A.5.3.2): who searched, for what, from this
machine; the record is stored before anything is shown, and a trail that
cannot be written means no answer. ``status`` tells what the sender still
owes the Audit Record Repository; it reads no record, so only its
authorization decision is recorded (monitoring polls it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from lxml import etree

from esb import audit as trail
from esb.audit import codes, events
from esb.audit.config import load_audit_config
from esb.audit.model import OUTCOMES as NAMED_OUTCOMES
from esb.audit.runtime import trail_for
from esb.audit.store import AuditStore, Search
from esb.audit.trail import AuditTrail
from esb.authz import authorize
from esb.cli.common import TIME, emit, fail, guard, journal_of, main_group, settings_of
from esb.journal import Journal

SEARCH_COLUMNS = ["created_at", "event", "type", "action", "outcome", "user", "patients", "node", "sent_at", "id"]
OUTCOME_NAMES = {0: "success", 4: "minor failure", 8: "serious failure", 12: "major failure"}
MEANINGS = {code.code: code.meaning for code in codes.EVENT_IDS}
OUTCOMES = ["success", "minor", "serious", "major", "0", "4", "8", "12"]


def _outcome(text: str | None) -> int | None:
    if text is None:
        return None
    return int(text) if text.isdigit() else int(NAMED_OUTCOMES[text])


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds") + "Z"
    return str(value)


def _log_uri(journal: Journal) -> str:
    return journal.engine.url.render_as_string(hide_password=True) + "#esb_audit_records"


def _recorded(recorder: AuditTrail) -> None:
    """The read is in the trail before anything is shown: no record, no answer."""
    if not recorder.flush(timeout=10.0):
        fail("the audit trail cannot be written (see the log); nothing is shown unaudited")


def _format(ctx: click.Context, chosen: str | None) -> str:
    return chosen or ("json" if ctx.obj.get("json") else "table")


@main_group.group(name="audit")
def audit_group() -> None:
    """The audit trail (IHE ATNA): search it, summarise it, see what the ARR has not got yet."""


@audit_group.command()
@click.option("--patient", help="Patient ID as recorded (CX, e.g. 'P123^^^HOSP' or 'P123^^^&1.2.3&ISO').")
@click.option("--user", help="The requestor's user ID (a user, an AE title, an HL7 application|facility).")
@click.option("--event", help="Event ID code (110110), its name (patient-record, query) or a transaction (ITI-8).")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="Only events with this outcome.")
@click.option("--since", type=TIME, help="From this time: ISO (2024-05-01T08:00) or an age (30m, 2d).")
@click.option("--until", type=TIME, help="Before this time: ISO or an age.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "xml"]), help="Default: table (json with --json).")
@click.pass_context
@guard
def search(
    ctx: click.Context,
    patient: str | None,
    user: str | None,
    event: str | None,
    outcome: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    fmt: str | None,
) -> None:
    """Audit records, newest first."""
    settings = settings_of(ctx)
    query = Search(patient, user, event, _outcome(outcome), since, until, limit)
    asked = json.dumps({k: v for k, v in query.__dict__.items() if v is not None and k != "limit"}, default=_plain)
    with journal_of(ctx) as journal, trail_for(journal.engine, f"cli-{settings.node_id}") as recorder:
        actor = authorize("audit.read")
        trail.emit(events.audit_log_used(user=actor, log_uri=_log_uri(journal), query=asked))
        _recorded(recorder)
        rows, patients = AuditStore(journal.engine).search(query)
    fmt = _format(ctx, fmt)
    if fmt == "xml":
        root = etree.Element("AuditMessages", count=str(len(rows)))
        for row in rows:
            root.append(etree.fromstring(row.xml.encode("utf-8")))
        click.echo(etree.tostring(root, encoding="unicode"))
        return
    found = [_row(row, patients.get(row.id, []), with_xml=fmt == "json") for row in rows]
    if fmt == "json":
        click.echo(json.dumps(found, default=_plain, indent=2, ensure_ascii=False))
        return
    emit(ctx, found, SEARCH_COLUMNS)


def _row(row: Any, named: list[str], *, with_xml: bool) -> dict[str, Any]:
    out = {
        "id": row.id, "created_at": row.created_at, "event": MEANINGS.get(row.event_id, row.event_id),
        "event_id": row.event_id, "type": row.event_type, "action": row.action,
        "outcome": OUTCOME_NAMES.get(row.outcome, str(row.outcome)), "user": row.user_id,
        "patients": ", ".join(named), "node": row.source_node, "sent_at": row.sent_at,
    }  # fmt: skip
    if with_xml:
        out["xml"] = row.xml
    return out


@audit_group.command()
@click.option("--since", type=TIME, help="From this time: ISO or an age (default: everything).")
@click.option("--until", type=TIME, help="Before this time.")
@click.pass_context
@guard
def report(ctx: click.Context, since: dt.datetime | None, until: dt.datetime | None) -> None:
    """Counts by event, outcome, user and node over a period (the security log's summary, B5.13)."""
    settings = settings_of(ctx)
    period = json.dumps({"report": {"since": since, "until": until}}, default=_plain)
    with journal_of(ctx) as journal, trail_for(journal.engine, f"cli-{settings.node_id}") as recorder:
        actor = authorize("audit.read")
        trail.emit(events.audit_log_used(user=actor, log_uri=_log_uri(journal), query=period))
        _recorded(recorder)
        counts = AuditStore(journal.engine).report(since, until)
    sections = {
        "by_event": [
            {"event": MEANINGS.get(e, e), "event_id": e, "type": t, "count": n} for e, t, n in counts["by_event"]
        ],
        "by_outcome": [{"outcome": OUTCOME_NAMES.get(o, str(o)), "count": n} for o, n in counts["by_outcome"]],
        "by_user": [{"user": u, "count": n} for u, n in counts["by_user"]],
        "by_node": [{"node": s, "count": n} for s, n in counts["by_node"]],
    }  # fmt: skip
    if ctx.obj.get("json"):
        click.echo(json.dumps({"total": counts["total"], "since": since, "until": until, **sections},
                              default=_plain, indent=2))  # fmt: skip
        return
    click.echo(f"audit records: {counts['total']}" + (f" since {_plain(since)}" if since else ""))
    for name, rows in sections.items():
        click.echo(f"\n{name.replace('_', ' ')}:")
        emit(ctx, rows)


@audit_group.command()
@click.pass_context
@guard
def status(ctx: click.Context) -> None:
    """What the sender still owes the ARR: unsent records, the oldest, the last error."""
    settings = settings_of(ctx)
    config = load_audit_config()
    with journal_of(ctx) as journal, trail_for(journal.engine, f"cli-{settings.node_id}") as recorder:
        authorize("audit.read")
        _recorded(recorder)
        state = AuditStore(journal.engine).status()
    state["repository"] = str(config.repository) if config.repository else "(none: stored locally only)"
    emit(ctx, state)
