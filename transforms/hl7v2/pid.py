"""PID (with NK1) <-> :class:`PatientRecord`: the one mapping ITI-8, 9, 10, 21 and 30 share.

Values stay as the source wrote them (sex, marital status and ethnic codes are
mapped to standard codes later, by standardization with the sender's code maps),
except where HL7 structure has to be resolved here:

- National IDs (GB 11643 resident ID) are not cross-referenced identifiers: a
  newborn is often registered under a parent's ID, so treating it as a shared
  key would merge them. A PID-3 repetition whose type code is NI/NNCHN or whose
  assigning authority is a national-ID domain, or PID-19, goes to
  ``PatientRecord.national_id`` instead of ``identifiers``. The default domain
  is 2.16.156.10011.1.3, the OID Chinese health documents (WS/T 500 CDA) use
  for the patient's resident ID card number (2.16.156.10011.1.5 there is the
  organization code).
- Chinese HIS often send the whole hanzi name in PID-5.1. It is split into
  family and given name (compound surnames kept whole) so every source's names
  compare alike.
- PD1 carries nothing the record holds (primary facility, protection flags),
  so it is not read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from esb.errors import Hl7Error
from profiles.empi.model import Address, Domain, Identifier, PatientRecord, PersonName
from transforms.hl7v2.codec import Rep, Segment
from transforms.hl7v2.writer import Comp, FieldValue, render

#: the OID of the resident ID card number in Chinese health information standards
NATIONAL_ID_OID = "2.16.156.10011.1.3"
NATIONAL_ID_DOMAIN = Domain(universal_id=NATIONAL_ID_OID, universal_id_type="ISO")

_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")
#: compound surnames (复姓) of the Hundred Family Surnames, simplified and traditional; a closed, small set
_COMPOUND_SURNAMES = frozenset(
    "欧阳 太史 端木 上官 司马 东方 独孤 南宫 万俟 闻人 夏侯 诸葛 尉迟 公羊 赫连 澹台 皇甫 宗政 濮阳 公冶 太叔 申屠 "
    "公孙 慕容 仲孙 钟离 长孙 宇文 司徒 鲜于 司空 闾丘 子车 亓官 司寇 巫马 公西 颛孙 壤驷 公良 漆雕 乐正 宰父 谷梁 "
    "拓跋 夹谷 轩辕 令狐 段干 百里 呼延 东郭 南门 羊舌 微生 梁丘 左丘 西门 第五 东里 即墨 达奚 褚师 "
    "歐陽 司馬 東方 獨孤 聞人 諸葛 尉遲 鍾離 長孫 鮮於 閭丘 顓孫 壤駟 樂正 穀梁 軒轅 東郭 南門".split()
)
_DATE = re.compile(
    r"(\d{4})(?:-?(\d{2})(?:-?(\d{2}))?)?(?:[T ]?\d{2}(?::?\d{2}){0,2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_YES = {"Y": True, "1": True, "T": True, "N": False, "0": False, "F": False}


@dataclass(frozen=True)
class PidOptions:
    """How a deployment's PID is read: which domains and type codes mean a national ID."""

    #: assigning authorities (OID or namespace) whose identifiers are national IDs
    national_id_domains: frozenset[str] = field(default_factory=lambda: frozenset({NATIONAL_ID_OID}))
    #: the authority national IDs are written with (PID-3 of PDQ answers, mothers' IDs)
    national_id_domain: Domain = NATIONAL_ID_DOMAIN
    #: CX-5 identifier type codes of national IDs (HL7 table 0203)
    national_id_types: frozenset[str] = frozenset({"NI", "NNCHN"})
    #: the authority for a PID-3 identifier sent without CX-4; None: such an identifier is an error
    default_domain: Domain | None = None


DEFAULT_OPTIONS = PidOptions()


def domain_of(hd: Sequence[str]) -> Domain:
    """HL7 HD (namespace & universal id & type) as a :class:`Domain`."""
    parts = [p.strip() for p in hd] + ["", "", ""]
    return Domain(parts[0], parts[1], parts[2])


def what_domains_returned(reps: Sequence[Sequence[Sequence[str]]], field: str) -> tuple[Domain, ...]:
    """The domains of a "what domains returned" field (PIX QPD-4, PDQ QPD-8): each repetition's CX-4.

    ``field`` is the ERR location prefix (``QPD^1^4``) for a repetition without an authority.
    """
    from esb.errors import Hl7Error

    domains: list[Domain] = []
    for number, rep in enumerate(reps, start=1):
        wanted = domain_of(rep[3]) if len(rep) > 3 else Domain()
        if not wanted.key:
            raise Hl7Error(
                f"{field.replace('^1^', '-')} what domains returned repetition {number} needs an assigning "
                "authority (CX-4)",
                error_code="101",
                location=f"{field}^{number}^4",
            )
        domains.append(wanted)
    return tuple(domains)


def same_domain(a: Domain, b: Domain) -> bool:
    """Whether two authorities are one: by universal ID when both have one, else by namespace.

    Queries often name a domain by namespace only (``^^^HIS1``) or by OID only
    (``^^^&1.2.3&ISO``) while the EMPI knows both parts.
    """
    if a.universal_id and b.universal_id:
        return a.universal_id == b.universal_id
    return bool(a.namespace) and a.namespace == b.namespace


def hd(domain: Domain) -> list[str]:
    return [domain.namespace, domain.universal_id, domain.universal_id_type]


def cx(identifier: Identifier) -> list[Comp]:
    """An identifier as CX components: ID^^^namespace&oid&type^type code."""
    return [identifier.value, "", "", hd(identifier.domain), identifier.type_code]


def read_cx(comps: Rep) -> tuple[str, Domain, str]:
    """(value, authority, type code) of one CX repetition."""
    value = comps[0][0].strip() if comps else ""
    domain = domain_of(comps[3]) if len(comps) > 3 else Domain()
    type_code = comps[4][0].strip().upper() if len(comps) > 4 else ""
    return value, domain, type_code


def is_national(domain: Domain, type_code: str, options: PidOptions) -> bool:
    keys = {domain.universal_id, domain.namespace} - {""}
    return type_code in options.national_id_types or bool(keys & options.national_id_domains)


def read_identifiers(
    segment: Segment, n: int, options: PidOptions, *, keep_national: bool = False
) -> tuple[list[Identifier], str]:
    """The CX repetitions of field ``n``: (cross-referenced identifiers, first national ID).

    ``keep_national`` keeps national IDs in the list too, as identifiers of
    ``options.national_id_domain`` (a mother's ID card number is evidence, not a key).
    """
    reps = segment.reps(n)
    identifiers: list[Identifier] = []
    national = ""
    for number, rep in enumerate(reps, start=1):
        value, domain, type_code = read_cx(rep)
        if not value:
            if any(any(s.strip() for s in c) for c in rep):
                raise Hl7Error(
                    f"{segment.name}-{n} repetition {number} has an assigning authority but no ID (CX-1)",
                    error_code="101",
                    location=segment.location(n, number, 1),
                )
            continue
        if is_national(domain, type_code, options):
            national = national or value
            if keep_national:
                identifier = Identifier(value, options.national_id_domain, "NI")
                if identifier not in identifiers:
                    identifiers.append(identifier)
            continue
        if not domain.key:
            if options.default_domain is None:
                raise Hl7Error(
                    f"{segment.name}-{n} repetition {number} has no assigning authority (CX-4)",
                    error_code="101",
                    location=segment.location(n, number, 4),
                )
            domain = options.default_domain
        identifier = Identifier(value, domain, type_code)
        if identifier not in identifiers:
            identifiers.append(identifier)
    return identifiers, national


def split_hanzi(full: str) -> tuple[str, str]:
    """Family and given name of a whole Chinese name (compound surnames kept whole)."""
    parts = full.replace("\u3000", " ").split()
    if len(parts) == 2 and all(_HANZI.fullmatch(p) for p in parts):
        return parts[0], parts[1]
    if not _HANZI.fullmatch(full) or not 2 <= len(full) <= 4:
        return full, ""
    if full[:2] in _COMPOUND_SURNAMES:
        return full[:2], full[2:]
    return full[:1], full[1:]


def read_name(comps: Rep) -> PersonName:
    """One XPN repetition; a hanzi name sent whole in XPN-1 is split into family and given."""

    def part(i: int) -> str:
        return comps[i][0].strip() if len(comps) > i else ""

    family, given, middle = part(0), part(1), part(2)
    if family and not given and not middle:
        family, given = split_hanzi(family)
    return PersonName(
        family=family,
        given=given,
        middle=middle,
        suffix=part(3),
        prefix=part(4),
        use=part(6).upper() or "L",
        representation=part(7).upper(),
    )


def xpn(name: PersonName) -> list[Comp]:
    return [name.family, name.given, name.middle, name.suffix, name.prefix, "", name.use, name.representation]


def read_date(segment: Segment, n: int) -> str:
    """The date part (YYYY[MM[DD]]) of a TS field; ISO dashes tolerated, anything else is error 102."""
    text = segment.value(n).strip()
    if not text:
        return ""
    match = _DATE.fullmatch(text)
    if match is None:
        raise Hl7Error(
            f"{segment.name}-{n} must be an HL7 date/time YYYY[MM[DD[HHMM[SS]]]] (got {len(text)} characters)",
            error_code="102",
            location=segment.location(n),
        )
    return "".join(g for g in match.groups() if g)


def read_flag(segment: Segment, n: int) -> bool | None:
    text = segment.value(n).strip().upper()
    if not text:
        return None
    if text not in _YES:
        raise Hl7Error(
            f"{segment.name}-{n} must be Y or N (HL7 table 0136, got {text[:3]!r})",
            error_code="103",
            location=segment.location(n),
        )
    return _YES[text]


def read_code(segment: Segment, n: int) -> str:
    """The code of the first CE/CWE repetition, or its text when a sender puts only text there."""
    return (segment.value(n, 1, 1) or segment.value(n, 1, 2)).strip()


def read_phones(segment: Segment, n: int) -> list[str]:
    """XTN: the telephone number (XTN-1), else XTN-12 unformatted, else +country area local."""
    phones: list[str] = []
    for rep in segment.reps(n):

        def part(i: int, rep: Rep = rep) -> str:
            return "&".join(rep[i]).strip() if len(rep) > i else ""

        phone = part(0) or part(11)
        if not phone and part(6):
            phone = (f"+{part(4)}" if part(4) else "") + part(5) + part(6)
        if phone and phone not in phones:
            phones.append(phone)
    return phones


def read_address(comps: Rep) -> Address:
    def part(i: int) -> str:
        return comps[i][0].strip() if len(comps) > i else ""

    return Address(
        street=part(0),
        other=part(1),
        city=part(2),
        state=part(3),
        postal_code=part(4),
        country=part(5),
        use=part(6).upper() or "L",
    )


def read_pid(pid: Segment, *, nk1: Sequence[Segment] = (), options: PidOptions = DEFAULT_OPTIONS) -> PatientRecord:
    """The patient of one PID segment; NK1 with relationship MTH add the mother when PID lacks her."""
    identifiers, national = read_identifiers(pid, 3, options)
    legacy, legacy_national = read_identifiers(pid, 2, options)
    identifiers += [i for i in legacy if i not in identifiers]
    if not identifiers:
        raise Hl7Error(
            "PID-3 patient identifier list needs an identifier with its assigning authority",
            error_code="101",
            location=pid.location(3),
        )
    names = tuple(n for n in (read_name(r) for r in pid.reps(5)) if not n.is_empty())
    mother = [read_name(r) for r in pid.reps(6)]
    mother_ids, _ = read_identifiers(pid, 21, options, keep_national=True)
    mother_name = mother[0] if mother and not mother[0].is_empty() else None
    for kin in nk1:
        if read_code(kin, 3).upper() != "MTH":
            continue
        kin_names = [read_name(r) for r in kin.reps(2)]
        if mother_name is None and kin_names and not kin_names[0].is_empty():
            mother_name = kin_names[0]
        kin_ids, _ = read_identifiers(kin, 33, options, keep_national=True)
        mother_ids += [i for i in kin_ids if i not in mother_ids]
    birth_order = pid.value(25).strip()
    if birth_order and not birth_order.isdigit():
        raise Hl7Error(
            f"PID-25 birth order must be a number (got {len(birth_order)} characters)",
            error_code="102",
            location=pid.location(25),
        )
    return PatientRecord(
        identifiers=tuple(identifiers),
        names=names,
        sex=pid.value(8).strip().upper(),
        birth_date=read_date(pid, 7),
        birth_place=pid.component(23, 1).strip(),
        multiple_birth=read_flag(pid, 24),
        birth_order=int(birth_order) if birth_order else None,
        mother_maiden_name=mother_name,
        mother_identifiers=tuple(mother_ids),
        phones=tuple(dict.fromkeys(read_phones(pid, 13) + read_phones(pid, 14))),
        addresses=tuple(a for a in (read_address(r) for r in pid.reps(11)) if a != Address(use=a.use)),
        national_id=national or legacy_national or pid.value(19).strip(),
        marital_status=read_code(pid, 16),
        ethnic_group=read_code(pid, 22),
        race=read_code(pid, 10),
        nationality=read_code(pid, 28),
        deceased=read_flag(pid, 30),
        death_date=read_date(pid, 29),
    )


def pid_segment(
    record: PatientRecord,
    *,
    identifiers: Sequence[Identifier] | None = None,
    pseudonymous: bool = False,
    set_id: str = "",
    national_id_domain: Domain | None = NATIONAL_ID_DOMAIN,
) -> str:
    """A PID segment for ``record``.

    ``identifiers`` replaces the record's own for PID-3 (what a query asked for);
    without it the record's identifiers go out, plus the national ID in
    ``national_id_domain`` (type NI). ``pseudonymous`` writes only PID-3 and the
    PID-5 that ITI-9 and ITI-10 prescribe: an empty first repetition and a second
    holding only name type S, so no domain's name conflicts with another's.
    """
    ids = list(record.identifiers if identifiers is None else identifiers)
    if identifiers is None and record.national_id and national_id_domain is not None:
        ids.append(Identifier(record.national_id, national_id_domain, "NI"))
    pid3: FieldValue = [cx(i) for i in ids]
    if pseudonymous:
        return render("PID", [set_id, "", pid3, "", [[""], ["", "", "", "", "", "", "S"]]])

    def flag(value: bool | None) -> str:
        return "" if value is None else ("Y" if value else "N")

    def address(a: Address) -> list[Comp]:
        return [a.street, a.other, a.city, a.state, a.postal_code, a.country, a.use]

    fields: list[FieldValue] = [
        set_id,
        "",
        pid3,
        "",
        [xpn(n) for n in record.names],
        [xpn(record.mother_maiden_name)] if record.mother_maiden_name else "",
        record.birth_date,
        record.sex,
        "",
        [[record.race]],
        [address(a) for a in record.addresses],
        "",
        [[p, "PRN", "PH"] for p in record.phones],
        "", "",
        [[record.marital_status]],
        "", "", "", "",
        [cx(i) for i in record.mother_identifiers],
        [[record.ethnic_group]],
        record.birth_place,
        flag(record.multiple_birth),
        "" if record.birth_order is None else str(record.birth_order),
        "", "",
        [[record.nationality]],
        record.death_date,
        flag(record.deceased),
    ]  # fmt: skip
    return render("PID", fields)
