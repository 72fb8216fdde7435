"""A test double of :class:`profiles.dicom.api.ArchiveApi`: instances in a dict, matching good enough for the tests.

It lets the Q/R side of the ``dicom:`` adapter be tested against dcmtk's
findscu/movescu/getscu without the real archive; the end-to-end tests with
``profiles.dicom.archive`` live in test_end_to_end.py. Matching: single value,
``*``/``?`` wildcards and ``\\`` UID lists on the keys given; empty keys are
returned filled.
"""

from __future__ import annotations

import asyncio
import fnmatch
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from pydicom import dcmread
from pydicom.dataset import Dataset

from esb.components import Service
from esb.exchange import Exchange, attachments_from_headers
from esb.runtime.context import EngineContext
from profiles.dicom.api import DicomError, InstanceRef, Level, Model, Stored

LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientID",),
    "STUDY": ("PatientID", "StudyInstanceUID"),
    "SERIES": ("PatientID", "StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
UNIQUE = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}


@dataclass
class _Kept:
    ref: InstanceRef
    header: Dataset
    data: bytes


def _matches(value: str, wanted: str) -> bool:
    if "\\" in wanted:
        return value in wanted.split("\\")
    if "*" in wanted or "?" in wanted:
        return fnmatch.fnmatchcase(value, wanted)
    return value == wanted


class ArchiveDouble:
    def __init__(self) -> None:
        self.instances: dict[str, _Kept] = {}
        self.lock = threading.Lock()
        #: SOP Instance UIDs whose open() fails (a blob gone missing)
        self.unreadable: set[str] = set()

    def add(self, path: Path) -> InstanceRef:
        data = path.read_bytes()
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
        ref = InstanceRef(
            study_uid=str(ds.StudyInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
            size=len(data),
            storage_key=str(ds.SOPInstanceUID),
        )
        with self.lock:
            self.instances[ref.sop_instance_uid] = _Kept(ref, ds, data)
        return ref

    def store(self, path: Path, *, calling_ae: str = "", source: str = "") -> Stored:
        try:
            ref = self.add(path)
        except Exception as exc:
            raise DicomError(f"not storable: {type(exc).__name__}", status=0xC000) from exc
        return Stored(ref, new_instance=True, new_study=False)

    def _candidates(self, level: Level, identifier: Dataset) -> list[_Kept]:
        keys = [k for k in LEVEL_KEYS[level] if str(identifier.get(k, "") or "")]
        with self.lock:
            kept = list(self.instances.values())
        return [k for k in kept if all(_matches(str(k.header.get(n, "")), str(identifier.get(n))) for n in keys)]

    def find(self, level: Level, identifier: Dataset, *, model: Model = "study") -> Iterator[Dataset]:
        if level not in LEVEL_KEYS:
            raise DicomError(f"unknown level {level}", status=0xA900)
        seen: set[str] = set()
        for kept in self._candidates(level, identifier):
            unique = str(kept.header.get(UNIQUE[level], ""))
            if unique in seen:
                continue
            seen.add(unique)
            answer = Dataset()
            answer.QueryRetrieveLevel = level
            for element in identifier:
                if element.keyword == "QueryRetrieveLevel":
                    continue
                value = kept.header.get(element.keyword) if element.keyword else None
                setattr(answer, element.keyword, value if value is not None else "")
            yield answer

    def select(self, level: Level, identifier: Dataset) -> list[InstanceRef]:
        if not str(identifier.get(UNIQUE[level], "") or ""):
            raise DicomError(f"no unique key for level {level}", status=0xA900)
        return [k.ref for k in self._candidates(level, identifier)]

    def open(self, instance: InstanceRef) -> BinaryIO:
        if instance.sop_instance_uid in self.unreadable:
            raise FileNotFoundError(instance.sop_instance_uid)
        with self.lock:
            return io.BytesIO(self.instances[instance.sop_instance_uid].data)


class ArchiveDoubleService(Service):
    """``service:test-archive/store``: what ``service:dicom-archive/store`` does, on the double."""

    operations: ClassVar[tuple[str, ...]] = ("store",)

    def __init__(self, context: EngineContext) -> None:
        super().__init__(context)
        self.archive = ArchiveDouble()

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        (attachment,) = attachments_from_headers(exchange.headers)
        assert attachment.path is not None
        await asyncio.to_thread(self.archive.store, Path(attachment.path))
        return None
