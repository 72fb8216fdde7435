"""The archive as the DICOM adapters and XDS-I see it: store, find, select, open.

The ``dicom:`` (DIMSE) and ``dicomweb:`` adapters, the XDS-I.b Imaging Document
Source and the collection jobs are written against this interface, and
``profiles.dicom.archive.Archive`` implements it on the engine's database (the
index) and a :class:`esb.storage.BlobStore` (the bytes): index and storage are
separate (B5.3). Every method is synchronous (database and disk work): async
callers run it with ``asyncio.to_thread``.

Matching follows PS3.4 C.2.2.2: single value, wildcard (``*``, ``?``), range
(``a-b``, ``a-``, ``-b``) for dates and times, UID lists (``\\``-separated),
universal (empty: return the attribute). Levels are ``PATIENT``, ``STUDY``,
``SERIES``, ``IMAGE``; models ``patient`` (Patient Root) and ``study`` (Study Root).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

from pydicom.dataset import Dataset

from esb.errors import DicomError
from esb.security.users import Scope

if TYPE_CHECKING:
    from profiles.dicom.commitment import Request as CommitmentRequest

__all__ = ["ArchiveApi", "DicomError", "InstanceRef", "Level", "Model", "Stored"]

Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
Model = Literal["patient", "study"]


@dataclass(frozen=True)
class InstanceRef:
    """One stored (or known, for on-demand studies) instance."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    #: bytes in the store (0 when only known: an on-demand instance not fetched yet)
    size: int
    #: the blob key in the store; None while an on-demand instance is not cached
    storage_key: str | None


@dataclass(frozen=True)
class Stored:
    """What :meth:`ArchiveApi.store` did."""

    instance: InstanceRef
    #: False when the same SOP Instance UID was already stored (the new copy replaced it)
    new_instance: bool
    #: the study the instance belongs to got its first instance now
    new_study: bool


class ArchiveApi(Protocol):
    def store(self, path: Path, *, calling_ae: str = "", source: str = "") -> Stored:
        """Index the DICOM Part 10 file at ``path`` (header only; pixel data is never decoded) and keep it.

        The file may be moved into the store (it is the caller's spool copy).
        A file that is not DICOM, lacks the identifying UIDs or whose SOP class
        is not a storage class raises :class:`DicomError` with the status to answer.
        """
        ...

    def find(
        self, level: Level, identifier: Dataset, *, model: Model = "study", scope: Sequence[Scope] | None = None
    ) -> Iterator[Dataset]:
        """C-FIND / QIDO-RS: one response identifier per match, with the requested keys filled.

        ``scope`` (from :func:`esb.authz.authorize_caller`): only the studies a scoped grant may
        see (A2.6); callers pass it only when it is not None.
        """
        ...

    def select(self, level: Level, identifier: Dataset, *, scope: Sequence[Scope] | None = None) -> list[InstanceRef]:
        """C-MOVE / C-GET / WADO: the instances named by the unique keys of ``identifier`` at ``level``."""
        ...

    def open(self, instance: InstanceRef) -> BinaryIO:
        """The instance's Part 10 bytes (an on-demand instance is fetched from its source first)."""
        ...

    def record_commitment(self, request: CommitmentRequest, *, calling_ae: str, remote: str) -> str:
        """Keep a storage commitment request for its report to ``remote`` (a key of remote_aes); its id."""
        ...
