"""Archive.store on both databases: bytes kept as received, rows and counts, replacement, refusals leave nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.uid import generate_uid

from esb.errors import DicomError
from esb.storage import LocalDiskStore
from profiles.dicom.archive import Archive
from profiles.dicom.schema import instances, patients, series, studies
from tests.dicom.conftest import Clock
from tests.dicom_support import MR
from tests.dicom_support import series as make_series


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()


def rows(engine: sa.Engine, table: sa.Table) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.pk)))


def test_store_keeps_the_bytes_and_indexes_every_level(
    archive: Archive, engine: sa.Engine, blobs: LocalDiskStore, tmp_path: Path
) -> None:
    files = make_series(tmp_path / "in", 3, patient_id="P1", issuer="HIS1", accession="A1", modality="CT")
    digests = [sha1(f) for f in files]
    results = [archive.store(f, calling_ae="MODALITY1") for f in files]
    assert [r.new_study for r in results] == [True, False, False]
    assert all(r.new_instance for r in results)
    assert not any(f.exists() for f in files)  # moved into the store, not copied
    for result, digest in zip(results, digests, strict=True):
        key = result.instance.storage_key
        assert key is not None and blobs.exists(key)
        assert sha1(Path(str(blobs.local_path(key)))) == digest
        assert result.instance.transfer_syntax == "1.2.840.10008.1.2.1"
        assert result.instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    [patient] = rows(engine, patients)
    assert (patient.patient_id, patient.issuer, patient.name_upper) == ("P1", "HIS1", "TEST^PATIENT")
    assert (patient.num_studies, patient.num_series, patient.num_instances) == (1, 1, 3)
    [study] = rows(engine, studies)
    assert (study.num_series, study.num_instances, study.status, study.accession) == (1, 3, "received", "A1")
    assert study.modalities == "CT" and study.size == sum(r.instance.size for r in results)
    [one_series] = rows(engine, series)
    assert one_series.num_instances == 3 and one_series.modality == "CT"
    stored = rows(engine, instances)
    assert [r.calling_ae for r in stored] == ["MODALITY1"] * 3
    assert [r.availability for r in stored] == ["ONLINE"] * 3
    assert [r.instance_number for r in stored] == [1, 2, 3]
    assert all(r.sha1 == d for r, d in zip(stored, digests, strict=True))


def test_a_second_series_adds_its_modality_and_counts(archive: Archive, engine: sa.Engine, tmp_path: Path) -> None:
    study_uid = generate_uid()
    for f in make_series(tmp_path / "ct", 2, study_uid=study_uid, modality="CT"):
        archive.store(f)
    for f in make_series(tmp_path / "mr", 1, study_uid=study_uid, source=MR):
        archive.store(f)
    [study] = rows(engine, studies)
    assert (study.modalities, study.num_series, study.num_instances) == ("CT\\MR", 2, 3)
    [patient] = rows(engine, patients)
    assert (patient.num_studies, patient.num_series, patient.num_instances) == (1, 2, 3)


def test_a_resent_instance_replaces_the_old_copy(
    archive: Archive, engine: sa.Engine, blobs: LocalDiskStore, tmp_path: Path
) -> None:
    [first] = make_series(tmp_path / "a", 1)
    copy = tmp_path / "again.dcm"
    ds = dcmread(first)
    ds.StudyDescription = "CORRECTED"
    ds.save_as(copy, enforce_file_format=True)
    original = archive.store(first)
    replaced = archive.store(copy)
    assert replaced.new_instance is False and replaced.new_study is False
    assert original.instance.storage_key is not None and not blobs.exists(original.instance.storage_key)
    assert replaced.instance.storage_key is not None and blobs.exists(replaced.instance.storage_key)
    assert len(list(blobs.scan())) == 1
    [study] = rows(engine, studies)
    assert (study.num_instances, study.description, study.size) == (1, "CORRECTED", replaced.instance.size)
    [patient] = rows(engine, patients)
    assert patient.num_instances == 1


@pytest.mark.parametrize(
    ("damage", "status"),
    [
        ("not-dicom", 0xC000),
        ("truncated-pixels", 0xC000),
        ("truncated-header", 0xC000),
        ("no-study-uid", 0xA900),
        ("bad-uid", 0xA900),
        ("meta-mismatch", 0xA900),
        ("query-sop-class", 0x0122),
        ("unknown-sop-class", 0x0122),
    ],
)
def test_refused_files_leave_nothing_behind(
    archive: Archive, engine: sa.Engine, blobs: LocalDiskStore, tmp_path: Path, damage: str, status: int
) -> None:
    [good] = make_series(tmp_path / "good", 1)
    [path] = make_series(tmp_path / "bad", 1)
    ds = dcmread(path)
    data = path.read_bytes()
    if damage == "not-dicom":
        path.write_bytes(b"MSH|^~\\&|not an image\r" * 100)
    elif damage == "truncated-pixels":
        path.write_bytes(data[: len(data) - 5000])
    elif damage == "truncated-header":
        path.write_bytes(data[:1500])
    else:
        if damage == "no-study-uid":
            del ds.StudyInstanceUID
        elif damage == "bad-uid":
            ds.SeriesInstanceUID = "1.2.abc"  # the archive turned pydicom's value validation off
        elif damage == "meta-mismatch":
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR while the file meta says CT
        elif damage == "query-sop-class":
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
        else:
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.99.1"
        # as sent: enforce_file_format would rewrite the file meta from the data set
        ds.save_as(path, enforce_file_format=damage != "meta-mismatch")
    before = path.read_bytes()
    with pytest.raises(DicomError) as caught:
        archive.store(path)
    assert caught.value.status == status
    assert path.read_bytes() == before  # the caller's file is untouched
    assert list(blobs.scan()) == []
    assert rows(engine, instances) == [] and rows(engine, studies) == [] and rows(engine, patients) == []
    assert archive.store(good).new_instance  # and the archive goes on


def test_a_failed_transaction_gives_the_file_back(
    archive: Archive, engine: sa.Engine, blobs: LocalDiskStore, tmp_path: Path
) -> None:
    """A series UID already used by another study is refused inside the transaction: rollback, file returned."""
    [first] = make_series(tmp_path / "a", 1)
    series_uid = str(dcmread(first).SeriesInstanceUID)
    archive.store(first)
    [stray] = make_series(tmp_path / "b", 1, series_uid=series_uid)  # same series UID, another study
    before = stray.read_bytes()
    with pytest.raises(DicomError) as caught:
        archive.store(stray)
    assert caught.value.status == 0xA900
    assert stray.read_bytes() == before
    assert len(list(blobs.scan())) == 1 and len(rows(engine, instances)) == 1 and len(rows(engine, studies)) == 1


def test_a_file_adopted_from_another_file_system_is_copied_back_on_failure(
    archive: Archive, engine: sa.Engine, blobs: LocalDiskStore, tmp_path: Path
) -> None:
    [first] = make_series(tmp_path / "a", 1)
    series_uid = str(dcmread(first).SeriesInstanceUID)
    archive.store(first)
    spool = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="esb-spool-"))
    try:
        assert os.stat(spool).st_dev != os.stat(tmp_path).st_dev
        [stray] = make_series(spool, 1, series_uid=series_uid)
        before = stray.read_bytes()
        with pytest.raises(DicomError):
            archive.store(stray)
        assert stray.read_bytes() == before and len(list(blobs.scan())) == 1
        [fine] = make_series(spool / "ok", 1)
        assert archive.store(fine).new_instance and not fine.exists()
    finally:
        shutil.rmtree(spool)


def test_concurrent_stores_into_one_study_keep_exact_counts(
    archive: Archive, engine: sa.Engine, tmp_path: Path
) -> None:
    study_uid = generate_uid()
    batches = [make_series(tmp_path / f"s{n}", 6, study_uid=study_uid, patient_id="PX") for n in range(4)]
    errors: list[BaseException] = []

    def run(files: list[Path]) -> None:
        try:
            for f in files:
                archive.store(f)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    [study] = rows(engine, studies)
    assert (study.num_series, study.num_instances) == (4, 24)
    [patient] = rows(engine, patients)
    assert (patient.num_studies, patient.num_series, patient.num_instances) == (1, 4, 24)
    assert sorted(r.num_instances for r in rows(engine, series)) == [6, 6, 6, 6]
    assert len(rows(engine, instances)) == 24


def test_studies_complete_after_a_quiet_period_and_reopen_on_a_new_instance(
    archive: Archive, clock: Clock, tmp_path: Path
) -> None:
    study_uid, other_uid = generate_uid(), generate_uid()
    first, second = make_series(tmp_path / "a", 2, study_uid=study_uid)
    archive.store(first)
    [other] = make_series(tmp_path / "b", 1, study_uid=other_uid)
    clock.advance(30)
    archive.store(other)
    clock.advance(40)  # the first study is quiet for 70 s, the other for 40 s
    assert archive.complete_studies() == [study_uid]
    assert archive.complete_studies() == []  # reported once
    info = archive.study(study_uid)
    assert info is not None and info.status == "complete" and info.completed_at == clock.now
    assert archive.set_status(study_uid, "archived", expected="complete")
    assert archive.studies_with_status("archived") == [study_uid]
    archive.store(second)  # the study changes: it needs a new KOS
    info = archive.study(study_uid)
    assert info is not None and (info.status, info.num_instances, info.completed_at) == ("received", 2, None)
    assert not archive.set_status(study_uid, "archived", expected="complete")
    clock.advance(61)
    assert sorted(archive.complete_studies()) == sorted([study_uid, other_uid])
