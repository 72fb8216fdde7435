"""The engine's own HTTP port over TLS (``listen.tls_*``): admin endpoints and the routes mounted there.

An ``http:`` route on the engine's port is served over the engine's TLS and
its peers list; so are SOAP and DICOMweb endpoints mounted there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esb import audit
from esb.errors import LintError
from esb.settings import load_settings
from tests.conftest import write_routes
from tests.security import tls_support
from tests.security.tls_support import RECORD, Pki, http_call, make_pki, reasons, refusals, tls11_client
from tests.support import StartEngine, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    audit.clear_captured()
    tls_support.RECEIVED.clear()
    yield
    tls_support.RECEIVED.clear()


async def test_the_admin_port_refuses_every_client_without_a_valid_allowed_certificate(
    tmp_path: Path, start_engine: StartEngine, pki: Pki
) -> None:
    route = f"route:\n  id: orders\n  from: http://127.0.0.1:0/orders\n  steps:\n    - {RECORD}\n"
    write_routes(tmp_path / "routes", {"orders": route})
    engine = await start_engine(
        tls_certfile=str(pki.server.cert),
        tls_keyfile=str(pki.server.key),
        tls_cafile=str(pki.ca),
        tls_client_auth="required",
        tls_peers=("cn:admin-tool", f"sha256:{pki.allowed.fingerprint}"),
    )
    base = f"https://127.0.0.1:{engine.http_port}"

    # POST: aiohttp tries an idempotent GET again on a new connection, which would be a second refusal
    assert str(await http_call(f"{base}/healthz", pki.client(None))).startswith("refused:")  # (a)
    await wait_for(lambda: len(refusals("https")) == 1, what="the refusal of a client without a certificate")
    assert str(await http_call(f"{base}/metrics", pki.client(pki.foreign))).startswith("refused:")
    await wait_for(lambda: len(refusals("https")) == 2, what="the refusal of a foreign certificate")  # (b)
    assert str(await http_call(f"{base}/healthz", tls11_client())).startswith("refused:")
    await wait_for(lambda: len(refusals("https")) == 3, what="the refusal of TLS 1.1")
    assert await http_call(f"{base}/healthz", pki.client(pki.other), method="GET") == 403  # (c)
    assert await http_call(f"{base}/orders", pki.client(pki.other)) == 403
    # (d) the admin tool, and the PACS by its fingerprint
    assert await http_call(f"{base}/healthz", pki.client(pki.admin), method="GET") == 200
    assert await http_call(f"{base}/readyz", pki.client(pki.allowed), method="GET") == 200
    assert await http_call(f"{base}/orders", pki.client(pki.allowed)) == 200
    (seen,) = tls_support.RECEIVED
    assert seen.headers["tls-peer-subject"] == "CN=pacs1,O=Hospital A"
    assert seen.headers["tls-peer-fingerprint"] == pki.allowed.fingerprint

    assert reasons("https") == [
        "TLS handshake failed: peer did not return a certificate",
        "TLS handshake failed: certificate verify failed",
        "TLS handshake failed: unsupported protocol",
        "certificate not allowed",
        "certificate not allowed",
    ]
    assert [r.local for r in refusals("https")][3:] == [f"https:{engine.http_port}/healthz",
                                                         f"https:{engine.http_port}/orders"]  # fmt: skip


def test_listen_tls_settings_come_from_the_environment_and_are_checked(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESB_TLS_CERTFILE", str(pki.server.cert))
    monkeypatch.setenv("ESB_TLS_KEYFILE", str(pki.server.key))
    monkeypatch.setenv("ESB_TLS_CAFILE", str(pki.ca))
    monkeypatch.setenv("ESB_TLS_CLIENT_AUTH", "required")
    monkeypatch.setenv("ESB_TLS_PEERS", "subject:CN=pacs1,O=Hospital A,cn:admin-tool")
    settings = load_settings()
    assert settings.tls_certfile == str(pki.server.cert) and settings.tls_client_auth == "required"
    assert settings.tls_peers == ("subject:CN=pacs1", "O=Hospital A", "cn:admin-tool")

    config = tmp_path / "esb.yaml"
    config.write_text("listen:\n  tls_certfile: /nowhere.pem\n  tls_client_auth: mutual\n  tls_peers: cn:x,md5:00\n")
    with pytest.raises(LintError) as caught:
        load_settings(config)
    text = str(caught.value)
    assert f"{config}:2:17: listen.tls_certfile: no such file '/nowhere.pem'" in text
    assert "listen.tls_client_auth must be none|optional|required (got 'mutual')" in text
    assert "listen.tls_peers: 'md5:00' must start with subject:, cn: or sha256:" in text
    assert "listen.tls_peers needs listen.tls_client_auth=required" in text

    config.write_text("listen:\n  tls_cafile: " + str(pki.ca) + "\n  tls_client_auth: optional\n")
    with pytest.raises(LintError, match="listen.tls_cafile needs listen.tls_certfile"):
        load_settings(config)
