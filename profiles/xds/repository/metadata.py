"""The few ebRIM reads and writes the repository needs on a DocumentEntry (ExtrinsicObject).

The repository does not validate metadata (the registry does, ITI-42); it
reads the uniqueId and mimeType, and checks and sets the three attributes it
owns: hash, size and repositoryUniqueId (ITI TF-2b 3.41.4.1.3).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from profiles.xds import ebxml
from profiles.xds.ebxml import q

#: ebRIM element order inside an ExtrinsicObject: Slots come first (rim.xsd RegistryObjectType)
_AFTER_SLOTS = (
    q("rim", "Name"),
    q("rim", "Description"),
    q("rim", "VersionInfo"),
    q("rim", "Classification"),
    q("rim", "ExternalIdentifier"),
    q("rim", "ContentVersionInfo"),
)


def document_entries(submit: Any) -> list[Any]:
    """The ExtrinsicObjects (DocumentEntries) of an ``lcm:SubmitObjectsRequest``, in document order."""
    return list(submit.iterfind(f"{q('rim', 'RegistryObjectList')}/{q('rim', 'ExtrinsicObject')}"))


def unique_id(entry: Any) -> str:
    """XDSDocumentEntry.uniqueId (the ExternalIdentifier value), or "" when there is none."""
    for identifier in entry.iterfind(q("rim", "ExternalIdentifier")):
        if identifier.get("identificationScheme") == ebxml.DE_UNIQUE_ID:
            return str(identifier.get("value") or "").strip()
    return ""


def slot_values(entry: Any, name: str) -> list[str] | None:
    """The values of slot ``name`` (stripped), or None when the entry has no such slot."""
    for slot in entry.iterfind(q("rim", "Slot")):
        if slot.get("name") == name:
            return [
                (value.text or "").strip() for value in slot.iterfind(f"{q('rim', 'ValueList')}/{q('rim', 'Value')}")
            ]
    return None


def set_slot(entry: Any, name: str, values: list[str]) -> None:
    """Put slot ``name`` with ``values`` on the entry, replacing one already there, keeping ebRIM order."""
    for slot in list(entry.iterfind(q("rim", "Slot"))):
        if slot.get("name") == name:
            entry.remove(slot)
    slot = etree.Element(q("rim", "Slot"), name=name)
    value_list = etree.SubElement(slot, q("rim", "ValueList"))
    for value in values:
        etree.SubElement(value_list, q("rim", "Value")).text = value
    position = 0
    for index, child in enumerate(entry):
        if child.tag in _AFTER_SLOTS:
            break
        position = index + 1
    entry.insert(position, slot)
