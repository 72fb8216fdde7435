"""Active collection (A3.4): bring a remote PACS's studies of a date window into the archive, resumably.

A job C-FINDs the remote (Study Root) for the studies whose StudyDate lies in
the window, then per study asks the remote which instances it has (SERIES then
IMAGE level, as the hierarchical model requires) and compares with the
archive: a study the archive already holds entirely is skipped, the rest is
retrieved (the whole study, whole series, or just the missing instances).

Two ways to retrieve:

- ``get`` (C-GET): the remote sends the instances back on our association and
  each one goes straight to ``ArchiveApi.store``; works without the engine's
  DICOM listener, and through firewalls that only let us call out.
- ``move`` (C-MOVE): the remote opens its own association to our AE title
  (``settings.dicom_ae_title``, which it must know) and the engine's ``dicom:``
  consumer stores what arrives; the job only checks the archive afterwards.

Progress is one row per study (:mod:`profiles.dicom.collect_schema`), written
after each study, so a job stopped at any point (Ctrl-C, a crash, a time
budget) resumes with the studies not yet done; since a study half-fetched is
compared instance by instance, nothing is fetched twice. Rerunning the same
source, method and window resumes its unfinished job.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydicom.dataset import Dataset
from sqlalchemy import Engine

from esb.errors import DicomError
from esb.uri import Duration, UriError
from profiles.dicom import collect_schema as t
from profiles.dicom.api import ArchiveApi
from profiles.dicom.collect_jobs import BUSY_AFTER, CollectReport, JobRows, StudyOutcome, report_of
from profiles.dicom.config import RemoteAe
from profiles.dicom.qrscu import QrScu, RetrieveResult

__all__ = [
    "BUSY_AFTER", "METHODS", "CollectReport", "CollectRequest", "Method", "StudyProgress", "dicom_date", "report_of",
    "run_collection",
]  # fmt: skip

log = logging.getLogger("esb.dicom.collect")

Method = Literal["move", "get"]
METHODS: tuple[Method, ...] = ("move", "get")


@dataclass(frozen=True)
class StudyProgress:
    """After each study: how far the job is and what became of that study."""

    index: int
    total: int
    study_uid: str
    status: str
    instances: int
    bytes: int


def dicom_date(value: str | dt.date, today: dt.date | None = None) -> str:
    """``2026-11-29``, ``20261129``, a date, or an age in days before ``today`` (``0d``, ``7d``) as a DICOM DA."""
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    text = value.strip()
    for pattern in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, pattern).strftime("%Y%m%d")
        except ValueError:
            continue
    try:
        days = Duration.parse(text) / 86400
    except UriError:
        days = -1.0
    if days >= 0 and days == int(days):
        return ((today or dt.date.today()) - dt.timedelta(days=int(days))).strftime("%Y%m%d")
    raise ValueError(f"'{value}' is not a date (YYYY-MM-DD, YYYYMMDD) or an age in days (7d)")


@dataclass(frozen=True)
class CollectRequest:
    """What a ``timer:`` route asks ``service:dicom-archive/collect`` for, in message headers.

    ``dicom-collect-from`` (a remote AE name, required), ``dicom-collect-since``
    (default ``1d``), ``dicom-collect-until`` (default ``0d``: today),
    ``dicom-collect-method`` (``move`` or ``get``, default ``move``: the engine's
    listener is running) and ``dicom-collect-budget`` (a duration, optional).
    """

    source: str
    since: str
    until: str
    method: Method = "move"
    time_budget: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], today: dt.date | None = None) -> CollectRequest:
        source = headers.get("dicom-collect-from", "").strip()
        if not source:
            raise ValueError("the dicom-collect-from header must name the remote AE to collect from")
        method = headers.get("dicom-collect-method", "move").strip()
        if method not in METHODS:
            raise ValueError(f"dicom-collect-method must be move or get, not '{method}'")
        budget = headers.get("dicom-collect-budget", "").strip()
        try:
            time_budget = float(Duration.parse(budget)) if budget else None
        except UriError as exc:
            raise ValueError(f"dicom-collect-budget: {exc}") from None
        since = dicom_date(headers.get("dicom-collect-since", "1d"), today)
        until = dicom_date(headers.get("dicom-collect-until", "0d"), today)
        return cls(source, since, until, method, time_budget)


def _query(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for name, value in keys.items():
        setattr(ds, name, value)
    return ds


def run_collection(
    engine: Engine,
    archive: ArchiveApi,
    remote: RemoteAe,
    *,
    since: str | dt.date,
    until: str | dt.date,
    method: Method = "get",
    local_ae: str = "ESB",
    move_destination: str | None = None,
    spool_dir: Path,
    progress: Callable[[StudyProgress], None] | None = None,
    time_budget: float | None = None,
    timeout: float = 60.0,
) -> CollectReport:
    """Collect ``remote``'s studies dated ``since``..``until`` (inclusive) into ``archive``.

    ``time_budget`` (seconds) pauses the job once spent, after at least one
    study: a nightly ``timer:`` run then continues the next night. C-MOVE sends
    to ``move_destination`` (default ``local_ae``). Raises :class:`DicomError`
    when the remote cannot be queried at all; failures of single studies are
    recorded and retried by the next run.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not '{method}'")
    window = dicom_date(since), dicom_date(until)
    if window[0] > window[1]:
        raise ValueError(f"the window ends ({window[1]}) before it starts ({window[0]})")
    scu = QrScu(remote, local_ae=local_ae, spool_dir=spool_dir, timeout=timeout)
    job = _Job(engine, archive, scu, method, move_destination or local_ae)
    return job.run(window, progress, time_budget)


class _Job:
    def __init__(self, engine: Engine, archive: ArchiveApi, scu: QrScu, method: Method, destination: str) -> None:
        self.rows = JobRows(engine, scu.remote.ae_title, method)
        self.archive = archive
        self.scu = scu
        self.method = method
        self.destination = destination
        self.source = scu.remote.ae_title

    def run(
        self, window: tuple[str, str], progress: Callable[[StudyProgress], None] | None, budget: float | None
    ) -> CollectReport:
        started = time.monotonic()
        job_id, resumed = self.rows.open(window)
        verb = "resumed" if resumed else "started"
        log.info("collection job %s %s: %s-%s from %s", job_id, verb, *window, self.source)
        status = t.RUNNING
        try:
            self.rows.add_studies(job_id, self._find_studies(window))
            todo = self.rows.todo(job_id)
            total = len(todo)
            for index, (study_uid, remote_count) in enumerate(todo, start=1):
                if budget is not None and index > 1 and time.monotonic() - started >= budget:
                    status = t.PAUSED
                    break
                outcome = self._collect_study(study_uid, remote_count)
                self.rows.record(job_id, study_uid, outcome)
                if progress is not None:
                    progress(StudyProgress(index, total, study_uid, outcome.status, outcome.instances, outcome.bytes))
            else:
                status = t.DONE
        except DicomError:
            status = t.FAILED
            raise
        except BaseException:
            status = t.INTERRUPTED
            raise
        finally:
            self.rows.close(job_id, status, time.monotonic() - started)
        report = self.rows.report(job_id, resumed)
        log.info("collection job %s %s: %d found, %d retrieved, %d skipped, %d failed, %d instances",
                 job_id, report.status, report.found, report.retrieved, report.skipped, report.failed,
                 report.instances)  # fmt: skip
        return report

    # -- the remote and the archive ------------------------------------------------------------

    def _find_studies(self, window: tuple[str, str]) -> dict[str, tuple[str, int]]:
        """Study UID -> (StudyDate, NumberOfStudyRelatedInstances or 0) for the window."""
        query = _query("STUDY", StudyInstanceUID="", StudyDate=f"{window[0]}-{window[1]}",
                       NumberOfStudyRelatedInstances="")  # fmt: skip
        studies: dict[str, tuple[str, int]] = {}
        for match in self.scu.find(query):
            uid, date = str(match.get("StudyInstanceUID", "") or ""), str(match.get("StudyDate", "") or "")
            if not uid or (date and not window[0] <= date <= window[1]):
                continue  # a peer that ignores the range: keep to the window anyway
            studies[uid] = (date, int(match.get("NumberOfStudyRelatedInstances", 0) or 0))
        return studies

    def _remote_instances(self, study_uid: str) -> dict[str, tuple[str, str]]:
        """SOP Instance UID -> (series UID, SOP Class UID) as the remote has them (SERIES, then IMAGE level).

        A series whose IMAGE answers fall short of its NumberOfSeriesRelatedInstances
        is asked once more (a response lost on the way must not make a study look complete).
        """
        found: dict[str, tuple[str, str]] = {}
        query = _query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID="", NumberOfSeriesRelatedInstances="")
        for series in self.scu.find(query):
            series_uid = str(series.get("SeriesInstanceUID", "") or "")
            if not series_uid:
                continue
            expected = int(series.get("NumberOfSeriesRelatedInstances", 0) or 0)
            query = _query("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                           SOPInstanceUID="", SOPClassUID="")  # fmt: skip
            for _ in range(2):
                images = {str(i.get("SOPInstanceUID", "") or ""): i for i in self.scu.find(query)}
                images.pop("", None)
                if len(images) >= expected:
                    break
                log.warning("a series of %s listed %d of %d instances; asking again", self.source, len(images),
                            expected)  # fmt: skip
            for sop, image in images.items():
                found[sop] = (series_uid, str(image.get("SOPClassUID", "") or ""))
        return found

    def _local(self, study_uid: str) -> dict[str, int]:
        """SOP Instance UID -> size of what the archive holds (on-demand entries not fetched yet do not count)."""
        refs = self.archive.select("STUDY", _query("STUDY", StudyInstanceUID=study_uid))
        return {r.sop_instance_uid: r.size for r in refs if r.storage_key is not None}

    def _collect_study(self, study_uid: str, remote_count: int) -> StudyOutcome:
        """Retrieve what the archive lacks of one study; judged by what the archive holds afterwards.

        A study the archive has nothing of is retrieved whole at once and, if the
        archive then holds NumberOfStudyRelatedInstances, that is all it costs.
        Otherwise the remote's instance list (exact SOP classes included) says
        what is missing, and only that is retrieved.
        """
        before = self._local(study_uid)
        remote: dict[str, tuple[str, str]] = {}
        results: list[RetrieveResult] = []
        error = ""
        try:
            if not before and remote_count:
                results.append(self._retrieve(_query("STUDY", StudyInstanceUID=study_uid), []))
                if len(self._local(study_uid)) >= remote_count and results[-1].ok:
                    return _judge(before, self._local(study_uid), None, results)
            remote = self._remote_instances(study_uid)
            current = self._local(study_uid)
            missing = {sop: where for sop, where in remote.items() if sop not in current}
            if remote and not missing and not results:
                return StudyOutcome(t.SKIPPED)
            results += [self._retrieve(query, classes) for query, classes in _requests(study_uid, remote, missing)]
        except DicomError as exc:
            error = exc.text
        return _judge(before, self._local(study_uid), remote, results, error)

    def _retrieve(self, query: Dataset, sop_classes: list[str]) -> RetrieveResult:
        if self.method == "move":
            return self.scu.move(query, self.destination)
        source = self.source

        def store(path: Path) -> None:
            self.archive.store(path, calling_ae=source, source=source)

        return self.scu.get(query, sop_classes, store)


def _judge(
    before: dict[str, int],
    after: dict[str, int],
    remote: dict[str, tuple[str, str]] | None,
    results: list[RetrieveResult],
    error: str = "",
) -> StudyOutcome:
    """A study's outcome from what the archive holds now (``remote`` None: the count already matched)."""
    new = [sop for sop in after if sop not in before]
    fetched = sum(after[sop] for sop in new)
    if remote is not None and not error:
        absent = [sop for sop in remote if sop not in after]
        if not remote and not after:
            error = "the remote lists no instances for the study and sent none"
        elif absent:
            error = f"{len(absent)} of {len(remote)} instances not in the archive"
            if results:
                error += f"; last retrieve: status 0x{results[-1].status:04X}, {results[-1].failed} failed"
    if error:
        return StudyOutcome(t.FAILED, len(new), fetched, error)
    return StudyOutcome(t.RETRIEVED, len(new), fetched)


def _requests(
    study_uid: str, remote: dict[str, tuple[str, str]], missing: dict[str, tuple[str, str]]
) -> Iterable[tuple[Dataset, list[str]]]:
    """The fewest retrieves that fetch ``missing``: the study, whole series, or instance lists per series."""
    classes = sorted({sop_class for _, sop_class in missing.values() if sop_class})
    if not remote or len(missing) == len(remote):
        yield _query("STUDY", StudyInstanceUID=study_uid), classes
        return
    by_series: dict[str, list[str]] = {}
    for sop, (series_uid, _) in missing.items():
        by_series.setdefault(series_uid, []).append(sop)
    for series_uid, sops in sorted(by_series.items()):
        series_size = sum(1 for where in remote.values() if where[0] == series_uid)
        series_classes = sorted({missing[sop][1] for sop in sops if missing[sop][1]})
        if len(sops) == series_size:
            yield _query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid), series_classes
        else:
            query = _query("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID=sops)
            yield query, series_classes
