"""``esb empi reviews``: the suspected-duplicate queue (B2.7) and its decisions.

Split from :mod:`esb.cli.empi`, whose helpers (index, identifiers, change
reports) it shares.
"""

from __future__ import annotations

import click
from sqlalchemy import select

from esb.authz import authorize
from esb.cli.common import emit, guard
from esb.cli.empi import Domains, _change, empi, index_of
from esb.errors import EmpiError
from profiles.empi import codec, store
from profiles.empi.model import PatientRecord


@empi.group()
def reviews() -> None:
    """Suspected duplicates between the match thresholds, and their decisions."""


@reviews.command(name="list")
@click.option("--status", type=click.Choice(["open", "linked", "distinct"]), default="open", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--values", is_flag=True, help="Show both patients' values side by side (patient data).")
@click.pass_context
@guard
def reviews_list(ctx: click.Context, status: str, limit: int, values: bool) -> None:
    """Reviews by weight, highest first, with field-by-field evidence."""
    authorize("empi.read")
    with index_of(ctx) as index:
        domains = Domains(index)
        found = index.reviews(status, limit)
        for review in found:
            shown: list[dict[str, str]] = []
            for who in (review["a"], review["b"]):
                if who is not None:
                    who["identifier"] = domains.cx(who["domain"], who["local_id"])
                if values and who is not None:
                    row = index.patient(domains.identifier(who["domain"], who["local_id"]))
                    shown.append(_values(codec.from_json(row["record"])))
            review["evidence"] = [{"field": f, "level": lv, "weight": w} for f, lv, w in review["evidence"]]
            for item in review["evidence"] if len(shown) == 2 else []:
                item["a"], item["b"] = (side.get(item["field"], "") for side in shown)
    if ctx.obj.get("json"):
        emit(ctx, found)
        return
    if not found:
        click.echo("(none)")
    for review in found:
        click.echo(f"review {review['id']}  weight {review['weight']:.3f}  {review['status']}")
        for side in ("a", "b"):
            who = review[side] or {"identifier": "(gone)", "person_id": ""}
            click.echo(f"  {side}: {who['identifier']}  person {who['person_id']}")
        columns = ["field", "level", "weight", *(["a", "b"] if values else [])]
        emit(ctx, review["evidence"], columns)
        click.echo("")


def _values(record: PatientRecord) -> dict[str, str]:
    """A record's value per comparison of the matching model, for a reviewer to read side by side."""
    name = record.primary_name
    return {
        "national_id": record.national_id, "family": name.family, "given": name.given,
        "birth_date": record.birth_date, "sex": record.sex,
        "contact": ", ".join([*record.phones, *(a.city for a in record.addresses if a.city)]),
        "mother": record.mother_maiden_name.full if record.mother_maiden_name else "",
        "twins": "" if record.birth_order is None else f"birth order {record.birth_order}",
    }  # fmt: skip


@reviews.command(name="link")
@click.argument("review_id", type=int)
@click.pass_context
@guard
def reviews_link(ctx: click.Context, review_id: int) -> None:
    """Decide a review: the two patients are one person."""
    _decide(ctx, review_id, "linked")


@reviews.command(name="distinct")
@click.argument("review_id", type=int)
@click.pass_context
@guard
def reviews_distinct(ctx: click.Context, review_id: int) -> None:
    """Decide a review: the two patients are different people, and stay apart."""
    _decide(ctx, review_id, "distinct")


def _decide(ctx: click.Context, review_id: int, verdict: str) -> None:
    from profiles.empi.schema import reviews as table

    actor = authorize("empi.review")
    with index_of(ctx, write=True) as index:
        domains = Domains(index)
        with index.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == review_id)).first()
            sides = [store.patient(conn, p) for p in (row.patient_a, row.patient_b)] if row else []
        if row is None:
            raise EmpiError(f"no review {review_id}")
        if row.status != "open":
            raise EmpiError(f"review {review_id} is already decided ({row.status})")
        a, b = (domains.identifier(p.domain_key, p.local_id) if p else None for p in sides)
        for side, p in zip((a, b), sides, strict=True):
            if p is None or side is None or p.status != "active":
                gone = domains.cx(p.domain_key, p.local_id) if p else "a removed patient"
                raise EmpiError(f"review {review_id}: {gone} is no longer active; the review no longer applies")
        assert a is not None and b is not None
        if verdict == "linked":
            _change(ctx, "linked", actor, index, [a, b], lambda: index.link(a, b, actor=actor, kind="manual"))
        else:
            _change(ctx, "distinct", actor, index, [a, b], lambda: index.unlink(a, b, actor=actor, kind="manual"))
