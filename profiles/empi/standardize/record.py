"""One record in, one standardized record out: the cleaned fields and the ``derived`` keys for matching.

The function is pure apart from reading today's date (a birth date in the
future is impossible) and runs on every ADT message, so it only combines the
cached per-field functions of the sibling modules. Values that fail their
check stay in the record as sent (cleaned) and are left out of ``derived``:
the record remains what the source said, matching only sees what holds, and
standardizing a standardized record changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from profiles.empi.model import PatientRecord, PersonName
from profiles.empi.standardize import addresses, dates, names, phones, resident_id, sex
from profiles.empi.standardize.codes import CodeMaps

#: identifier type (HL7 table 0203) of a national person ID issued by China
NATIONAL_ID_TYPE = "NNCHN"


def standardize(record: PatientRecord, *, codes: CodeMaps | None = None, today: date | None = None) -> PatientRecord:
    """``record`` with normalized fields and ``derived`` filled (keys: see the package docstring)."""
    codes = codes or CodeMaps.default()
    today = today or date.today()
    system = record.source
    derived: dict[str, Any] = {}

    cleaned_names = tuple(names.clean_name(n) for n in record.names)
    keys = names.keys(*_family_given(names.pick(cleaned_names)))
    derived.update(
        family=keys.family,
        given=keys.given,
        family_pinyin=keys.family_pinyin,
        given_pinyin=keys.given_pinyin,
        is_hanzi=keys.is_hanzi,
    )

    birth = dates.parse(record.birth_date, today=today) if record.birth_date.strip() else None
    birth_date = record.birth_date.strip()
    if birth is not None:
        birth_date = birth_date if dates.is_hl7(birth_date) else birth.hl7
    derived.update(
        birth_date=birth.hl7 if birth else "",
        birth_year=f"{birth.year:04d}" if birth else "",
        birth_month=f"{birth.month:02d}" if birth and birth.month else "",
        birth_day=f"{birth.day:02d}" if birth and birth.day else "",
        birth_date_invalid="" if birth or not birth_date else birth_date,
    )

    sex_code = sex.standard(record.sex, system, codes)
    derived["sex"] = sex.for_matching(sex_code)

    national_id = record.national_id.strip() or _national_id_from(record)
    parsed_id = resident_id.parse(national_id, today=today) if national_id else None
    if parsed_id is not None:
        national_id = parsed_id.value
    elif national_id:
        national_id = resident_id.clean(national_id)
    derived.update(
        national_id=parsed_id.value if parsed_id else "",
        national_id_invalid="" if parsed_id else national_id,
        national_id_birth_date=parsed_id.birth_date if parsed_id else "",
        national_id_sex=parsed_id.sex if parsed_id else "",
    )

    stored_phones, valid_phones = phones.normalize(record.phones)
    derived["phones"] = valid_phones

    cleaned_addresses = tuple(addresses.clean(a) for a in record.addresses)
    home = addresses.primary(cleaned_addresses)
    derived.update(postal_code=addresses.postal_code(home.postal_code, home.country), city=addresses.city(home.city))

    mother = names.keys(*_family_given(record.mother_maiden_name)) if record.mother_maiden_name else None
    derived.update(mother_family=mother.family if mother else "", mother_given=mother.given if mother else "")
    derived.update(multiple_birth=record.multiple_birth, birth_order=record.birth_order)

    marital = codes.map(system, "marital_status", record.marital_status)
    ethnic = codes.map(system, "ethnicity", record.ethnic_group)
    derived.update(marital_status=marital or "", ethnic_group=ethnic or "")

    return replace(
        record,
        names=cleaned_names,
        mother_maiden_name=names.clean_name(record.mother_maiden_name) if record.mother_maiden_name else None,
        sex=sex_code or record.sex.strip(),
        birth_date=birth_date,
        national_id=national_id,
        phones=stored_phones,
        addresses=cleaned_addresses,
        marital_status=marital or record.marital_status.strip(),
        ethnic_group=ethnic or record.ethnic_group.strip(),
        derived=derived,
    )


def _family_given(name: PersonName) -> tuple[str, str]:
    return name.family, name.given


def _national_id_from(record: PatientRecord) -> str:
    """A national ID sent as an identifier (PID-3 with type NNCHN) instead of in its own field."""
    for identifier in record.identifiers:
        if identifier.type_code.upper() == NATIONAL_ID_TYPE:
            return identifier.value.strip()
    return ""
