"""dicom: URIs, options and what lint says about them; the generated reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.dicom import DicomAdapter, DicomOptions
from esb.cli.docs import adapter_reference, to_markdown
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import PACKAGE_ROOT, Settings
from esb.uri import UriError, parse_uri
from tests.conftest import write_routes


def options(uri: str, make_settings: Callable[..., Settings]) -> DicomOptions:
    endpoint = DicomAdapter(EngineContext(make_settings())).endpoint(parse_uri(uri))
    found: DicomOptions = endpoint.options
    return found


def test_the_peer_ae_title_is_the_uri_user(make_settings: Callable[..., Settings]) -> None:
    sent = options("dicom://PACS_1@pacs.example.org:104?calling_ae=ESB&timeout=30s", make_settings)
    assert (sent.ae_title, sent.host, sent.port, sent.calling_ae, sent.timeout) == (
        "PACS_1",
        "pacs.example.org",
        104,
        "ESB",
        30.0,
    )
    served = options("dicom://0.0.0.0:11112?ae_title=ESB&calling_aes=CT1,MR2&max_pdu=0", make_settings)
    assert (served.ae_title, served.calling_aes, served.max_pdu, served.archive) == (
        "ESB",
        ("CT1", "MR2"),
        0,
        "dicom-archive",
    )


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("ae_title=SEVENTEEN_CHARS_AE", "longer than 16 characters"),
        ("ae_title=A%5CB", "no backslash"),
        ("calling_aes=CT1,,MR2", "empty AE title in the list"),
        ("max_pdu=-1", r"option .max_pdu. must be 0 \(unlimited\)"),
        ("max_associations=0", "option 'max_associations' must be a positive number"),
        ("store_timeout=0s", "option 'store_timeout' must be longer than 0"),
        ("client_auth=sometimes", "option 'client_auth' must be one of none|optional|required"),
    ],
)
def test_bad_values_are_refused(make_settings: Callable[..., Settings], query: str, said: str) -> None:
    with pytest.raises(UriError, match=said):
        options(f"dicom://0.0.0.0:11112?{query}", make_settings)


def lint_problems(tmp_path: Path, settings: Settings, sources: dict[str, str], to: str = "") -> list[str]:
    steps = f"\n    - to: {to}" if to else " []"
    routes = {k: f"route:\n  id: {k}\n  from: {v}\n  steps:{steps}\n" for k, v in sources.items()}
    write_routes(tmp_path / "routes", routes)
    return [str(e).split(": ", 1)[1] for e in lint([tmp_path / "routes"], EngineContext(settings)).errors]


def test_lint_reports_bad_combinations(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    sources = {
        "a": "dicom://0.0.0.0:11112?archive=",
        "b": "dicom://0.0.0.0:11112?archive=&ae_title=OTHER",
        "c": "dicom://0.0.0.0:11113?archive=&reuse_port=true",
        "d": "dicom://0.0.0.0:11113?archive=&reuse_port=true",
        "e": "dicom://127.0.0.1:0?archive=no-such-archive",
        "f": "dicom://127.0.0.1:0?archive=&tls=true",
        "g": "dicom://127.0.0.1:0?archive=&certfile=/nowhere.pem",
        "h": "dicom://127.0.0.1:0?archive=&calling_ae=ESB",
        "i": "dicom://:11114?archive=",
        "j": "dicom://127.0.0.1:0?archive=&worklist=no-such-worklist",
        "k": "dicom://127.0.0.1:0?archive=&worklist=dicom-archive",
    }
    problems = lint_problems(tmp_path, make_settings(), sources, to="dicom://PACS@127.0.0.1:0?calling_aes=X")
    text = "\n".join(problems)
    assert "'dicom://0.0.0.0:11112?archive=&ae_title=OTHER' listens where route 'a' already does" in text
    # reuse_port shares a port between engine processes, not between the routes of one engine
    assert "'dicom://0.0.0.0:11113?archive=&reuse_port=true' listens where route 'c' already does" in text
    assert "dicom: option 'archive': no service named 'no-such-archive'" in text
    assert "dicom: option 'worklist': no service named 'no-such-worklist'" in text
    assert "dicom: option 'worklist': service 'dicom-archive' keeps no worklist" in text
    assert "tls=true needs option 'certfile'" in text
    assert "option 'certfile' needs tls=true" in text and "no such file '/nowhere.pem'" in text
    assert "option 'calling_ae' applies to 'to' endpoints only" in text
    assert "needs a host, e.g. dicom://0.0.0.0:11112?ae_title=ESB" in text
    assert "option 'calling_aes' applies to 'from' endpoints only" in text
    assert "port 0 can only be listened on" in text


def test_the_shipped_route_lints(make_settings: Callable[..., Settings]) -> None:
    result = lint([PACKAGE_ROOT / "routes" / "dicom-in.yaml"], EngineContext(make_settings()))
    assert result.errors == []
    (loaded,) = result.routes
    assert loaded.route.store == "metadata" and loaded.endpoint.options.archive == "dicom-archive"


def test_the_reference_in_docs_adapters_md_is_current() -> None:
    """docs/adapters.md is `esb docs --markdown`; the dicom section must match the code."""
    section = to_markdown(adapter_reference(DicomAdapter))
    assert section.startswith("## `dicom:`\n\nDICOM DIMSE:")
    assert "URI: `dicom://[AE_TITLE@]HOST:PORT?option=value&...`" in section
    assert section in (PACKAGE_ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
