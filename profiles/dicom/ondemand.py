"""On-demand mode (A4): images a hospital keeps at home, fetched from it when someone asks for them.

The hospital registers its patients, sends one KOS per exam and keeps its
images; :func:`register_remote_study` reads the KOS and has the archive index
every instance it lists as *known, not cached* (``storage_key`` None) with the
place to get it from. When an instance is asked for (WADO, DICOMweb, C-MOVE,
RAD-69), the archive calls :meth:`Fetcher.fetch`, which gets the Part 10 file:

- by WADO-RS from the source's DICOMweb root when it has one (one instance,
  ``multipart/related; type="application/dicom"; transfer-syntax=*`` so the
  bytes arrive as stored, streamed to disk, never held whole in memory);
- else (or when WADO-RS fails and the source also speaks DIMSE) by C-GET.

A source is a remote AE name (a key of ``remote_aes`` in config/dicom.yaml) or
a DICOMweb base URL (a KOS's Retrieve URL when the AE is not configured). The
archive caches what was fetched until ``cache_expiry``; this module only fetches.
"""

from __future__ import annotations

import email.message
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import Engine, select

from esb.errors import DicomError
from profiles.dicom.api import InstanceRef, Stored
from profiles.dicom.config import DicomConfig, RemoteAe
from profiles.dicom.qrscu import QrScu

log = logging.getLogger("esb.dicom.ondemand")

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
CHUNK = 1 << 16
MAX_PART_HEADERS = 16 * 1024
#: the archive's UNAVAILABLE (the instance cannot be sent): what its C-MOVE, C-GET or WADO answer when the source fails
UNABLE = 0xA702


class Fetcher:
    """Gets on-demand instances from their source; what ``Archive(fetcher=...)`` calls.

    ``locate`` gives an instance's source when the caller does not pass one;
    without either, a single configured remote AE is the source. ``session``
    (one per thread when not given) carries the HTTP connections to reuse.
    """

    def __init__(
        self,
        remotes: Mapping[str, RemoteAe],
        *,
        spool_dir: Path,
        local_ae: str = "ESB",
        timeout: float = 60.0,
        locate: Callable[[InstanceRef], str] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.remotes = dict(remotes)
        self.spool_dir = spool_dir
        self.local_ae = local_ae
        self.timeout = timeout
        self.locate = locate
        self._session = session
        self._sessions = threading.local()  # the archive fetches from several threads; a Session is not thread-safe

    @property
    def session(self) -> requests.Session:
        if self._session is not None:
            return self._session
        session: requests.Session | None = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
        return session

    def __call__(self, instance: InstanceRef) -> Path:
        """The archive's ``fetcher`` hook: ``Archive(..., fetcher=Fetcher(...))``."""
        return self.fetch(instance)

    def fetch(self, instance: InstanceRef, source: str = "") -> Path:
        """A fresh spool file with the instance's Part 10 bytes; the caller owns (moves or deletes) it."""
        source = source or (self.locate(instance) if self.locate else "") or self._only_remote()
        if source.startswith(("http://", "https://")):
            return self._wado(instance, source.rstrip("/"))
        remote = self.remotes.get(source)
        if remote is None:
            raise DicomError(f"on-demand source '{source}' is neither a configured remote AE nor a DICOMweb URL",
                             status=UNABLE)  # fmt: skip
        if remote.dicomweb:
            try:
                return self._wado(instance, remote.dicomweb.rstrip("/"))
            except DicomError as exc:
                if not remote.port:
                    raise
                log.warning("WADO-RS from %s failed (%s); trying C-GET", source, exc.text)
        return self._cget(instance, remote)

    def _only_remote(self) -> str:
        if len(self.remotes) == 1:
            return next(iter(self.remotes))
        raise DicomError("on-demand instance without a source, and no single remote AE to ask", status=UNABLE)

    def _spool(self) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        return self.spool_dir / f"ondemand-{uuid.uuid4().hex}.dcm"

    def _wado(self, instance: InstanceRef, base: str) -> Path:
        url = (f"{base}/studies/{quote(instance.study_uid)}/series/{quote(instance.series_uid)}"
               f"/instances/{quote(instance.sop_instance_uid)}")  # fmt: skip
        path = self._spool()
        try:
            with self.session.get(url, headers={"Accept": ACCEPT}, stream=True, timeout=self.timeout) as answer:
                if answer.status_code != 200:
                    raise DicomError(f"WADO-RS {base} answered {answer.status_code}", status=UNABLE)
                with path.open("wb") as out:
                    _first_part(answer, out.write)
            _check(path, instance)
        except requests.RequestException as exc:
            path.unlink(missing_ok=True)
            raise DicomError(f"WADO-RS {base}: {type(exc).__name__}", status=UNABLE) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _cget(self, instance: InstanceRef, remote: RemoteAe) -> Path:
        scu = QrScu(remote, local_ae=self.local_ae, spool_dir=self.spool_dir, timeout=self.timeout)
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = instance.study_uid
        query.SeriesInstanceUID = instance.series_uid
        query.SOPInstanceUID = instance.sop_instance_uid
        received: list[Path] = []

        def keep(path: Path) -> None:
            target = self._spool()
            path.rename(target)
            received.append(target)

        try:
            result = scu.get(query, [instance.sop_class_uid] if instance.sop_class_uid else [], keep)
            if not received:
                raise DicomError(f"C-GET from {remote.ae_title} sent nothing (status 0x{result.status:04X}, "
                                 f"{result.failed} failed)", status=UNABLE)  # fmt: skip
            _check(received[0], instance)
        except BaseException:
            for path in received:
                path.unlink(missing_ok=True)
            raise
        for extra in received[1:]:
            extra.unlink(missing_ok=True)
        return received[0]


def archive_sources(engine: Engine) -> Callable[[InstanceRef], str]:
    """Where the archive's index says an on-demand instance comes from (its ``source`` column)."""
    from profiles.dicom.schema import instances

    def locate(instance: InstanceRef) -> str:
        with engine.connect() as conn:
            found = conn.execute(
                select(instances.c.source).where(instances.c.sop_uid == instance.sop_instance_uid)
            ).scalar()
        return str(found or "")

    return locate


def fetcher_for(engine: Engine, config: DicomConfig, *, spool_dir: Path, local_ae: str) -> Fetcher:
    """The fetcher an archive on ``engine`` uses: remote AEs from config/dicom.yaml, sources from the index."""
    return Fetcher(config.remote_aes, spool_dir=spool_dir, local_ae=local_ae, locate=archive_sources(engine))


def _first_part(answer: requests.Response, write: Callable[[bytes], object]) -> None:
    """Stream the first body part of a multipart answer to ``write`` (a plain application/dicom body as is)."""
    header = email.message.Message()
    header["content-type"] = answer.headers.get("content-type", "")
    chunks: Iterator[bytes] = answer.iter_content(CHUNK)
    if header.get_content_type() != "multipart/related":
        for chunk in chunks:
            write(chunk)
        return
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise DicomError("WADO-RS answer is multipart without a boundary", status=UNABLE)
    delimiter = b"\r\n--" + boundary.encode("ascii")
    buffer = b"\r\n"  # the first delimiter may open the body without a preceding CRLF
    for chunk in chunks:
        buffer += chunk
        start = buffer.find(delimiter)
        end = buffer.find(b"\r\n\r\n", start + len(delimiter)) if start >= 0 else -1
        if end >= 0:
            buffer = buffer[end + 4 :]
            break
        if len(buffer) > MAX_PART_HEADERS:
            raise DicomError("WADO-RS answer: no part headers where expected", status=UNABLE)
    else:
        raise DicomError("WADO-RS answer has no body part", status=UNABLE)
    keep = len(delimiter)
    while True:
        found = buffer.find(delimiter)
        if found >= 0:
            write(buffer[:found])
            return
        if len(buffer) > keep:
            write(buffer[:-keep])
            buffer = buffer[-keep:]
        chunk = next(chunks, b"")
        if not chunk:
            raise DicomError("WADO-RS answer ended inside its body part", status=UNABLE)
        buffer += chunk


def _check(path: Path, instance: InstanceRef) -> None:
    """The file is DICOM and the instance asked for (a source answering with another one is an error)."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise DicomError(f"the source sent something that is not DICOM Part 10: {exc}", status=UNABLE) from exc
    if str(ds.get("SOPInstanceUID", "")) != instance.sop_instance_uid:
        raise DicomError("the source sent another instance than the one asked for", status=UNABLE)


# -- KOS: what a hospital in on-demand mode sends ---------------------------------------------------------

#: patient and study attributes of the KOS copied into each instance's index header
#: the modality a KOS's referenced SOP class stands for. A KOS names SOP classes, not modalities, and
#: neither pydicom nor pynetdicom maps one to the other: the common image storage classes, by hand.
MODALITY_OF_CLASS = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.2": "MG",
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG",
    "1.2.840.10008.5.1.4.1.1.1.3": "IO",
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",
    "1.2.840.10008.5.1.4.1.1.6.1": "US",
    "1.2.840.10008.5.1.4.1.1.3.1": "US",
    "1.2.840.10008.5.1.4.1.1.12.1": "XA",
    "1.2.840.10008.5.1.4.1.1.12.2": "RF",
    "1.2.840.10008.5.1.4.1.1.20": "NM",
    "1.2.840.10008.5.1.4.1.1.128": "PT",
    "1.2.840.10008.5.1.4.1.1.130": "PT",
    "1.2.840.10008.5.1.4.1.1.481.1": "RTIMAGE",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "XC",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "SM",
    "1.2.840.10008.5.1.4.1.1.7": "OT",
    "1.2.840.10008.5.1.4.1.1.104.1": "DOC",
    "1.2.840.10008.5.1.4.1.1.88.59": "KO",
}
COPIED = (
    "SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID", "StudyDescription",
)  # fmt: skip


@dataclass(frozen=True)
class RemoteStudy:
    """What a KOS told us: one study, its instances' index headers grouped by source."""

    study_uid: str
    #: source (remote AE name or DICOMweb base) -> headers of the instances to get from it
    headers: dict[str, list[Dataset]] = field(default_factory=dict)

    @property
    def instances(self) -> int:
        return sum(len(h) for h in self.headers.values())


class RemoteIndex(Protocol):
    """What :func:`register_remote_study` needs of the archive (``Archive.register``)."""

    def register(self, ds: Dataset, *, source: str, transfer_syntax: str = "") -> Stored:
        """Index an instance known but not kept (``storage_key`` None), to be fetched from ``source``."""
        ...


def read_kos(kos: Dataset, remotes: Mapping[str, RemoteAe], default_source: str = "") -> list[RemoteStudy]:
    """The studies a Key Object Selection document references, with a source per series.

    A series' source is its Retrieve AE Title when that AE is configured, else
    the DICOMweb root in its Retrieve URL, else ``default_source`` (the sending
    hospital's AE); a series with none of them is an error.
    """
    studies = []
    for evidence in kos.get("CurrentRequestedProcedureEvidenceSequence", []):
        study_uid = str(evidence.get("StudyInstanceUID", "") or "")
        if not study_uid:
            raise DicomError("KOS evidence item without a Study Instance UID", status=0xA900)
        study = RemoteStudy(study_uid)
        for series in evidence.get("ReferencedSeriesSequence", []):
            series_uid = str(series.get("SeriesInstanceUID", "") or "")
            if not series_uid:
                raise DicomError("KOS series item without a Series Instance UID", status=0xA900)
            source = _series_source(series, remotes, default_source)
            for ref in series.get("ReferencedSOPSequence", []):
                header = Dataset()
                for keyword in COPIED:
                    if keyword in kos and (keyword != "StudyDate" or kos.StudyInstanceUID == study_uid):
                        setattr(header, keyword, kos.data_element(keyword).value)  # type: ignore[union-attr]
                header.StudyInstanceUID = study_uid
                header.SeriesInstanceUID = series_uid
                header.SOPInstanceUID = str(ref.ReferencedSOPInstanceUID)
                header.SOPClassUID = str(ref.ReferencedSOPClassUID)
                modality = MODALITY_OF_CLASS.get(header.SOPClassUID)
                if modality:  # until the image itself is fetched, ModalitiesInStudy has something to show
                    header.Modality = modality
                study.headers.setdefault(source, []).append(header)
        studies.append(study)
    if not studies:
        raise DicomError("the KOS references no study (Current Requested Procedure Evidence Sequence)", status=0xA900)
    return studies


def _series_source(series: Dataset, remotes: Mapping[str, RemoteAe], default_source: str) -> str:
    value = series.get("RetrieveAETitle")
    titles = [] if value is None else [value] if isinstance(value, str) else [str(v) for v in value]
    for title in titles:
        if title in remotes:
            return title
    url = str(series.get("RetrieveURL", "") or "")
    if url.startswith(("http://", "https://")):
        return url.split("/studies/", 1)[0].rstrip("/")
    if default_source:
        return default_source
    raise DicomError("a KOS series names no known Retrieve AE Title, no Retrieve URL, and no default source",
                     status=0xA900)  # fmt: skip


def register_remote_study(
    archive: RemoteIndex, kos: Path | Dataset, *, remotes: Mapping[str, RemoteAe], default_source: str = ""
) -> list[RemoteStudy]:
    """Index every instance a KOS lists as known but not cached; the KOS itself is stored by the caller."""
    dataset = kos if isinstance(kos, Dataset) else dcmread(kos, stop_before_pixels=True)
    studies = read_kos(dataset, remotes, default_source)
    for study in studies:
        for source, headers in study.headers.items():
            for header in headers:
                archive.register(header, source=source)
        log.info("on-demand study indexed: %d instances from %d sources", study.instances, len(study.headers))
    return studies
