"""QIDO-RS over real HTTP: levels, matching keys by keyword and tag, includefield, paging, errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from tests.adapters.dicomweb.conftest import Web
from tests.dicom_support import MR, SMALL_CT

JSON = "application/dicom+json"


@dataclass
class Data:
    study_a: str
    study_b: str
    ct_series: str
    mr_series: str
    ct: list[str]
    mr: list[str]


@pytest.fixture
def data(web: Web, tmp_path: Path) -> Data:
    study_a, study_b, ct_series, mr_series = (generate_uid() for _ in range(4))
    common: dict[str, Any] = {"patient_id": "P1", "patient_name": "Doe^John", "study_uid": study_a}
    ct = web.load(tmp_path / "ct", 3, series_uid=ct_series, source=SMALL_CT, **common)
    mr = web.load(tmp_path / "mr", 2, series_uid=mr_series, source=MR, **common)
    web.load(tmp_path / "b", 1, patient_id="P2", patient_name="Roe^Jane", study_uid=study_b, study_date="20250101")
    return Data(study_a, study_b, ct_series, mr_series, ct, mr)


def value(item: dict[str, Any], tag: str) -> Any:
    values = item[tag].get("Value", [])
    return values[0] if len(values) == 1 else values


async def get(web: Web, path: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    async with web.client.get(web.base + path, headers=headers) as answer:
        body = await answer.read()
        parsed = await answer.json(content_type=None) if body else None
        return answer.status, dict(answer.headers), parsed


async def test_studies_with_the_default_attributes_and_retrieve_url(web: Web, data: Data) -> None:
    status, headers, found = await get(web, "/studies")
    assert status == 200 and headers["Content-Type"] == JSON
    by_uid = {value(s, "0020000D"): s for s in found}
    assert set(by_uid) == {data.study_a, data.study_b}
    study = by_uid[data.study_a]
    assert value(study, "00100020") == "P1"
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}
    assert value(study, "00201206") == 2 and value(study, "00201208") == 5
    assert sorted(value(study, "00080061")) == ["CT", "MR"]
    assert study["00081190"] == {"vr": "UR", "Value": [f"{web.base}/studies/{data.study_a}"]}
    for tag in ("00080020", "00080030", "00080050", "00080090", "00100030", "00100040", "00200010"):
        assert tag in study, tag
    assert "00080052" not in study  # QueryRetrieveLevel is not an attribute of the result
    assert list(study) == sorted(study)


@pytest.mark.parametrize(
    "query",
    ["PatientID=P1", "00100020=P1", "PatientName=doe*", "StudyDate=20261101-20261231", "ModalitiesInStudy=MR"],
)
async def test_matching_keys_by_keyword_or_tag(web: Web, data: Data, query: str) -> None:
    status, _, found = await get(web, f"/studies?{query}")
    assert status == 200
    assert [value(s, "0020000D") for s in found] == [data.study_a]


async def test_study_uid_list_and_date_range(web: Web, data: Data) -> None:
    status, _, found = await get(web, f"/studies?StudyInstanceUID={data.study_a},{data.study_b}")
    assert status == 200 and {value(s, "0020000D") for s in found} == {data.study_a, data.study_b}
    status, _, found = await get(web, "/studies?StudyDate=20250101-20250131")
    assert [value(s, "0020000D") for s in found] == [data.study_b]


async def test_series_of_a_study_and_series_across_studies(web: Web, data: Data) -> None:
    status, headers, found = await get(web, f"/studies/{data.study_a}/series")
    assert status == 200 and headers["Content-Type"] == JSON
    by_uid = {value(s, "0020000E"): s for s in found}
    assert set(by_uid) == {data.ct_series, data.mr_series}
    ct = by_uid[data.ct_series]
    assert value(ct, "00080060") == "CT" and value(ct, "00201209") == 3
    assert value(ct, "00081190") == f"{web.base}/studies/{data.study_a}/series/{data.ct_series}"
    assert "00100020" not in ct  # the study is fixed by the path: no study attributes
    status, _, found = await get(web, "/series?Modality=MR")
    assert status == 200 and [value(s, "0020000E") for s in found] == [data.mr_series]
    assert value(found[0], "00100020") == "P1" and value(found[0], "0020000D") == data.study_a


async def test_instances_at_every_path(web: Web, data: Data) -> None:
    path = f"/studies/{data.study_a}/series/{data.ct_series}/instances"
    status, headers, found = await get(web, path)
    assert status == 200 and headers["Content-Type"] == JSON
    assert [value(i, "00080018") for i in found] == data.ct
    first = found[0]
    assert value(first, "00200013") == 1 and value(first, "00280010") == 128 and value(first, "00280100") == 16
    assert value(first, "00080016") == "1.2.840.10008.5.1.4.1.1.2"
    series_url = f"{web.base}/studies/{data.study_a}/series/{data.ct_series}"
    assert value(first, "00081190") == f"{series_url}/instances/{data.ct[0]}"
    assert "0020000E" in first and "00080060" not in first  # series fixed: no series attributes
    status, _, found = await get(web, f"/studies/{data.study_a}/instances")
    assert status == 200 and len(found) == 5
    assert {value(i, "00080060") for i in found} == {"CT", "MR"}  # series attributes: the series is open
    status, _, found = await get(web, f"/instances?SOPInstanceUID={data.mr[1]}")
    assert [value(i, "00080018") for i in found] == [data.mr[1]]
    assert value(found[0], "00100020") == "P1"


async def test_includefield_by_keyword_tag_and_all(web: Web, data: Data) -> None:
    _, _, plain = await get(web, "/studies?PatientID=P1")
    assert "00081030" not in plain[0] and "00101010" not in plain[0]
    for include in ("StudyDescription", "00081030", "StudyDescription,PatientAge"):
        _, _, found = await get(web, f"/studies?PatientID=P1&includefield={include}")
        assert value(found[0], "00081030") == "e+1"
    _, _, found = await get(web, "/studies?PatientID=P1&includefield=StudyDescription&includefield=PatientAge")
    assert value(found[0], "00101010") == "000Y"
    _, _, found = await get(web, "/studies?PatientID=P1&includefield=all")
    assert value(found[0], "00081030") == "e+1" and value(found[0], "00101010") == "000Y"
    assert "00321032" not in found[0]  # asked for by "all", but this study has no value for it


async def test_limit_and_offset_page_through_with_a_warning(web: Web, data: Data) -> None:
    path = f"/studies/{data.study_a}/series/{data.ct_series}/instances"
    status, headers, found = await get(web, f"{path}?limit=2")
    assert status == 200 and [value(i, "00080018") for i in found] == data.ct[:2]
    assert headers["Warning"].startswith("299 ") and "additional results" in headers["Warning"]
    status, headers, found = await get(web, f"{path}?limit=2&offset=2")
    assert [value(i, "00080018") for i in found] == data.ct[2:] and "Warning" not in headers
    status, headers, found = await get(web, f"{path}?offset=1")
    assert [value(i, "00080018") for i in found] == data.ct[1:]
    status, _, found = await get(web, f"{path}?offset=3")
    assert status == 204 and found is None


async def test_no_match_is_204_without_a_body(web: Web, data: Data) -> None:
    async with web.client.get(f"{web.base}/studies?PatientID=NOBODY") as answer:
        assert answer.status == 204 and await answer.read() == b""


async def test_fuzzymatching_is_accepted_with_a_warning(web: Web, data: Data) -> None:
    status, headers, found = await get(web, "/studies?PatientName=DOE*&fuzzymatching=true")
    assert status == 200 and [value(s, "0020000D") for s in found] == [data.study_a]
    assert "fuzzymatching parameter is not supported" in headers["Warning"]
    status, headers, _ = await get(web, "/studies?fuzzymatching=false")
    assert status == 200 and "Warning" not in headers


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("PatientIDD=1", "'PatientIDD' is neither a DICOM attribute keyword nor a tag"),
        ("limit=-1", "'limit' must be a whole number"),
        ("offset=x", "'offset' must be a whole number"),
        ("fuzzymatching=maybe", "'fuzzymatching' must be true or false"),
        ("PatientID=a&PatientID=b", "'PatientID' is given more than once"),
        ("Rows=big", "Rows takes a number"),
        ("OtherPatientIDsSequence=x", "is a sequence"),
        ("includefield=NoSuchThing", "'NoSuchThing' is neither"),
    ],
)
async def test_bad_parameters_are_400_with_a_json_error(web: Web, data: Data, query: str, complaint: str) -> None:
    status, headers, body = await get(web, f"/studies?{query}")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert complaint in body["error"]


async def test_sequence_attribute_matching_and_bad_paths(web: Web, data: Data) -> None:
    status, _, _ = await get(web, "/studies?OtherPatientIDsSequence.PatientID=X")
    assert status in (200, 204)
    status, _, body = await get(web, "/studies/not-a-uid/series")
    assert status == 400 and "not a DICOM UID" in body["error"]
    status, _, body = await get(web, "/patients")
    assert status == 404


async def test_accept_other_than_json_is_406(web: Web, data: Data) -> None:
    status, _, body = await get(web, "/studies", Accept='multipart/related; type="application/dicom+xml"')
    assert status == 406 and "application/dicom+json" in body["error"]
    status, _, found = await get(web, "/studies", Accept="application/json")
    assert status == 200 and len(found) == 2
