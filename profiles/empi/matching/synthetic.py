"""A seeded synthetic Chinese patient population with the corruption real feeds show.

Persons come from faker's zh_CN provider (surname frequencies, given-name
characters, addresses) and our own resident-ID generator (faker's depends
on today's date, which would make the set change from day to day). Each
person is registered by one to five hospitals, and each registration may
be corrupted the way regional EMPIs see it: pinyin-only names (DICOM PN,
foreign systems), traditional or homophone characters, swapped or truncated
given names, ID typos, legacy 15-digit IDs, missing or shifted birth dates,
changed phones and addresses. Twins, newborns registered under their
mother's ID, and couples sharing a household are generated on purpose,
because they are what a matcher links wrongly.

Every record carries the corruptions applied to it (``Sample.kinds``) so a
benchmark can break its errors down by kind. Same seed, same data set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache

import opencc
from faker import Faker
from faker.providers.person.zh_CN import Provider as PersonProvider
from faker.providers.ssn.zh_CN import Provider as SsnProvider
from pypinyin import lazy_pinyin

from profiles.empi.matching.corrupt import Corruptor
from profiles.empi.model import Address, Domain, Identifier, PatientRecord
from profiles.empi.standardize.surnames import SINGLE

REFERENCE = date(2025, 6, 30)
HOSPITALS = tuple(Domain(f"H{n:02d}", f"1.2.156.999.{n}", "ISO") for n in range(1, 13))
#: given-name characters beyond faker's short list, so two-character names vary like real ones
GIVEN_CHARS = (
    "子涵轩浩宇梓萱欣怡雨泽俊杰嘉佳琪思博文一诺晨"
    "志明国庆春秀兰海燕玉凤建新永红丽华金玲德芳淑珍桂英振宏伟刚毅辰逸瑶婷雪梅晓东鹏飞云峰天佑安然"
)
MOBILE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "158", "159", "186", "188")
RECORDS_PER_PERSON = ((1, 2, 3, 4, 5), (35, 30, 20, 10, 5))


@dataclass(frozen=True)
class Person:
    number: int
    household: int
    family: str
    given: str
    sex: str
    birth: date
    national_id: str
    phone: str
    address: Address
    mother: tuple[str, str] = ("", "")
    birth_order: int | None = None
    #: "" | twin | newborn | mother | couple
    tag: str = ""
    #: a newborn's mother's ID, under which the first registrations are made
    parent_id: str = ""


@dataclass(frozen=True)
class Sample:
    """One registration: the raw record a hospital sends, whose person it is, and what was corrupted."""

    record: PatientRecord
    person: int
    kinds: tuple[str, ...] = ()


@dataclass
class Dataset:
    persons: list[Person]
    samples: list[Sample] = field(default_factory=list)

    def records(self) -> list[PatientRecord]:
        return [s.record for s in self.samples]

    def true_pairs(self) -> set[tuple[int, int]]:
        """Pairs of sample indices (i < j) that are the same person."""
        by_person: dict[int, list[int]] = {}
        for index, sample in enumerate(self.samples):
            by_person.setdefault(sample.person, []).append(index)
        return {(a, b) for group in by_person.values() for x, a in enumerate(group) for b in group[x + 1 :]}


def resident_id(area: str, birth: date, sequence: int) -> str:
    """A GB 11643 ID: area, birth date, sequence (odd for men), ISO 7064 MOD 11-2 check character."""
    body = f"{area}{birth:%Y%m%d}{sequence:03d}"
    total = sum(int(digit) * (2 ** (17 - i) % 11) for i, digit in enumerate(body))
    return body + "10X98765432"[total % 11]


@cache
def pinyin_of(text: str) -> str:
    return "".join(lazy_pinyin(text))


def surname_pinyin(family: str) -> str:
    return SINGLE.get(family) or pinyin_of(family)


class Generator:
    def __init__(self, seed: int, size: int) -> None:
        self.size = size
        self.neighbourhoods: list[Address] = []
        self.rng = random.Random(seed)
        self.faker = Faker("zh_CN")
        self.faker.seed_instance(seed)
        self.areas = [code for code in SsnProvider.area_codes if not code.endswith("00")]
        surnames = PersonProvider.last_names
        self.surnames, self.surname_weights = list(surnames), list(surnames.values())
        self.male = list(PersonProvider.first_names_male)
        self.female = list(PersonProvider.first_names_female)
        self.chars = sorted({c for name in self.male + self.female for c in name} | set(GIVEN_CHARS))
        self.corrupt = Corruptor(self.rng, opencc.OpenCC("s2t"))
        self.persons: list[Person] = []
        self.households = 0

    # -- persons -----------------------------------------------------------------------

    def surname(self) -> str:
        return self.rng.choices(self.surnames, self.surname_weights)[0]

    def given(self, sex: str) -> str:
        if self.rng.random() < 0.35:
            return self.rng.choice(self.male if sex == "M" else self.female)
        return "".join(self.rng.sample(self.chars, 2))

    def birth(self, low_years: float, high_years: float) -> date:
        return REFERENCE - timedelta(days=self.rng.randint(int(low_years * 365), int(high_years * 365)))

    def phone(self) -> str:
        return self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"

    def address(self) -> Address:
        """A street in one of the region's neighbourhoods: a postal code is shared by many households."""
        if len(self.neighbourhoods) < self.size // 60 + 1:
            f = self.faker
            self.neighbourhoods.append(Address(city=f.city(), state=f.province(), postal_code=f.postcode()))
            place = self.neighbourhoods[-1]
        else:
            place = self.rng.choice(self.neighbourhoods)
        return Address(
            street=self.faker.street_address(), city=place.city, state=place.state, postal_code=place.postal_code
        )

    def national_id(self, birth: date, sex: str, area: str | None = None) -> str:
        sequence = self.rng.randrange(0, 500) * 2 + (1 if sex == "M" else 0)
        return resident_id(area or self.rng.choice(self.areas), birth, sequence)

    def person(self, household: int, sex: str, birth: date, **fields: object) -> Person:
        values: dict[str, object] = {
            "family": self.surname(),
            "given": self.given(sex),
            "national_id": self.national_id(birth, sex),
            "phone": self.phone(),
            "address": self.address(),
        }
        values.update(fields)
        person = Person(len(self.persons), household, sex=sex, birth=birth, **values)  # type: ignore[arg-type]
        self.persons.append(person)
        return person

    def household(self) -> None:
        self.households += 1
        home = {"phone": self.phone(), "address": self.address()}
        draw = self.rng.random()
        sex = self.rng.choice("MF")
        if draw < 0.03:
            self.twins(self.households, home)
        elif draw < 0.06:
            mother = self.person(self.households, "F", self.birth(22, 40), tag="mother", **home)
            birth = self.birth(0, 1)
            child_sex = self.rng.choice("MF")
            family = mother.family if self.rng.random() < 0.3 else self.surname()
            own_id = self.national_id(birth, child_sex) if self.rng.random() < 0.5 else ""
            self.person(
                self.households, child_sex, birth, family=family, national_id=own_id, tag="newborn",
                mother=(mother.family, mother.given), parent_id=mother.national_id, **home,
            )  # fmt: skip
        elif draw < 0.14:
            first = self.person(self.households, sex, self.birth(25, 80), tag="couple", **home)
            other = "F" if sex == "M" else "M"
            birth = first.birth + timedelta(days=self.rng.randint(-2000, 2000))
            phone = home["phone"] if self.rng.random() < 0.5 else self.phone()
            self.person(self.households, other, birth, tag="couple", phone=phone, address=home["address"])
        else:
            self.person(self.households, sex, self.birth(1, 90))

    def twins(self, household: int, home: dict[str, object]) -> None:
        birth = self.birth(0, 60)
        family = self.surname()
        mother = (self.surname(), self.given("F"))
        area = self.rng.choice(self.areas)
        shared = self.rng.choice(self.chars) if self.rng.random() < 0.5 else ""
        names: list[str] = []
        for order in (1, 2):
            sex = self.rng.choice("MF")
            given = shared + self.rng.choice(self.chars) if shared else self.given(sex)
            while given in names:
                given = (shared or self.rng.choice(self.chars)) + self.rng.choice(self.chars)
            names.append(given)
            own_id = self.national_id(birth, sex, area) if birth < REFERENCE - timedelta(days=365) else ""
            self.person(
                household, sex, birth, family=family, given=given, national_id=own_id, mother=mother,
                birth_order=order, tag="twin", **home,
            )  # fmt: skip

    # -- registrations -----------------------------------------------------------------

    def sex(self, sex: str, kinds: list[str]) -> str:
        draw = self.rng.random()
        if draw < 0.02:
            return "U"
        if draw < 0.025:
            kinds.append("sex_wrong")
            return "F" if sex == "M" else "M"
        return sex

    def registrations(self, person: Person) -> list[Sample]:
        count = self.rng.choices(*RECORDS_PER_PERSON)[0]
        if person.tag == "newborn":
            count = max(count, 2)
        return [self.registration(person, k) for k in range(count)]

    def registration(self, person: Person, k: int) -> Sample:
        rng, c = self.rng, self.corrupt
        kinds: list[str] = []
        family, given, national_id = person.family, person.given, person.national_id
        if person.tag == "newborn" and (k == 0 or rng.random() < 0.3):
            kinds.append("shared_parent_id")
            national_id = person.parent_id
            if rng.random() < 0.6:
                family, given = person.mother[0], person.mother[1] + ("之子" if person.sex == "M" else "之女")
            else:
                given = "宝宝"
        if rng.random() < 0.005:
            kinds.append("family_typo")
            family = self.surname()
        family, given = c.given(family, given, kinds)
        name = c.script(family, given, kinds, surname_pinyin, pinyin_of)
        birth = c.birth(f"{person.birth:%Y%m%d}", kinds)
        phone = c.phone(person.phone, self.phone, kinds)
        address = c.address(person.address, self.address, kinds)
        with_mother = rng.random() < (0.7 if person.tag in ("twin", "newborn") else 0.1)
        flagged = person.birth_order is not None and rng.random() < 0.9
        hospital = rng.choice(HOSPITALS)
        record = PatientRecord(
            identifiers=(Identifier(f"{rng.randrange(10**9):09d}", hospital, "MR"),),
            names=(name,),
            sex=self.sex(person.sex, kinds),
            birth_date=birth,
            national_id=c.national_id(national_id, kinds) if national_id else "",
            phones=(phone,) if phone else (),
            addresses=(address,) if address else (),
            mother_maiden_name=c.mother(person.mother, kinds) if with_mother and person.mother[0] else None,
            multiple_birth=True if flagged else None,
            birth_order=person.birth_order if flagged else None,
            source=hospital.namespace,
        )
        return Sample(record, person.number, tuple(kinds))


def generate(persons: int, seed: int = 20251130) -> Dataset:
    """About ``persons`` persons and their registrations (about 2.2 each), shuffled."""
    generator = Generator(seed, persons)
    while len(generator.persons) < persons:
        generator.household()
    samples = [s for p in generator.persons for s in generator.registrations(p)]
    generator.rng.shuffle(samples)
    return Dataset(generator.persons, samples)
