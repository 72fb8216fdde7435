"""The one-pass metadata walker against pydicom's own DICOM JSON, and what lint says of dicomweb: URIs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_charset_files, get_testdata_file

from adapters.dicomweb.dicomjson import read_header, to_json
from adapters.dicomweb.metadata import instance_json
from adapters.dicomweb.wado import bulk_path
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import Settings
from tests.conftest import write_routes

#: every transfer syntax family, implicit and big endian, sequences, private tags, waveforms, LUTs
FILES = [
    "CT_small.dcm", "693_UNCR.dcm", "JPEG2000.dcm", "MR_small.dcm", "emri_small.dcm", "SC_rgb_rle_2frame.dcm",
    "emri_small_jpeg_2k_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG-LL.dcm", "image_dfl.dcm",
    "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "liver.dcm", "JPEGLSNearLossless_16.dcm", "rtplan.dcm",
    "waveform_ecg.dcm", "nested_priv_SQ.dcm", "ExplVR_BigEnd.dcm", "OBXXXX1A.dcm", "reportsi.dcm",
    "color3d_jpeg_baseline.dcm", "SC_ybr_full_uncompressed.dcm", "vlut_04.dcm", "mlut_18.dcm",
    "gdcm-US-ALOKA-16.dcm",
]  # fmt: skip
CHARSETS = sorted(Path(p).name for p in get_charset_files() if p.endswith(".dcm"))


def _path(name: str) -> str:
    found = get_testdata_file(name, download=False)
    if found is None:
        found = next(p for p in get_charset_files() if p.endswith(f"/{name}"))
    return str(found)


def _null_empty(value: Any) -> Any:
    """pydicom writes an empty value of a multi-valued string as "", PS3.18 F.2.5 as null: compare them as one."""
    if isinstance(value, dict):
        return {k: _null_empty(v) for k, v in value.items()}
    if isinstance(value, list):
        return [None if v == "" else _null_empty(v) for v in value]
    return value


@pytest.mark.parametrize("name", FILES + CHARSETS)
def test_the_walker_writes_what_pydicom_writes(name: str) -> None:
    def bulk(path: tuple[int, ...]) -> str:
        return f"bulk/{bulk_path(path)}"

    with open(_path(name), "rb") as fp:
        header = read_header(fp)
        expected = to_json(header.dataset, bulk=bulk, threshold=1024)
    with open(_path(name), "rb") as fp:
        found, syntax, pixels = instance_json(fp, bulk, 1024)
    assert (syntax, pixels) == (header.transfer_syntax, header.pixels)
    assert _null_empty(json.loads(json.dumps(found))) == _null_empty(json.loads(json.dumps(expected)))


def test_the_walker_skips_bulk_values_unread() -> None:
    """Pixel data and overlays are seeked over: a 526 KB CT costs a few kilobytes of reading."""

    class Counting:
        def __init__(self, path: str) -> None:
            self.file = open(path, "rb")
            self.read_bytes = 0

        def read(self, size: int = -1) -> bytes:
            data = self.file.read(size)
            self.read_bytes += len(data)
            return data

        def __getattr__(self, name: str) -> Any:
            return getattr(self.file, name)

    counting = Counting(_path("693_UNCR.dcm"))
    try:
        found, _, pixels = instance_json(counting, lambda path: "uri", 1024)  # type: ignore[arg-type]
    finally:
        counting.file.close()
    assert pixels is not None and pixels.length == 512 * 512 * 2
    assert counting.read_bytes < 70_000 and found["00280010"] == {"vr": "US", "Value": [512]}


def _lint(tmp_path: Path, settings: Settings, uris: dict[str, str]) -> list[str]:
    routes = {k: f"route:\n  id: {k}\n  from: {v}\n  steps: []\n" for k, v in uris.items()}
    write_routes(tmp_path / "routes", routes)
    return [str(e).split(": ", 1)[1] for e in lint([tmp_path / "routes"], EngineContext(settings)).errors]


def test_lint_of_dicomweb_uris(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(http_port=9180)
    problems = "\n".join(
        _lint(
            tmp_path,
            settings,
            {
                "a": "dicomweb://127.0.0.1:9180/dicomweb",
                "b": "dicomweb://127.0.0.1:9180/metrics",
                "c": "dicomweb://127.0.0.1:9181/web?archive=nosuch",
                "d": "dicomweb://127.0.0.1:9182/web?cors=viewer.example.org",
                "e": "dicomweb://127.0.0.1:9183/web?thumbnail_size=0",
                "f": "dicomweb://0.0.0.0:9180/dicomweb",
            },
        )
    )
    assert "path '/metrics' is served by the engine itself" in problems
    assert "option 'archive': no service named 'nosuch'" in problems
    assert "option 'cors' wants origins like https://viewer.example.org or * (got 'viewer.example.org')" in problems
    assert "option 'thumbnail_size' must be a positive number (got 0)" in problems
    assert "port 9180 is the engine's HTTP port on 127.0.0.1; use host 127.0.0.1 to share it" in problems
    assert "'a'" not in problems and len(problems.splitlines()) == 5
