"""On-demand retrieval from a real Orthanc: a KOS indexes a remote study, the fetcher gets instances on request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from esb.errors import DicomError
from profiles.dicom.api import InstanceRef
from profiles.dicom.archive import UNAVAILABLE
from profiles.dicom.config import DicomConfig, RemoteAe
from profiles.dicom.ondemand import Fetcher, _first_part, fetcher_for, read_kos, register_remote_study
from tests.dicom_collect.conftest import CACHE_EXPIRY, Clock, CountingArchive, Study, remote_of, upload_study
from tests.dicom_support import LARGE_CT, identifier
from tests.orthanc_support import Orthanc, free_port

KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"


def kos_for(study: Study, *, retrieve_ae: str = "", retrieve_url: str = "") -> Dataset:
    """A Key Object Selection document listing every instance of ``study`` (TID 2010 evidence)."""
    headers = [dcmread(p, stop_before_pixels=True) for p in study.files]
    first = headers[0]
    kos = Dataset()
    kos.SOPClassUID = KOS_CLASS
    kos.SOPInstanceUID = generate_uid()
    kos.Modality = "KO"
    for keyword in ("PatientName", "PatientID", "IssuerOfPatientID", "StudyInstanceUID", "StudyDate"):
        setattr(kos, keyword, first.data_element(keyword).value)  # type: ignore[union-attr]
    kos.AccessionNumber = "A1"
    series_items = []
    for series_uid in sorted({str(h.SeriesInstanceUID) for h in headers}):
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        if retrieve_ae:
            item.RetrieveAETitle = retrieve_ae
        if retrieve_url:
            item.RetrieveURL = f"{retrieve_url}/studies/{study.uid}/series/{series_uid}"
        refs = []
        for header in headers:
            if str(header.SeriesInstanceUID) == series_uid:
                ref = Dataset()
                ref.ReferencedSOPClassUID = header.SOPClassUID
                ref.ReferencedSOPInstanceUID = header.SOPInstanceUID
                refs.append(ref)
        item.ReferencedSOPSequence = Sequence(refs)
        series_items.append(item)
    evidence = Dataset()
    evidence.StudyInstanceUID = study.uid
    evidence.ReferencedSeriesSequence = Sequence(series_items)
    kos.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    return kos


def ref_of(path: Path) -> InstanceRef:
    ds = dcmread(path, stop_before_pixels=True)
    return InstanceRef(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID),
                       str(ds.SOPClassUID), "", 0, None)  # fmt: skip


def assert_same_instance(fetched: Path, original: Path) -> None:
    got, want = dcmread(fetched), dcmread(original)
    assert got.SOPInstanceUID == want.SOPInstanceUID
    assert got.PixelData == want.PixelData
    assert got.file_meta.TransferSyntaxUID == want.file_meta.TransferSyntaxUID


def test_a_kos_indexes_the_remote_study_and_opening_fetches_caches_and_expires(
    orthanc: Orthanc,
    engine: sa.Engine,
    make_archive: Callable[..., CountingArchive],
    clock: Clock,
    year: str,
    tmp_path: Path,
) -> None:
    study = upload_study(orthanc, tmp_path, f"{year}0101", (2, 1))
    remotes = {"ORTHANC": remote_of(orthanc)}
    fetches: list[str] = []
    fetcher = fetcher_for(engine, DicomConfig(remote_aes=remotes), spool_dir=tmp_path / "spool", local_ae="ESBTEST")

    def counting(instance: InstanceRef) -> Path:
        fetches.append(instance.sop_instance_uid)
        return fetcher(instance)

    archive = make_archive(fetcher=counting)
    path = tmp_path / "kos.dcm"
    kos = kos_for(study, retrieve_ae="ORTHANC")
    kos.ensure_file_meta()
    kos.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    kos.save_as(path, enforce_file_format=True)
    studies = register_remote_study(archive, path, remotes=remotes)
    assert [(s.study_uid, s.instances, list(s.headers)) for s in studies] == [(study.uid, 3, ["ORTHANC"])]
    refs = archive.study_instances(study.uid)
    assert {r.sop_instance_uid for r in refs} == study.sop_uids
    assert all(r.storage_key is None and r.size == 0 for r in refs)
    found = list(archive.find("STUDY", identifier("STUDY", StudyInstanceUID=study.uid, PatientID="", StudyDate="",
                                                    AccessionNumber="", ModalitiesInStudy="")))  # fmt: skip
    assert [(f.PatientID, f.StudyDate, f.AccessionNumber) for f in found] == [("P0001", f"{year}0101", "A1")]
    assert found[0].ModalitiesInStudy == "CT"  # from the SOP classes the KOS names, before any fetch
    by_uid = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in study.files}
    # opening an instance fetches it from Orthanc (WADO-RS: the remote has a DICOMweb root) and keeps it
    with archive.open(refs[0]) as stream:
        assert dcmread(stream).PixelData == dcmread(by_uid[refs[0].sop_instance_uid]).PixelData
    assert fetches == [refs[0].sop_instance_uid]
    cached = archive.instance(refs[0].sop_instance_uid)
    assert cached is not None and cached.storage_key is not None and cached.size > 39000
    with archive.open(refs[0]) as stream:  # from the cache now
        assert dcmread(stream).SOPInstanceUID == refs[0].sop_instance_uid
    assert fetches == [refs[0].sop_instance_uid]
    # past cache_expiry the copy goes; the instance stays known and is fetched again when asked for
    clock.advance(CACHE_EXPIRY - 1)
    assert archive.expire_cache() == 0
    clock.advance(2)
    assert archive.expire_cache() == 1
    gone = archive.instance(refs[0].sop_instance_uid)
    assert gone is not None and gone.storage_key is None
    with archive.open(refs[0]) as stream:
        assert dcmread(stream).SOPInstanceUID == refs[0].sop_instance_uid
    assert fetches == [refs[0].sop_instance_uid] * 2
    assert list((tmp_path / "spool").iterdir()) == []  # every fetched file was adopted by the store


def test_kos_sources_retrieve_url_default_and_errors(orthanc: Orthanc, year: str, tmp_path: Path) -> None:
    study = upload_study(orthanc, tmp_path, f"{year}0102", (1,))
    remotes = {"ORTHANC": remote_of(orthanc)}
    by_url = read_kos(kos_for(study, retrieve_ae="UNKNOWN", retrieve_url=orthanc.dicomweb_url), remotes)
    assert list(by_url[0].headers) == [orthanc.dicomweb_url]
    by_default = read_kos(kos_for(study, retrieve_ae="UNKNOWN"), remotes, default_source="ORTHANC")
    assert list(by_default[0].headers) == ["ORTHANC"]
    with pytest.raises(DicomError, match="no known Retrieve AE Title") as raised:
        read_kos(kos_for(study), remotes)
    assert raised.value.status == 0xA900
    with pytest.raises(DicomError, match="references no study"):
        read_kos(Dataset(), remotes)


def test_fetch_by_wado_rs_from_a_configured_remote_and_from_a_url(orthanc: Orthanc, year: str, tmp_path: Path) -> None:
    study = upload_study(orthanc, tmp_path, f"{year}0201", (2,), source=LARGE_CT)  # 526 KB: many chunks
    fetcher = Fetcher({"ORTHANC": remote_of(orthanc)}, spool_dir=tmp_path / "spool", local_ae="ESBTEST")
    for original in study.files:
        fetched = fetcher.fetch(ref_of(original), "ORTHANC")
        assert fetched.parent == tmp_path / "spool"
        assert_same_instance(fetched, original)
        assert fetched.read_bytes()[128:132] == b"DICM"
    by_url = fetcher.fetch(ref_of(study.files[0]), orthanc.dicomweb_url + "/")
    assert_same_instance(by_url, study.files[0])
    only = fetcher.fetch(ref_of(study.files[1]))  # no source: the one configured remote
    assert_same_instance(only, study.files[1])


def test_fetch_by_cget_when_the_remote_has_no_dicomweb(orthanc: Orthanc, year: str, tmp_path: Path) -> None:
    study = upload_study(orthanc, tmp_path, f"{year}0202", (2,))
    remote = remote_of(orthanc, dicomweb=False)
    located: list[InstanceRef] = []

    def locate(instance: InstanceRef) -> str:
        located.append(instance)
        return "ORTHANC"

    fetcher = Fetcher({"ORTHANC": remote, "OTHER": RemoteAe("OTHER", "127.0.0.1", 1)}, spool_dir=tmp_path / "spool",
                      local_ae="ESBTEST", locate=locate)  # fmt: skip
    ref = ref_of(study.files[0])
    fetched = fetcher.fetch(ref)
    assert located == [ref]
    assert_same_instance(fetched, study.files[0])
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [fetched.name]  # nothing else left behind


def test_wado_failure_falls_back_to_cget(orthanc: Orthanc, year: str, tmp_path: Path) -> None:
    study = upload_study(orthanc, tmp_path, f"{year}0203", (1,))
    broken = RemoteAe("ORTHANC", "127.0.0.1", orthanc.dicom_port, f"http://127.0.0.1:{free_port()}/dicom-web")
    fetcher = Fetcher({"ORTHANC": broken}, spool_dir=tmp_path / "spool", local_ae="ESBTEST", timeout=5)
    assert_same_instance(fetcher.fetch(ref_of(study.files[0]), "ORTHANC"), study.files[0])


def test_unknown_instances_and_sources_are_dicom_errors(orthanc: Orthanc, year: str, tmp_path: Path) -> None:
    study = upload_study(orthanc, tmp_path, f"{year}0204", (1,))
    ref = ref_of(study.files[0])
    missing = InstanceRef(ref.study_uid, ref.series_uid, generate_uid(), ref.sop_class_uid, "", 0, None)
    spool = tmp_path / "spool"
    web = Fetcher({"ORTHANC": remote_of(orthanc)}, spool_dir=spool, local_ae="ESBTEST")
    with pytest.raises(DicomError, match="WADO-RS .* answered 404") as raised:
        web.fetch(missing, orthanc.dicomweb_url)
    assert raised.value.status == 0xA702 == UNAVAILABLE
    dimse = Fetcher({"ORTHANC": remote_of(orthanc, dicomweb=False)}, spool_dir=spool, local_ae="ESBTEST")
    with pytest.raises(DicomError, match="C-GET (on|from) ORTHANC (failed|sent nothing)"):
        dimse.fetch(missing, "ORTHANC")
    with pytest.raises(DicomError, match="neither a configured remote AE nor a DICOMweb URL"):
        dimse.fetch(ref, "ELSEWHERE")
    with pytest.raises(DicomError, match="no single remote AE"):
        Fetcher({}, spool_dir=spool).fetch(ref)
    assert not spool.exists() or list(spool.iterdir()) == []  # no partial files left


class Answer:
    """What ``_first_part`` reads of a requests.Response: headers and the body in chunks."""

    def __init__(self, content_type: str, body: bytes, size: int) -> None:
        self.headers = {"content-type": content_type}
        self.body, self.size = body, size

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        return (self.body[i : i + self.size] for i in range(0, len(self.body), self.size))


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_the_first_part_is_cut_exactly_whatever_the_chunking(size: int) -> None:
    payload = b"\x00" * 128 + b"DICM" + b"\r\n--almost the boundary\r\n\r\n" * 3 + bytes(range(256)) * 4
    body = (b"--XyZ\r\nContent-Type: application/dicom\r\nContent-Length: 9\r\n\r\n" + payload
            + b"\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nsecond\r\n--XyZ--\r\n")  # fmt: skip
    out: list[bytes] = []
    answer = Answer('multipart/related; type="application/dicom"; boundary=XyZ', body, size)
    _first_part(answer, out.append)  # type: ignore[arg-type]
    assert b"".join(out) == payload
    out.clear()
    _first_part(Answer("application/dicom", payload, size), out.append)  # type: ignore[arg-type]
    assert b"".join(out) == payload
    with pytest.raises(DicomError, match="ended inside its body part"):
        _first_part(Answer("multipart/related; boundary=XyZ", body[:200], size), out.append)  # type: ignore[arg-type]
    with pytest.raises(DicomError, match="without a boundary"):
        _first_part(Answer("multipart/related", body, size), out.append)  # type: ignore[arg-type]
