"""The patient record every part of the EMPI speaks.

HL7 v2 PID, HL7 v3 PRPA, database staging rows and PDQ queries are all mapped
to :class:`PatientRecord`; standardization, matching and the store work on it
alone. Values are plain strings in HL7 conventions (sex codes M/F/O/U/A/N,
dates as partial ``YYYY[MM[DD]]``) so mapping to and from HL7 is lossless.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Domain:
    """An assigning authority (HL7 HD): namespace, universal id (OID) and its type."""

    namespace: str = ""
    universal_id: str = ""
    universal_id_type: str = ""

    @property
    def key(self) -> str:
        """The stable key of the domain: its OID when it has one, else its namespace."""
        return self.universal_id or self.namespace

    def __str__(self) -> str:
        return f"{self.namespace}&{self.universal_id}&{self.universal_id_type}"


@dataclass(frozen=True)
class Identifier:
    """A patient identifier in its domain (HL7 CX): value, authority, type code (MR, PI, NI...)."""

    value: str
    domain: Domain
    type_code: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.domain.key, self.value)


@dataclass(frozen=True)
class PersonName:
    """HL7 XPN. ``representation``: A alphabetic, I ideographic (汉字), P phonetic (pinyin)."""

    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""
    suffix: str = ""
    use: str = "L"
    representation: str = ""

    @property
    def full(self) -> str:
        return " ".join(p for p in (self.family, self.given, self.middle) if p)

    def is_empty(self) -> bool:
        return not (self.family or self.given or self.middle)


@dataclass(frozen=True)
class Address:
    street: str = ""
    other: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    use: str = ""


@dataclass(frozen=True)
class PatientRecord:
    """Demographics of one patient as one system knows them.

    ``derived`` holds what standardization computes for matching (pinyin of
    names, phonetic keys, birth date checked against the resident ID, ...);
    it is recomputed, never sent back to a source.
    """

    identifiers: tuple[Identifier, ...] = ()
    names: tuple[PersonName, ...] = ()
    sex: str = ""
    birth_date: str = ""
    birth_place: str = ""
    multiple_birth: bool | None = None
    birth_order: int | None = None
    mother_maiden_name: PersonName | None = None
    mother_identifiers: tuple[Identifier, ...] = ()
    phones: tuple[str, ...] = ()
    addresses: tuple[Address, ...] = ()
    #: GB 11643 citizen ID (18 digits), the strongest identity evidence in China
    national_id: str = ""
    marital_status: str = ""
    ethnic_group: str = ""
    race: str = ""
    nationality: str = ""
    deceased: bool | None = None
    death_date: str = ""
    #: the sending system (MSH-3^MSH-4) and the event time, for stale-update checks
    source: str = ""
    event_time: str = ""
    derived: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def with_(self, **changes: Any) -> PatientRecord:
        return replace(self, **changes)

    def identifier_in(self, domain_key: str) -> Identifier | None:
        for identifier in self.identifiers:
            if identifier.domain.key == domain_key:
                return identifier
        return None

    @property
    def primary_name(self) -> PersonName:
        for name in self.names:
            if name.use in ("L", "") and not name.is_empty():
                return name
        return self.names[0] if self.names else PersonName()
