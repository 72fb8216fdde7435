"""The golden record of a person (A1.18): the best value of each field across its patients.

Rule: a field takes the value from the most recently updated source that has
one, except the resident ID, which is taken only when valid; sources may be
ranked by trust in the EMPI config (a higher rank wins over recency).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from profiles.empi.model import Identifier, PatientRecord

_FIELDS = (
    "names", "sex", "birth_date", "birth_place", "multiple_birth", "birth_order", "mother_maiden_name",
    "phones", "addresses", "marital_status", "ethnic_group", "race", "nationality", "deceased", "death_date",
)  # fmt: skip


def golden_record(
    records: Sequence[PatientRecord],
    identifiers: Sequence[Identifier],
    *,
    trust: Mapping[str, int] | None = None,
) -> PatientRecord:
    """``records`` oldest first; ``trust`` maps a source to its rank (default 0)."""
    ranked = sorted(
        enumerate(records), key=lambda item: ((trust or {}).get(item[1].source, 0), item[1].event_time, item[0])
    )
    values: dict[str, object] = {}
    for _, record in ranked:  # later (more trusted, more recent) records overwrite earlier ones
        for name in _FIELDS:
            value = getattr(record, name)
            if value not in ("", (), None):
                values[name] = value
        if record.derived.get("national_id"):
            values["national_id"] = record.derived["national_id"]
    newest = ranked[-1][1] if ranked else PatientRecord()
    return PatientRecord(identifiers=tuple(identifiers), source="golden", event_time=newest.event_time).with_(**values)
