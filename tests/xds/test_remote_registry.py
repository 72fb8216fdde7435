"""The repository sending ITI-42 to a registry over SOAP (``repository.registry`` in config/xds.yaml).

One engine serves both routes; its repository is configured to reach the
registry through the engine's own HTTP endpoint, so the metadata really goes
out as SOAP from a worker thread and back in through the soap: consumer.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from esb.journal.database import make_engine
from profiles.xds import ebxml
from profiles.xds.repository.schema import documents
from tests.soap_client import Part, include, soap_call
from tests.support import StartEngine
from tests.xds import samples
from tests.xds.repository_support import retrieve_request

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_provide_registers_over_soap_and_rolls_back_a_rejection(
    db_url: str, tmp_path: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    config = tmp_path / "xds.yaml"
    config.write_text(
        f"repository:\n  storage: {tmp_path / 'documents'}\n  registry: http://127.0.0.1:{port}/xds/registry\n"
    )
    monkeypatch.setenv("ESB_XDS_CONFIG", str(config))
    monkeypatch.setenv("ESB_HTTP_PORT", str(port))
    routes = tmp_path / "routes"
    routes.mkdir()
    for name in ("xds-registry.yaml", "xds-repository.yaml"):
        shutil.copy(ROOT / "routes" / name, routes)
    engine = await start_engine(db_url=db_url, http_port=port)
    assert engine.journal is not None
    patient = samples.add_patient(engine.journal.engine)
    url = f"http://127.0.0.1:{port}/xds/repository"

    async def provide(patient_id: str, content: bytes) -> tuple[str, str]:
        submit = samples.submission(patient_id, document={"content": content})
        unique_id = samples.unique_id_of(samples.find(submit, "Document01"))
        payload = etree.Element(ebxml.q("xds", "ProvideAndRegisterDocumentSetRequest"), nsmap={"xds": ebxml.XDS})
        payload.append(submit)
        document = etree.SubElement(payload, ebxml.q("xds", "Document"), id="Document01")
        document.append(etree.fromstring(include("doc1@esb.test")))
        async with aiohttp.ClientSession() as session:
            reply = await soap_call(
                session, url, etree.tostring(payload), action=ebxml.ACTION_ITI41,
                parts=[Part("doc1@esb.test", "text/plain", content)],
            )  # fmt: skip
        assert reply.status == 200, reply.body[:500]
        return str(reply.payload.get("status")), unique_id

    status, unique_id = await provide(patient, b"remote registry, accepted")
    assert status == ebxml.SUCCESS
    refused, refused_id = await provide(samples.patient_cx("nobody-knows-me"), b"refused")
    assert refused == ebxml.FAILURE

    db = make_engine(db_url)
    try:
        with db.connect() as conn:
            stored = {r.unique_id: r.status for r in conn.execute(documents.select())}
    finally:
        db.dispose()
    assert stored == {unique_id: "available"}  # the refused document was rolled back
    async with aiohttp.ClientSession() as session:
        request_xml = etree.tostring(retrieve_request(("1.2.156.112.9999.3.1", unique_id)))
        reply = await soap_call(session, url, request_xml, action=ebxml.ACTION_ITI43, use_mtom=True)
    assert reply.payload.find(ebxml.q("rs", "RegistryResponse")).get("status") == ebxml.SUCCESS
    assert [p.data for p in reply.parts.values()] == [b"remote registry, accepted"]
    assert refused_id not in stored
