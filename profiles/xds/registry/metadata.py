"""ITI-42 metadata (ebRIM 3.0 in an lcm:SubmitObjectsRequest) as typed objects.

Parsing never refuses: what is malformed is kept as a problem on the object (or
on the submission), so the registry can report every problem of a submission in
one answer (ITI TF-2b 3.42.4.1.3). Each object keeps its element, so what is
stored is what the source sent, ids rewritten, registry attributes set.

Classifications and ExternalIdentifiers may come nested in their object or at
the top of the RegistryObjectList (common for the SubmissionSet and Folder node
classifications); top-level ones are moved into the object they classify, so
the stored element is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from profiles.xds import ebxml
from profiles.xds.ebxml import q

_SLOT, _NAME, _DESCRIPTION = q("rim", "Slot"), q("rim", "Name"), q("rim", "Description")
_CLASSIFICATION, _EXTERNAL_ID = q("rim", "Classification"), q("rim", "ExternalIdentifier")
_EXTRINSIC, _PACKAGE, _ASSOCIATION = q("rim", "ExtrinsicObject"), q("rim", "RegistryPackage"), q("rim", "Association")
_OBJECT_REF = q("rim", "ObjectRef")
#: ebRIM RegistryObjectType child order: new children go where the schema wants them
_ORDER = [_SLOT, _NAME, _DESCRIPTION, q("rim", "VersionInfo"), _CLASSIFICATION, _EXTERNAL_ID]


@dataclass
class Problem:
    """A defect found while parsing, reported as XDSRegistryMetadataError (or ``code``)."""

    text: str
    location: str
    code: str = "XDSRegistryMetadataError"


@dataclass
class Classification:
    id: str
    element: Any
    classified: str
    scheme: str | None  # classificationScheme (coded attributes, author)
    node: str | None  # classificationNode (SubmissionSet / Folder)
    code: str | None  # nodeRepresentation
    slots: dict[str, list[str]]

    @property
    def coding_scheme(self) -> str | None:
        values = self.slots.get("codingScheme") or []
        return values[0] if len(values) == 1 else None


@dataclass
class ExternalIdentifier:
    id: str
    element: Any
    registry_object: str
    scheme: str
    value: str


@dataclass
class RegistryObject:
    """What every XDS object shares; ``id`` is as submitted (maybe symbolic)."""

    id: str
    element: Any
    slots: dict[str, list[str]] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    classifications: list[Classification] = field(default_factory=list)
    external_ids: list[ExternalIdentifier] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def slot(self, name: str) -> str | None:
        """The single value of a slot, or None when absent or multi-valued (rules report those)."""
        values = self.slots.get(name) or []
        return values[0] if len(values) == 1 else None

    def codes(self, scheme: str) -> list[Classification]:
        return [c for c in self.classifications if c.scheme == scheme]

    def external(self, scheme: str) -> str | None:
        found = [e.value for e in self.external_ids if e.scheme == scheme]
        return found[0] if len(found) == 1 else None

    @property
    def unique_id(self) -> str | None:
        return None

    @property
    def patient_id(self) -> str | None:
        return None


@dataclass
class DocumentEntry(RegistryObject):
    object_type: str | None = None
    mime_type: str | None = None

    @property
    def on_demand(self) -> bool:
        return self.object_type == ebxml.ON_DEMAND_DOCUMENT

    @property
    def unique_id(self) -> str | None:
        return self.external(ebxml.DE_UNIQUE_ID)

    @property
    def patient_id(self) -> str | None:
        return self.external(ebxml.DE_PATIENT_ID)


@dataclass
class SubmissionSet(RegistryObject):
    @property
    def unique_id(self) -> str | None:
        return self.external(ebxml.SS_UNIQUE_ID)

    @property
    def patient_id(self) -> str | None:
        return self.external(ebxml.SS_PATIENT_ID)


@dataclass
class Folder(RegistryObject):
    @property
    def unique_id(self) -> str | None:
        return self.external(ebxml.FOLDER_UNIQUE_ID)

    @property
    def patient_id(self) -> str | None:
        return self.external(ebxml.FOLDER_PATIENT_ID)


@dataclass
class Association(RegistryObject):
    type: str = ""
    source: str = ""
    target: str = ""


@dataclass
class Submission:
    """The objects of one request, in document order."""

    submission_sets: list[SubmissionSet] = field(default_factory=list)
    documents: list[DocumentEntry] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)
    #: ids of rim:ObjectRef elements (references to objects already in the registry)
    object_refs: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def objects(self) -> list[RegistryObject]:
        return [*self.submission_sets, *self.documents, *self.folders, *self.associations]

    @property
    def submission_set(self) -> SubmissionSet | None:
        return self.submission_sets[0] if len(self.submission_sets) == 1 else None

    def by_id(self) -> dict[str, RegistryObject]:
        return {o.id: o for o in self.objects}


def parse(request: Any) -> Submission:
    """The typed objects of a SubmitObjectsRequest (the element is modified: classifications move in)."""
    out = Submission()
    if request.tag != q("lcm", "SubmitObjectsRequest"):
        out.problems.append(Problem("the request is not an lcm:SubmitObjectsRequest", ""))
        return out
    object_list = request.find(q("rim", "RegistryObjectList"))
    if object_list is None:
        out.problems.append(Problem("the request has no rim:RegistryObjectList", ""))
        return out
    loose: list[Any] = []
    for child in object_list:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        if child.tag in (_CLASSIFICATION, _EXTERNAL_ID):
            loose.append(child)
        elif child.tag == _EXTRINSIC:
            out.documents.append(_document(child))
        elif child.tag == _PACKAGE:
            _package(child, out)
        elif child.tag == _ASSOCIATION:
            out.associations.append(_association(child))
        elif child.tag == _OBJECT_REF:
            out.object_refs.append(child.get("id") or "")
        else:
            where = child.get("id") or ""
            out.problems.append(Problem(f"unexpected element {etree_name(child.tag)} in the RegistryObjectList", where))
    _attach(loose, out)
    return out


def etree_name(tag: str) -> str:
    """``{ns}Local`` -> ``Local`` for messages."""
    return tag.rsplit("}", 1)[-1]


def _fill(obj: RegistryObject) -> RegistryObject:
    element = obj.element
    if not obj.id:
        obj.problems.append(Problem(f"{etree_name(element.tag)} without an id", ""))
    for slot in element.findall(_SLOT):
        name = slot.get("name") or ""
        if name in obj.slots:
            obj.problems.append(Problem(f"slot '{name}' appears twice", obj.id))
        obj.slots[name] = _values(slot)
    obj.name = _localized(element.find(_NAME))
    obj.description = _localized(element.find(_DESCRIPTION))
    for node in element.findall(_CLASSIFICATION):
        obj.classifications.append(_classification(node, default=obj.id))
    for node in element.findall(_EXTERNAL_ID):
        obj.external_ids.append(_external(node, default=obj.id))
    named = [(c.id, "Classification", c.classified) for c in obj.classifications]
    named += [(e.id, "ExternalIdentifier", e.registry_object) for e in obj.external_ids]
    for item_id, kind, target in named:
        if target != obj.id:
            obj.problems.append(Problem(f"{kind} {item_id} names {target}, not its object", obj.id))
    return obj


def _values(slot: Any) -> list[str]:
    return [(v.text or "") for v in slot.iterfind(f"{q('rim', 'ValueList')}/{q('rim', 'Value')}")]


def _localized(node: Any) -> str | None:
    if node is None:
        return None
    strings = node.findall(q("rim", "LocalizedString"))
    return strings[0].get("value") if strings else None


def _classification(node: Any, default: str = "") -> Classification:
    slots: dict[str, list[str]] = {}
    for slot in node.findall(_SLOT):
        slots[slot.get("name") or ""] = _values(slot)
    return Classification(
        id=node.get("id") or "",
        element=node,
        classified=node.get("classifiedObject") or default,
        scheme=node.get("classificationScheme"),
        node=node.get("classificationNode"),
        code=node.get("nodeRepresentation"),
        slots=slots,
    )


def _external(node: Any, default: str = "") -> ExternalIdentifier:
    return ExternalIdentifier(
        id=node.get("id") or "",
        element=node,
        registry_object=node.get("registryObject") or default,
        scheme=node.get("identificationScheme") or "",
        value=(node.get("value") or "").strip(),
    )


def _document(node: Any) -> DocumentEntry:
    entry = DocumentEntry(id=node.get("id") or "", element=node)
    entry.object_type = node.get("objectType")
    entry.mime_type = node.get("mimeType")
    return entry


def _package(node: Any, out: Submission) -> None:
    """A RegistryPackage is a SubmissionSet or a Folder by its node classification (maybe top-level)."""
    object_id = node.get("id") or ""
    kinds = {c.get("classificationNode") for c in node.findall(_CLASSIFICATION)}
    parent = node.getparent()
    for sibling in parent if parent is not None else ():
        if sibling.tag == _CLASSIFICATION and sibling.get("classifiedObject") == object_id:
            kinds.add(sibling.get("classificationNode"))
    if ebxml.SUBMISSION_SET_NODE in kinds:
        out.submission_sets.append(SubmissionSet(id=object_id, element=node))
    elif ebxml.FOLDER_NODE in kinds:
        out.folders.append(Folder(id=object_id, element=node))
    else:
        out.problems.append(Problem("RegistryPackage classified neither as SubmissionSet nor as Folder", object_id))


def _association(node: Any) -> Association:
    association = Association(id=node.get("id") or "", element=node)
    association.type = node.get("associationType") or ""
    association.source = node.get("sourceObject") or ""
    association.target = node.get("targetObject") or ""
    return association


def _attach(loose: list[Any], out: Submission) -> None:
    """Move top-level Classifications/ExternalIdentifiers into their object, then read every object."""
    by_id = {o.id: o for o in out.objects}
    for node in loose:
        target = node.get("classifiedObject") if node.tag == _CLASSIFICATION else node.get("registryObject")
        owner = by_id.get(target or "")
        if owner is None:
            text = f"{etree_name(node.tag)} {node.get('id') or ''} names {target or 'nothing'}, not in the submission"
            out.problems.append(Problem(text, ""))
            continue
        insert_child(owner.element, node)
    for obj in out.objects:
        _fill(obj)


def insert_child(element: Any, child: Any) -> None:
    """Append ``child`` to ``element`` at the place ebRIM's sequence wants it."""
    rank = _ORDER.index(child.tag)
    position = 0
    for index, existing in enumerate(element):
        if existing.tag in _ORDER and _ORDER.index(existing.tag) <= rank:
            position = index + 1
    element.insert(position, child)
