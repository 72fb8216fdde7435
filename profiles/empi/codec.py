"""PatientRecord <-> JSON for the store (and the admin API).

Hand-written over dataclasses.asdict because the record nests frozen
dataclasses in tuples, which asdict flattens into lists of dicts that need
rebuilding anyway; this keeps both directions in one place.
"""

from __future__ import annotations

from typing import Any

from profiles.empi.model import Address, Domain, Identifier, PatientRecord, PersonName

_SCALARS = (
    "sex", "birth_date", "birth_place", "multiple_birth", "birth_order", "national_id", "marital_status",
    "ethnic_group", "race", "nationality", "deceased", "death_date", "source", "event_time",
)  # fmt: skip


def identifier_to_json(identifier: Identifier) -> dict[str, str]:
    d = identifier.domain
    return {
        "value": identifier.value,
        "namespace": d.namespace,
        "universal_id": d.universal_id,
        "universal_id_type": d.universal_id_type,
        "type_code": identifier.type_code,
    }


def identifier_from_json(data: dict[str, Any]) -> Identifier:
    domain = Domain(data.get("namespace", ""), data.get("universal_id", ""), data.get("universal_id_type", ""))
    return Identifier(data["value"], domain, data.get("type_code", ""))


def _name(data: dict[str, Any]) -> PersonName:
    return PersonName(**{k: v for k, v in data.items() if k in PersonName.__dataclass_fields__})


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_json(record: PatientRecord, *, with_derived: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(record, k) for k in _SCALARS}
    out["identifiers"] = [identifier_to_json(i) for i in record.identifiers]
    out["mother_identifiers"] = [identifier_to_json(i) for i in record.mother_identifiers]
    out["names"] = [vars(n).copy() for n in record.names]
    out["mother_maiden_name"] = vars(record.mother_maiden_name).copy() if record.mother_maiden_name else None
    out["phones"] = list(record.phones)
    out["addresses"] = [vars(a).copy() for a in record.addresses]
    if with_derived:
        out["derived"] = _plain(record.derived)
    return out


def from_json(data: dict[str, Any]) -> PatientRecord:
    derived = dict(data.get("derived") or {})
    if isinstance(derived.get("phones"), list):
        derived["phones"] = tuple(derived["phones"])
    mother = data.get("mother_maiden_name")
    return PatientRecord(
        identifiers=tuple(identifier_from_json(i) for i in data.get("identifiers", [])),
        mother_identifiers=tuple(identifier_from_json(i) for i in data.get("mother_identifiers", [])),
        names=tuple(_name(n) for n in data.get("names", [])),
        mother_maiden_name=_name(mother) if mother else None,
        phones=tuple(data.get("phones", [])),
        addresses=tuple(Address(**a) for a in data.get("addresses", [])),
        derived=derived,
        **{k: data[k] for k in _SCALARS if k in data and data[k] is not None},
    )
