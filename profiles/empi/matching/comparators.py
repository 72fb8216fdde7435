"""Comparator kinds: what a comparison reads from a record and which level tests it offers.

The kinds live in :mod:`.text` (name, string, date) and :mod:`.identity`
(national_id, identifier, phones, contact, twins), built from :mod:`.kinds`.
What is written there is only the domain logic (pinyin, resident IDs,
partial dates, newborns, twins) no library knows; the string metrics are
rapidfuzz's.
"""

from __future__ import annotations

from profiles.empi.matching.identity import CONTACT, IDENTIFIER, NATIONAL_ID, PHONES, TWINS
from profiles.empi.matching.kinds import Kind, Option, Prepare, Test, TestFn, near
from profiles.empi.matching.text import DATE, NAME, STRING

KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (NAME, STRING, DATE, NATIONAL_ID, PHONES, CONTACT, IDENTIFIER, TWINS)
}

__all__ = ["KINDS", "Kind", "Option", "Prepare", "Test", "TestFn", "near"]
