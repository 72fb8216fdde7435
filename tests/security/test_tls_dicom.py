"""dicom: over TLS with mutual authentication: pynetdicom and dcmtk's storescu as clients.

A node refused by its certificate gets an A-ASSOCIATE-RJ (rejected-permanent,
service-user, calling AE title not recognized); a failed handshake never
reaches the association. Each refusal is one audit record.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom.presentation import build_context

from esb import audit
from esb.runtime.engine import Engine
from esb.security.certs import Issued
from tests.adapters.dicom.support import association, store_contexts
from tests.conftest import write_routes
from tests.dicom_support import dcmtk, require_dcmtk, series
from tests.security import tls_support
from tests.security.tls_support import RECORD, Pki, make_pki, reasons, refusals, tls11_client
from tests.support import StartEngine, wait_for

VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    audit.clear_captured()
    tls_support.RECEIVED.clear()
    yield
    tls_support.RECEIVED.clear()


async def dicom_engine(tmp_path: Path, start_engine: StartEngine, pki: Pki) -> tuple[Engine, int]:
    query = f"ae_title=ESB&archive=&tls=true&{pki.listen_query(f'sha256:{pki.allowed.fingerprint}')}"
    route = f"route:\n  id: r\n  from: dicom://127.0.0.1:0?{query}\n  steps:\n    - {RECORD}\n"
    write_routes(tmp_path / "routes", {"r": route})
    engine = await start_engine()
    return engine, int(engine.routes["r"].consumer.port)  # type: ignore[union-attr]


def echo(port: int, context: ssl.SSLContext) -> str:
    """established, rejected (result, source, reason), or not established."""
    hostname = "127.0.0.1" if context.check_hostname else None
    with association(port, [build_context(VERIFICATION)], tls_args=(context, hostname)) as assoc:
        if assoc.is_established:
            return "established" if assoc.send_c_echo().Status == 0 else "echo failed"
        if assoc.is_rejected:
            rj = assoc.acceptor.primitive
            assert rj is not None
            return f"rejected {rj.result} {rj.result_source} {rj.diagnostic}"
        return "not established"


def store(port: int, context: ssl.SSLContext, files: list[Path]) -> list[int]:
    with association(port, store_contexts(*files), tls_args=(context, "127.0.0.1")) as assoc:
        assert assoc.is_established
        return [int(assoc.send_c_store(dcmread(f)).Status) for f in files]


async def test_dicom_refuses_every_client_without_a_valid_allowed_certificate(
    tmp_path: Path, start_engine: StartEngine, pki: Pki
) -> None:
    _, port = await dicom_engine(tmp_path, start_engine, pki)

    assert await asyncio.to_thread(echo, port, pki.client(None)) == "not established"  # (a)
    await wait_for(lambda: len(refusals("dicom")) == 1, what="the refusal of a client without a certificate")
    assert await asyncio.to_thread(echo, port, pki.client(pki.foreign)) == "not established"  # (b)
    await wait_for(lambda: len(refusals("dicom")) == 2, what="the refusal of a foreign certificate")
    # (c) a valid certificate not in peers: rejected-permanent, service-user, calling AE title not recognized
    assert await asyncio.to_thread(echo, port, pki.client(pki.other)) == "rejected 1 1 3"
    assert await asyncio.to_thread(echo, port, tls11_client()) == "not established"
    await wait_for(lambda: len(refusals("dicom")) == 4, what="four refusals")

    # (d) the allowed peer, by fingerprint: C-STORE taken, the exchange names the certificate
    files = series(tmp_path / "in", 1)
    assert await asyncio.to_thread(store, port, pki.client(pki.allowed), files) == [0]
    (seen,) = tls_support.RECEIVED
    assert seen.headers["tls-peer-subject"] == "CN=pacs1,O=Hospital A"
    assert seen.headers["tls-peer-fingerprint"] == pki.allowed.fingerprint
    assert seen.headers["dicom-calling-ae"] == "TESTSCU"

    assert reasons("dicom") == [
        "TLS handshake failed: peer did not return a certificate",
        "TLS handshake failed: certificate verify failed",
        "certificate not allowed",
        "TLS handshake failed: unsupported protocol",
    ]
    assert {r.local for r in refusals("dicom")} == {f"dicom:{port}"}
    assert refusals("dicom")[2].peer == "CN=rogue,O=Hospital B"


async def test_dcmtk_storescu_over_tls(tmp_path: Path, start_engine: StartEngine, pki: Pki) -> None:
    require_dcmtk()
    _, port = await dicom_engine(tmp_path, start_engine, pki)
    files = series(tmp_path / "in", 1)
    common = ("-aet", "STORESCU", "-aec", "ESB", "+cf", pki.ca)

    def storescu(who: Issued | None) -> tuple[int, str]:
        tls = ("+tls", who.key, who.cert) if who is not None else ("+tla",)
        done = dcmtk("storescu", *tls, *common, "127.0.0.1", str(port), files[0], timeout=60)
        return done.returncode, done.stdout + done.stderr

    code, output = await asyncio.to_thread(storescu, pki.allowed)
    assert code == 0, output
    assert tls_support.RECEIVED[0].headers["tls-peer-fingerprint"] == pki.allowed.fingerprint
    code, output = await asyncio.to_thread(storescu, pki.other)
    assert code != 0 and "Calling AE Title Not Recognized" in output, output
    code, output = await asyncio.to_thread(storescu, None)
    assert code != 0, output
    await wait_for(lambda: len(refusals("dicom")) == 2, what="two refusals")
    assert reasons("dicom") == ["certificate not allowed", "TLS handshake failed: peer did not return a certificate"]
    assert len(tls_support.RECEIVED) == 1
