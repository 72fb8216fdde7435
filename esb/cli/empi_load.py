"""``esb empi load FILE``: a hospital's historical registrations into the index (A1.5).

Input is CSV with a header row (``.csv``) or JSON lines (``.jsonl``/``.json``,
one object a line), with these columns; only ``id`` and ``domain`` are required:

=================  ================================================================
``id``             the patient's local ID in its domain (PID-3.1)
``domain``         its assigning authority: ``HIS1``, an OID, or ``HIS1&1.2.3&ISO``
``type_code``      identifier type (default ``MR``)
``family`` ``given``  the legal name (hanzi or Latin letters)
``sex``            M F O U (or 男 女)
``birth_date``     YYYYMMDD, YYYY-MM-DD, YYYYMM or YYYY
``national_id``    the resident ID (GB 11643, 18 or 15 digits)
``phone``          phone numbers, several joined by ``;``
``street`` ``city`` ``state`` ``postal_code`` ``country``  the home address
``mother_family`` ``mother_given``  the mother's maiden name
``multiple_birth`` Y/N; ``birth_order`` 1, 2...
``other_ids``      more identifiers as ``VALUE^^^DOMAIN`` joined by ``~``
``source``         the sending system; ``event_time`` its registration time
=================  ================================================================

The load is named by ``--name`` (default: the file's absolute path) and keeps
its checkpoint in the database: run the same command again after a crash and
it continues after the last committed batch. Rejected rows go to the rejects
file (CSV: row, identifier, reason), never to the terminal: they hold
patient identifiers.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from esb.authz import authorize
from esb.cli.common import emit, guard, journal_of, progress
from esb.cli.empi import domain_of, empi
from profiles.empi.bulk import BadRow, BulkReport, load
from profiles.empi.model import Address, Identifier, PatientRecord, PersonName

COLUMNS = (
    "id", "domain", "type_code", "family", "given", "sex", "birth_date", "national_id", "phone",
    "street", "city", "state", "postal_code", "country", "mother_family", "mother_given",
    "multiple_birth", "birth_order", "other_ids", "source", "event_time",
)  # fmt: skip
YES = {"y", "yes", "true", "1"}
NO = {"n", "no", "false", "0", ""}


def _is_date(text: str) -> bool:
    formats = {4: "%Y", 6: "%Y%m", 8: "%Y%m%d"}
    if not text.isdigit() or len(text) not in formats:
        return False
    try:
        dt.datetime.strptime(text, formats[len(text)])
    except ValueError:
        return False
    return True


def record_of(row: dict[str, Any]) -> PatientRecord | BadRow:
    """One input row as a record, or the reason it cannot be one."""
    values = {k: ("" if v is None else str(v).strip()) for k, v in row.items()}
    label = f"{values.get('domain', '')}/{values.get('id', '')}"
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:
        return BadRow(f"unknown column(s) {', '.join(unknown)} (allowed: {', '.join(COLUMNS)})", label)
    if not values.get("id") or not values.get("domain"):
        return BadRow("columns 'id' and 'domain' are required", label)
    get = values.get
    birth = (get("birth_date") or "").replace("-", "")
    if birth and not _is_date(birth):
        return BadRow("column 'birth_date' must be a real date as YYYY[MM[DD]] or YYYY-MM-DD", label)
    multiple = (get("multiple_birth") or "").lower()
    if multiple not in YES | NO:
        return BadRow("column 'multiple_birth' must be Y or N", label)
    order = get("birth_order") or ""
    if order and not order.isdigit():
        return BadRow("column 'birth_order' must be a whole number", label)
    others = []
    for cx in filter(None, (get("other_ids") or "").split("~")):
        value, _, _, authority = (cx.split("^") + ["", "", ""])[:4]
        if not value or not authority:
            return BadRow("column 'other_ids' must hold VALUE^^^DOMAIN items joined by ~", label)
        others.append(Identifier(value, domain_of(authority)))
    mother = PersonName(get("mother_family") or "", get("mother_given") or "")
    address = Address(
        street=get("street") or "", city=get("city") or "", state=get("state") or "",
        postal_code=get("postal_code") or "", country=get("country") or "",
    )  # fmt: skip
    return PatientRecord(
        identifiers=(Identifier(values["id"], domain_of(values["domain"]), get("type_code") or "MR"), *others),
        names=(PersonName(get("family") or "", get("given") or ""),),
        sex=get("sex") or "",
        birth_date=birth,
        national_id=get("national_id") or "",
        phones=tuple(p.strip() for p in (get("phone") or "").split(";") if p.strip()),
        addresses=(address,) if address != Address() else (),
        mother_maiden_name=None if mother.is_empty() else mother,
        multiple_birth=True if multiple in YES else None,
        birth_order=int(order) if order else None,
        source=get("source") or "",
        event_time=get("event_time") or "",
    )


def read_file(path: Path) -> Iterator[PatientRecord | BadRow]:
    """Rows in file order (the checkpoint counts them), CSV or JSON lines by the file's suffix."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        if path.suffix.lower() == ".csv":
            for row in csv.DictReader(stream):
                yield record_of(row)
            return
        for number, line in enumerate(stream, 1):
            if not line.strip():
                yield BadRow(f"line {number} is empty")
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield BadRow(f"line {number} is not JSON ({exc.msg} at column {exc.colno})")
                continue
            yield record_of(data) if isinstance(data, dict) else BadRow(f"line {number} is not a JSON object")


@empi.command(name="load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Name of the load, its checkpoint key (default: the file's absolute path).")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1), help="Rows per transaction.")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected rows go (default: FILE.rejects.csv).",
)
@click.pass_context
@guard
def load_command(ctx: click.Context, file: Path, name: str | None, batch_size: int, rejects: Path | None) -> None:
    """Bulk-load historical registrations from FILE; resumable (run it again after a crash)."""
    from profiles.empi.config import load_empi_config
    from profiles.empi.service import build_index

    authorize("empi.write")
    name = name or str(file.resolve())
    rejects = rejects or file.with_name(file.name + ".rejects.csv")
    started = time.perf_counter()
    with journal_of(ctx) as journal, progress(ctx, None, "loading") as bar:
        index = build_index(journal.engine, load_empi_config())

        def advance(report: BulkReport) -> None:
            bar.update(report.read + report.skipped - bar.pos)

        report = load(
            journal.engine, read_file(file), batch_size=batch_size, checkpoint=name, index=index, progress=advance
        )
    with rejects.open("a", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        if stream.tell() == 0:
            writer.writerow(["row", "identifier", "reason"])
        writer.writerows([r.row, r.identifier, r.reason] for r in report.rejected)
    seconds = time.perf_counter() - started
    emit(
        ctx,
        {
            "load": name, "resumed_after": report.skipped, "read": report.read, "loaded": report.loaded,
            "updated": report.updated, "linked": report.linked, "persons": report.persons,
            "rejected": len(report.rejected), "rejects_file": str(rejects) if report.rejected else "",
            "seconds": round(seconds, 1), "rows_per_second": round(report.read / seconds) if seconds else 0,
        },
    )  # fmt: skip
