"""``esb xds``: the registry and repository from the command line.

Reads go straight to the tables (the registry keeps everything a query needs in
indexed columns); deprecation goes through the registry itself, so the CLI and
ITI-42 follow the same lifecycle rules. Patient IDs are shown because the admin
asked for a patient's documents; nothing here is logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy import Engine, and_, func, or_, select

from esb.authz import authorize
from esb.cli.common import emit, fail, guard, journal_of, main_group
from esb.errors import XdsError
from profiles.xds import ebxml
from profiles.xds.registry import schema as t

STATUS_NAMES = {ebxml.APPROVED: "Approved", ebxml.DEPRECATED: "Deprecated", ebxml.SUBMITTED: "Submitted"}
STATUSES = {"approved": (ebxml.APPROVED,), "deprecated": (ebxml.DEPRECATED,), "all": tuple(STATUS_NAMES)}


@main_group.group()
def xds() -> None:
    """XDS.b registry and repository: documents per patient, submissions, lifecycle, counts."""


@contextmanager
def engine_of(ctx: click.Context) -> Iterator[Engine]:
    with journal_of(ctx) as journal:
        yield journal.engine


def _master_oid() -> str:
    from profiles.empi.config import load_empi_config

    return load_empi_config().master_domain.universal_id


def _row(row: Any) -> dict[str, Any]:
    return {
        "unique_id": row.unique_id,
        "entry_uuid": row.id,
        "status": STATUS_NAMES.get(row.status, row.status),
        "mime_type": row.mime_type or "",
        "created": row.creation_time or "",
        "repository": row.repository_unique_id or "",
        "patient_id": row.patient_id,
    }


@xds.command(name="find")
@click.argument("patient_id")
@click.option("--status", type=click.Choice(list(STATUSES)), default="approved", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.pass_context
@guard
def find(ctx: click.Context, patient_id: str, status: str, limit: int) -> None:
    """Documents of a patient (PATIENT_ID: id^^^&oid&ISO), including IDs merged into it."""
    from profiles.xds.registry.patients import PatientId, patient_group

    authorize("xds.read")
    parsed = PatientId.parse(patient_id)
    if parsed is None:
        fail(f"'{patient_id}' is not an XDS patient ID (id^^^&universal id&ISO)", 2)
        return
    with engine_of(ctx) as engine, engine.connect() as conn:
        group = patient_group(conn, parsed, _master_oid())
        rows = conn.execute(
            select(t.objects)
            .where(t.objects.c.patient_id.in_(group), t.objects.c.kind == t.DOCUMENT)
            .where(t.objects.c.status.in_(STATUSES[status]))
            .order_by(t.objects.c.creation_time.desc(), t.objects.c.id)
            .limit(limit)
        ).all()
    found = [_row(r) for r in rows]
    if not found and not ctx.obj.get("json"):
        click.echo("(none)")
        return
    emit(ctx, found, ["unique_id", "status", "mime_type", "created", "repository", "entry_uuid"])


@xds.command(name="show")
@click.argument("submission")
@click.pass_context
@guard
def show(ctx: click.Context, submission: str) -> None:
    """A submission set (uniqueId or entryUUID) and what it registered."""
    authorize("xds.read")
    objects = t.objects
    with engine_of(ctx) as engine, engine.connect() as conn:
        sset = conn.execute(
            select(objects).where(
                objects.c.kind == t.SUBMISSION_SET, or_(objects.c.id == submission, objects.c.unique_id == submission)
            )
        ).first()
        if sset is None:
            fail(f"no submission set '{submission}' in the registry")
            return
        member = objects.alias("member")
        members = conn.execute(
            select(member)
            .join(objects, and_(objects.c.target_object == member.c.id, objects.c.association_type == ebxml.HAS_MEMBER))
            .where(objects.c.source_object == sset.id, objects.c.kind == t.ASSOCIATION)
            .order_by(member.c.kind, member.c.id)
        ).all()
    head = {
        "unique_id": sset.unique_id, "entry_uuid": sset.id, "status": STATUS_NAMES.get(sset.status, sset.status),
        "patient_id": sset.patient_id, "source_id": sset.source_id or "", "submitted": sset.submission_time or "",
    }  # fmt: skip
    listed = [
        {
            "kind": m.kind,
            "unique_id": m.unique_id or "",
            "entry_uuid": m.id,
            "status": STATUS_NAMES.get(m.status, m.status),
        }
        for m in members
    ]
    if ctx.obj.get("json"):
        emit(ctx, {**head, "members": listed})
        return
    for key, value in head.items():
        click.echo(f"{key:>10}: {value}")
    click.echo("")
    emit(ctx, listed, ["kind", "unique_id", "status", "entry_uuid"])


@xds.command(name="deprecate")
@click.argument("document")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@guard
def deprecate(ctx: click.Context, document: str, yes: bool) -> None:
    """Deprecate a DocumentEntry (uniqueId or entryUUID); queries stop finding it as Approved."""
    from profiles.xds.config import load_xds_config
    from profiles.xds.registry.register import Registry

    actor = authorize("xds.write")
    if not yes:
        click.confirm(f"Deprecate document {document}?", abort=True)
    with engine_of(ctx) as engine:
        try:
            Registry(engine, load_xds_config(), _master_oid()).deprecate(document, actor=actor)
        except XdsError as exc:
            fail(exc.text)
    click.echo(f"deprecated {document}")


@xds.command(name="count")
@click.pass_context
@guard
def count(ctx: click.Context) -> None:
    """Registry objects per kind and status."""
    authorize("xds.read")
    objects = t.objects
    with engine_of(ctx) as engine, engine.connect() as conn:
        rows = conn.execute(
            select(objects.c.kind, objects.c.status, func.count())
            .group_by(objects.c.kind, objects.c.status)
            .order_by(objects.c.kind, objects.c.status)
        ).all()
    emit(
        ctx,
        [{"kind": r[0], "status": STATUS_NAMES.get(r[1], r[1]), "count": r[2]} for r in rows],
        ["kind", "status", "count"],
    )
