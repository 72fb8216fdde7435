"""The ingest shortcuts give what the long way gives: remembered headers, element JSON and level values, quick lookup.

Each C-STORE's header is parsed once by the consumer and handed to the archive
(:func:`profiles.dicom.header.remember_header`), the JSON of elements a series
shares is converted once, a level's column values likewise, and the rows of a
known series are found in one statement. None of that may change a result.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import generate_uid

from profiles.dicom import header as header_module
from profiles.dicom import indexer
from profiles.dicom.archive import Archive
from profiles.dicom.attributes import patient_columns
from profiles.dicom.header import header_json, read_header, remember_header
from profiles.dicom.schema import patients, series, studies
from tests.dicom_support import series as make_series


def dataset_part(path: Path) -> Dataset:
    """The data set of a Part 10 file as the consumer parses it from the wire (no file meta, raw elements)."""
    data = path.read_bytes()
    meta = dcmread(path, stop_before_pixels=True).file_meta
    start = 132 + 12 + int(meta.FileMetaInformationGroupLength)
    ds = read_dataset(io.BytesIO(data[start:]), False, True)
    ds.file_meta = meta
    return ds


def test_header_json_of_a_series_matches_a_fresh_conversion(tmp_path: Path) -> None:
    paths = make_series(tmp_path / "s", 3, patient_name="Müller^Hans")
    fresh = []
    for path in paths:
        header_module._ELEMENT_JSON.clear()
        fresh.append(header_json(dataset_part(path)))
    header_module._ELEMENT_JSON.clear()
    remembered = [header_json(dataset_part(path)) for path in paths]  # the 2nd and 3rd use what the 1st converted
    assert remembered == fresh
    assert len(header_module._ELEMENT_JSON) > 20


def test_element_json_is_remembered_per_character_set(tmp_path: Path) -> None:
    """The same bytes mean another name under another character set: never mixed up."""
    [path] = make_series(tmp_path / "s", 1)
    ds = dcmread(path)
    ds.SpecificCharacterSet, ds.PatientName = "ISO_IR 192", "MÜLLER^HANS"
    ds.save_as(path, enforce_file_format=True)
    latin1 = tmp_path / "latin1.dcm"  # the very same bytes, declared ISO_IR 100 (same length)
    latin1.write_bytes(path.read_bytes().replace(b"ISO_IR 192", b"ISO_IR 100"))
    names = [json.loads(header_json(dataset_part(p)))["00100010"]["Value"][0]["Alphabetic"] for p in (path, latin1)]
    assert names == ["MÜLLER^HANS", "MÜLLER^HANS".encode().decode("latin-1")]


def test_a_remembered_header_is_used_once_and_only_for_the_same_file(tmp_path: Path) -> None:
    [path] = make_series(tmp_path / "s", 1)
    ds = dataset_part(path)
    ds.AccessionNumber = "FROM-MEMORY"  # shows which one read_header returned
    remember_header(path, ds)
    assert read_header(path).dataset.AccessionNumber == "FROM-MEMORY"
    assert read_header(path).dataset.AccessionNumber != "FROM-MEMORY"  # once only
    remember_header(path, ds)
    replaced = path.with_suffix(".new")
    replaced.write_bytes(path.read_bytes())
    os.replace(replaced, path)  # transcoded or rewritten meanwhile: another inode
    assert read_header(path).dataset.AccessionNumber != "FROM-MEMORY"


def test_a_header_with_an_element_read_from_disk_later_is_not_remembered(tmp_path: Path) -> None:
    [path] = make_series(tmp_path / "s", 1)
    big = dcmread(path)
    big.EncapsulatedDocument = b"\x00" * (header_module.DEFER_SIZE + 2)  # before the pixel data, read lazily
    big.save_as(path, enforce_file_format=True)
    remember_header(path, dataset_part(path))
    assert os.fspath(path) not in header_module._PARSED


def test_level_values_follow_their_bytes(tmp_path: Path) -> None:
    paths = make_series(tmp_path / "s", 2, patient_id="P7", patient_name="Doe^Jane")
    first, second = (read_header(p).dataset for p in paths)
    indexer._REMEMBERED.clear()
    assert indexer._level_values(first, "PATIENT", patient_columns) == patient_columns(first)
    assert len(indexer._REMEMBERED) == 1
    assert indexer._level_values(second, "PATIENT", patient_columns) == patient_columns(second)
    assert len(indexer._REMEMBERED) == 1  # same patient bytes: one entry
    second.PatientName = "Doe^Janet"
    assert indexer._level_values(second, "PATIENT", patient_columns)["name_upper"] == "DOE^JANET"


def test_a_patient_id_corrected_within_a_series_moves_the_study(
    archive: Archive, engine: sa.Engine, tmp_path: Path
) -> None:
    """The one-statement lookup finds the series under the old patient: it starts over and moves the study."""
    study_uid, series_uid = generate_uid(), generate_uid()
    for path in make_series(tmp_path / "a", 2, patient_id="OLD", study_uid=study_uid, series_uid=series_uid):
        archive.store(path)
    [path] = make_series(tmp_path / "b", 1, patient_id="NEW", study_uid=study_uid, series_uid=series_uid)
    archive.store(path)
    with engine.connect() as conn:
        counts = {
            row.patient_id: (row.num_studies, row.num_series, row.num_instances)
            for row in conn.execute(sa.select(patients))
        }
        study = conn.execute(sa.select(studies)).one()
        owner = conn.execute(sa.select(patients.c.patient_id).where(patients.c.pk == study.patient_pk)).scalar_one()
        [one_series] = conn.execute(sa.select(series)).all()
    assert owner == "NEW" and study.num_instances == 3 and one_series.num_instances == 3
    assert counts == {"OLD": (0, 0, 0), "NEW": (1, 1, 3)}
