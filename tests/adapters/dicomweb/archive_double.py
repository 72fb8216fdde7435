"""FolderArchive: a test double of :class:`profiles.dicom.api.ArchiveApi` over files in a folder.

It keeps each instance's header in memory and its file in a folder, and
answers find/select with the matching of PS3.4 C.2.2.2 that the adapter tests
need (single value, ``*``/``?`` wildcards, UID lists, date ranges, PN
case-insensitive), relational at the levels above the query level. It is
here so the ``dicomweb:`` adapter can be tested against the contract without
the database-backed archive; the end-to-end tests use the real one.
"""

from __future__ import annotations

import fnmatch
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from esb.errors import DicomError
from profiles.dicom.api import InstanceRef, Level, Model, Stored

LEVELS = ("STUDY", "SERIES", "IMAGE")
UNIQUE = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
#: the level an attribute belongs to (others: instance level)
STUDY_KEYS = {
    "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "PatientName", "PatientID",
    "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription", "IssuerOfPatientID",
    "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "SpecificCharacterSet",
}  # fmt: skip
SERIES_KEYS = {"Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances",
               "BodyPartExamined", "SeriesDate", "SeriesTime"}  # fmt: skip
#: a SOP Class UID the double refuses (as a real archive refuses an unknown storage class)
REFUSED_CLASS = "1.2.840.10008.5.1.4.1.1.99999"


class FolderArchive:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.headers: dict[str, tuple[InstanceRef, Dataset]] = {}
        self.opened = 0
        self._lock = threading.Lock()

    # -- ArchiveApi ------------------------------------------------------------------

    def store(self, path: Path, *, calling_ae: str = "", source: str = "") -> Stored:
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, ValueError) as exc:
            raise DicomError(f"not a DICOM file: {exc}", status=0xC000) from None
        if ds.SOPClassUID == REFUSED_CLASS:
            raise DicomError("SOP class not supported", status=0x0122)
        uid = str(ds.SOPInstanceUID)
        target = self.root / f"{uid}.dcm"
        shutil.move(str(path), target)
        ref = InstanceRef(
            str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), uid, str(ds.SOPClassUID),
            str(ds.file_meta.TransferSyntaxUID), target.stat().st_size, str(target),
        )  # fmt: skip
        with self._lock:
            new_study = all(r.study_uid != ref.study_uid for r, _ in self.headers.values())
            new_instance = uid not in self.headers
            self.headers[uid] = (ref, ds)
        return Stored(ref, new_instance, new_study)

    def find(self, level: Level, identifier: Dataset, *, model: Model = "study") -> Iterator[Dataset]:
        groups: dict[str, list[tuple[InstanceRef, Dataset]]] = {}
        for ref, ds in list(self.headers.values()):
            groups.setdefault(str(ds.get(UNIQUE[level], "")), []).append((ref, ds))
        for members in groups.values():
            values = self._values(level, members)
            if all(self._matches(e, values) for e in identifier if e.keyword != "QueryRetrieveLevel"):
                yield self._response(identifier, values)

    def select(self, level: Level, identifier: Dataset) -> list[InstanceRef]:
        keys = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID") if identifier.get(k)]
        found = [r for r, ds in self.headers.values() if all(str(ds.get(k)) == str(identifier.get(k)) for k in keys)]
        return sorted(found, key=lambda r: int(self.headers[r.sop_instance_uid][1].get("InstanceNumber", 0) or 0))

    def open(self, instance: InstanceRef) -> BinaryIO:
        self.opened += 1
        return open(str(instance.storage_key), "rb")

    # -- matching ----------------------------------------------------------------------

    @staticmethod
    def _values(level: str, members: list[tuple[InstanceRef, Dataset]]) -> dict[str, Any]:
        first = members[0][1]
        values: dict[str, Any] = {e.keyword: e.value for e in first if e.keyword}
        if level == "STUDY":
            values["ModalitiesInStudy"] = sorted({str(ds.get("Modality", "")) for _, ds in members})
            values["NumberOfStudyRelatedSeries"] = len({r.series_uid for r, _ in members})
            values["NumberOfStudyRelatedInstances"] = len(members)
        elif level == "SERIES":
            values["NumberOfSeriesRelatedInstances"] = len(members)
        return values

    @staticmethod
    def _matches(element: DataElement, values: dict[str, Any]) -> bool:
        wanted = element.value
        if element.is_empty or element.VR == "SQ":
            return True
        have = values.get(element.keyword)
        if have is None:
            return False
        have_list = [str(h) for h in have] if isinstance(have, list) else [str(have)]
        if element.VR == "UI":
            listed = [str(w) for w in wanted] if isinstance(wanted, MultiValue) else str(wanted).split("\\")
            return any(h in listed for h in have_list)
        text = str(wanted)
        if element.VR in ("DA", "TM", "DT") and "-" in text:
            low, _, high = text.partition("-")
            return any((not low or h >= low) and (not high or h <= high) for h in have_list)
        if element.VR == "PN":
            return any(fnmatch.fnmatchcase(h.lower(), text.lower()) for h in have_list)
        if "*" in text or "?" in text:
            return any(fnmatch.fnmatchcase(h, text) for h in have_list)
        return text in have_list

    @staticmethod
    def _response(identifier: Dataset, values: dict[str, Any]) -> Dataset:
        out = Dataset()
        for element in identifier:
            value = values.get(element.keyword) if element.keyword else None
            out.add(DataElement(element.tag, element.VR, value if value is not None else None))
        return out
