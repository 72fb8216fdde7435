"""Query services check the caller's permission: PIX and PDQ over MLLP (AR with ERR), XDS ITI-18 and
ITI-43 over SOAP (Failure, XDSRegistryError "access denied"), on the shipped routes of a started engine."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from esb.audit import clear_captured
from esb.http import auth
from esb.runtime.engine import Engine
from esb.security import tokens
from esb.security.users import directory
from esb.settings import PACKAGE_ROOT
from tests.adapters.mllp_support import connect, port_of
from tests.security import users_support
from tests.security.users_support import UsersDb, refusals
from tests.soap_client import Reply, content_type, envelope, mtom, post
from tests.support import StartEngine

#: shared fixtures (no conftest here: another helper's tests share this directory)
users_db = users_support.users_db
_upgraded_db = users_support._upgraded_db

PASSWORD = "correct horse battery"
HIS = "HIS1&1.2.3.1&ISO"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
QUERY = (
    b'<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" '
    b'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><query:ResponseOption returnType="ObjectRef"/>'
    b'<rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"><rim:Slot name="$XDSDocumentEntryPatientId">'
    b"<rim:ValueList><rim:Value>'E1^^^&amp;1.2.156.112.9999.1.1&amp;ISO'</rim:Value></rim:ValueList></rim:Slot>"
    b'<rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList>'
    b"<rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value></rim:ValueList></rim:Slot>"
    b"</rim:AdhocQuery></query:AdhocQueryRequest>"
)
RETRIEVE = (
    b'<xds:RetrieveDocumentSetRequest xmlns:xds="urn:ihe:iti:xds-b:2007"><xds:DocumentRequest>'
    b"<xds:RepositoryUniqueId>1.2.3.4</xds:RepositoryUniqueId><xds:DocumentUniqueId>1.2.3.4.5</xds:DocumentUniqueId>"
    b"</xds:DocumentRequest></xds:RetrieveDocumentSetRequest>"
)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    auth.forget()
    clear_captured()
    yield
    auth.forget()


@pytest.fixture
async def engine(
    users_db: UsersDb, start_engine: StartEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Engine:
    users_db.store.add_user("xds-consumer", password=PASSWORD)
    users_db.store.save_role("xds-consumers", ["xds.query", "xds.retrieve"])
    users_db.store.grant("xds-consumers", "xds-consumer")
    monkeypatch.setenv("ESB_LISTEN_HOST", "127.0.0.1")
    monkeypatch.setenv("ESB_HTTP_PORT", "0")
    monkeypatch.setenv("ESB_MLLP_PORT", "0")
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "no-listeners.yaml"))
    (tmp_path / "routes").mkdir()
    for name in ("hl7-in.yaml", "xds-registry.yaml", "xds-repository.yaml"):
        shutil.copy(PACKAGE_ROOT / "routes" / name, tmp_path / "routes" / name)
    return await start_engine(db_url=users_db.url)


async def soap(
    client: aiohttp.ClientSession, url: str, payload: bytes, action: str, *, packaged: bool = False, **headers: str
) -> Reply:
    """A SOAP 1.2 request (MTOM-packaged when ``packaged``) with extra HTTP headers (credentials)."""
    data = envelope(payload, action=action)
    if packaged:
        kind, data = mtom(data, [], action=action)
        return await post(client, url, data, kind, headers)
    return await post(client, url, data, content_type("1.2", action), headers)


def segment(reply: bytes, name: str) -> list[str]:
    return next(line.split("|") for line in reply.decode().split("\r") if line.startswith(name + "|"))


def msh(kind: str, control: str) -> str:
    return f"MSH|^~\\&|RIS|HOSP|EMPI|REGION|20261129080000||{kind}|{control}|P|2.5|||||||UNICODE UTF-8"


async def test_pix_and_pdq_refuse_an_anonymous_caller_until_a_role_allows_it(engine: Engine, users_db: UsersDb) -> None:
    pix = f"{msh('QBP^Q23^QBP_Q21', 'q1')}\rQPD|IHE PIX Query|q1|H1^^^{HIS}\rRCP|I".encode()
    pdq = f"{msh('QBP^Q22^QBP_Q21', 'p1')}\rQPD|IHE PDQ Query|p1|@PID.5.1.1^WANG\rRCP|I".encode()
    async with connect(port_of(engine, "hl7-in")) as client:
        for message, permission in ((pix, "pix.query"), (pdq, "pdq.query")):
            await client.send(message)
            answer = await client.receive()
            assert segment(answer, "MSA")[1] == "AR"
            err = segment(answer, "ERR")
            assert err[3].startswith("207") and "access denied" in err[8] and f"may not {permission}" in err[8]
            assert refusals("anonymous", permission)
        users_db.store.save_role("anonymous", ["pix.query"])
        directory(engine.journal.engine).invalidate()
        await client.send(pix.replace(b"q1", b"q2"))  # a new control ID: the MLLP dedup answers a repeat
        answered = await client.receive()  # past authorization: ITI-9's own answer for an unknown patient
        assert segment(answered, "MSA")[1] == "AE" and segment(answered, "ERR")[3].startswith("204")


async def test_xds_query_and_retrieve_refuse_without_the_permission(engine: Engine, users_db: UsersDb) -> None:
    registry = f"http://127.0.0.1:{engine.http_port}/xds/registry"
    repository = f"http://127.0.0.1:{engine.http_port}/xds/repository"
    credentials = base64.b64encode(f"xds-consumer:{PASSWORD}".encode()).decode()
    _, token = tokens.create_token(users_db.engine, "xds-consumer")

    def errors(reply: Reply) -> list[tuple[str, str]]:
        found = reply.root.iter("{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryError")
        return [(e.get("errorCode"), e.get("codeContext")) for e in found]

    async with aiohttp.ClientSession() as client:
        refused = await soap(client, registry, QUERY, ITI18)
        assert refused.status == 200 and refused.payload.get("status").endswith(":Failure")
        ((code, text),) = errors(refused)
        assert code == "XDSRegistryError" and text.startswith("access denied: 'anonymous' may not xds.query")
        assert refusals("anonymous", "xds.query")
        allowed = await soap(client, registry, QUERY, ITI18, Authorization=f"Basic {credentials}")
        assert allowed.payload.get("status").endswith(":Success"), allowed.body[:600]

        refused = await soap(client, repository, RETRIEVE, ITI43, packaged=True)
        assert [c for c, t in errors(refused) if "access denied" in t] == ["XDSRegistryError"]
        assert refusals("anonymous", "xds.retrieve")
        allowed = await soap(client, repository, RETRIEVE, ITI43, packaged=True, Authorization=f"Bearer {token}")
        assert errors(allowed) and not any("access denied" in t for _, t in errors(allowed))
