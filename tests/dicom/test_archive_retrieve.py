"""Archive.select and Archive.open: instances by unique keys, stored bytes, on-demand fetch, cache expiry."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from esb.errors import DicomError
from esb.storage import LocalDiskStore
from profiles.dicom.api import InstanceRef
from profiles.dicom.archive import Archive
from profiles.dicom.schema import instances
from tests.dicom.conftest import Clock
from tests.dicom_support import MR, identifier, series


def test_select_by_unique_keys_at_each_level(archive: Archive, tmp_path: Path) -> None:
    study_uid, ct_uid, mr_uid = generate_uid(), generate_uid(), generate_uid()
    ct = series(tmp_path / "ct", 3, study_uid=study_uid, series_uid=ct_uid)
    mr = series(tmp_path / "mr", 2, study_uid=study_uid, series_uid=mr_uid, source=MR)
    expected = [str(dcmread(p).SOPInstanceUID) for p in ct + mr]
    other = series(tmp_path / "other", 1)
    for path in [*mr, *ct, *other]:  # stored out of order: the answer is in series/instance order
        archive.store(path)
    by_study = archive.select("STUDY", identifier("STUDY", StudyInstanceUID=study_uid))
    assert sorted(i.sop_instance_uid for i in by_study) == sorted(expected)
    assert all(i.study_uid == study_uid and i.storage_key and i.size > 0 for i in by_study)
    by_series = archive.select("SERIES", identifier("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=mr_uid))
    assert [i.sop_instance_uid for i in by_series] == expected[3:]
    assert all(i.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4" for i in by_series)
    two = archive.select("IMAGE", identifier("IMAGE", SOPInstanceUID=[expected[0], expected[4]]))
    assert {i.sop_instance_uid for i in two} == {expected[0], expected[4]}
    assert archive.select("STUDY", identifier("STUDY", StudyInstanceUID=generate_uid())) == []
    both = archive.select("SERIES", identifier("SERIES", SeriesInstanceUID=[ct_uid, mr_uid]))
    assert len(both) == 5
    for level in ("STUDY", "SERIES", "IMAGE", "PATIENT"):
        with pytest.raises(DicomError) as caught:
            archive.select(level, identifier(level, PatientName="DOE*"))  # type: ignore[arg-type]
        assert caught.value.status == 0xA900


def test_select_orders_by_series_then_instance_number(archive: Archive, tmp_path: Path) -> None:
    study_uid = generate_uid()
    first = series(tmp_path / "a", 3, study_uid=study_uid)
    second = series(tmp_path / "b", 2, study_uid=study_uid)
    for path in second:
        ds = dcmread(path)
        ds.SeriesNumber = 2
        ds.save_as(path, enforce_file_format=True)
    expected = [str(dcmread(p).SOPInstanceUID) for p in first + second]
    for path in [*reversed(second), *reversed(first)]:
        archive.store(path)
    selected = archive.select("STUDY", identifier("STUDY", StudyInstanceUID=study_uid))
    assert [i.sop_instance_uid for i in selected] == expected


def test_open_returns_the_bytes_as_received_even_for_a_stale_reference(archive: Archive, tmp_path: Path) -> None:
    [path] = series(tmp_path / "a", 1)
    original = path.read_bytes()
    resent = tmp_path / "resent.dcm"
    shutil.copyfile(path, resent)
    stored = archive.store(path)
    with archive.open(stored.instance) as stream:
        assert stream.read() == original
    archive.store(resent)  # replaces the copy: the old key is gone
    with archive.open(stored.instance) as stream:
        assert stream.read() == original


class Remote:
    """The hospital's PACS, as the fetcher hook sees it: files by SOP Instance UID."""

    def __init__(self, files: list[Path], spool: Path) -> None:
        self.files = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in files}
        self.spool = spool
        self.calls: list[str] = []
        spool.mkdir(parents=True, exist_ok=True)

    def fetch(self, instance: InstanceRef) -> Path:
        self.calls.append(instance.sop_instance_uid)
        target = self.spool / f"fetched-{len(self.calls)}.dcm"
        shutil.copyfile(self.files[instance.sop_instance_uid], target)
        return target


def test_on_demand_instances_are_fetched_cached_and_expired(
    make_archive: Callable[..., Archive],
    engine: sa.Engine,
    blobs: LocalDiskStore,
    clock: Clock,
    tmp_path: Path,
) -> None:
    files = series(tmp_path / "remote", 2, patient_id="H77")
    remote = Remote(files, tmp_path / "spool")
    without = make_archive()
    for path in files:
        known = without.register(dcmread(path, stop_before_pixels=True), source="PACS1")
        assert known.new_instance and known.instance.storage_key is None and known.instance.size == 0
    [first, second] = without.select(
        "STUDY", identifier("STUDY", StudyInstanceUID=str(dcmread(files[0]).StudyInstanceUID))
    )
    assert first.storage_key is None
    images = list(
        without.find("IMAGE", identifier("IMAGE", SeriesInstanceUID=first.series_uid, InstanceAvailability=""))
    )
    assert [i.InstanceAvailability for i in images] == ["NEARLINE", "NEARLINE"]
    with pytest.raises(DicomError) as caught:
        without.open(first)
    assert caught.value.status == 0xA702

    archive = make_archive(fetcher=remote.fetch)
    with archive.open(first) as stream:
        assert stream.read() == remote.files[first.sop_instance_uid].read_bytes()
    with archive.open(first) as stream:  # cached: not fetched again
        assert stream.read() == remote.files[first.sop_instance_uid].read_bytes()
    assert remote.calls == [first.sop_instance_uid]
    assert not any(remote.spool.iterdir())  # the fetched file was adopted
    with engine.connect() as conn:
        row = conn.execute(sa.select(instances).where(instances.c.sop_uid == first.sop_instance_uid)).one()
    assert row.availability == "ONLINE" and row.source == "PACS1" and row.storage_key
    assert row.expires_at == clock.now + dt.timedelta(seconds=3600)
    assert archive.instance(first.sop_instance_uid) is not None

    clock.advance(3599)
    assert archive.expire_cache() == 0
    clock.advance(2)
    assert archive.expire_cache() == 1
    assert not blobs.exists(row.storage_key)
    current = archive.instance(first.sop_instance_uid)
    assert current is not None and current.storage_key is None and current.size == 0
    with archive.open(first) as stream:  # fetched again after expiry
        stream.read()
    assert remote.calls == [first.sop_instance_uid] * 2
    assert archive.instance(second.sop_instance_uid) == second  # untouched


def test_a_fetcher_that_returns_another_instance_is_refused(
    make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    files = series(tmp_path / "remote", 2)
    wrong = tmp_path / "wrong.dcm"

    def fetch(instance: InstanceRef) -> Path:
        shutil.copyfile(files[1], wrong)
        return wrong

    archive = make_archive(fetcher=fetch)
    known = archive.register(dcmread(files[0], stop_before_pixels=True), source="PACS1")
    with pytest.raises(DicomError) as caught:
        archive.open(known.instance)
    assert caught.value.status == 0xA702 and not wrong.exists()


def test_registering_a_kept_instance_changes_nothing_and_a_pushed_copy_replaces_a_known_one(
    archive: Archive, tmp_path: Path
) -> None:
    [kept, known] = series(tmp_path / "a", 2)
    stored = archive.store(kept)
    again = archive.register(_header_of(archive, stored.instance), source="PACS1")
    assert again.new_instance is False and again.instance.storage_key == stored.instance.storage_key
    registered = archive.register(dcmread(known, stop_before_pixels=True), source="PACS1")
    assert registered.instance.storage_key is None
    pushed = archive.store(known)  # the source sends the instance itself: now kept, for good
    assert pushed.new_instance is False and pushed.instance.storage_key is not None
    info = archive.study(stored.instance.study_uid)
    assert info is not None and info.num_instances == 2


def _header_of(archive: Archive, instance: InstanceRef) -> Dataset:
    with archive.open(instance) as stream:
        return dcmread(stream, stop_before_pixels=True)
