"""Image access per role (A2.6) on a started engine with the real archive: QIDO-RS and WADO over HTTP with
Bearer and Basic credentials, C-FIND over DICOM; a scoped role sees only its modalities or departments."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom.presentation import build_context

from esb.audit import clear_captured
from esb.http import auth
from esb.runtime.engine import Engine
from esb.security import tokens
from esb.security.users import Scope, directory
from esb.settings import PACKAGE_ROOT
from tests.adapters.dicom.support import association
from tests.dicom_support import SMALL_CT, identifier, series
from tests.security import users_support
from tests.security.users_support import UsersDb, logins, refusals
from tests.support import StartEngine

#: shared fixtures (no conftest here: another helper's tests share this directory)
users_db = users_support.users_db
_upgraded_db = users_support._upgraded_db

PASSWORD = "correct horse battery"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
#: (modality, department) of the three studies
STUDIES = {
    "ct-radiology": ("CT", "Radiology"),
    "mr-cardiology": ("MR", "Cardiology"),
    "ct-cardiology": ("CT", "Cardiology"),
}


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
    store = users_db.store
    store.add_user("dr-ct")  # uses an API token
    store.add_user("dr-cardio", password=PASSWORD)
    store.add_user("radiologist", password=PASSWORD)
    store.save_role("ct", ["dicom.query", "dicom.retrieve"], scope=Scope(frozenset({"CT"})))
    store.save_role("cardiology-query", ["dicom.query"], scope=Scope(departments=frozenset({"CARDIOLOGY"})))
    store.save_role("images", ["dicom.query", "dicom.retrieve"])
    for role, user in (("ct", "dr-ct"), ("cardiology-query", "dr-cardio"), ("images", "radiologist")):
        store.grant(role, user)
    monkeypatch.setenv("ESB_LISTEN_HOST", "127.0.0.1")
    monkeypatch.setenv("ESB_HTTP_PORT", "0")
    monkeypatch.setenv("ESB_DICOM_PORT", "0")
    (tmp_path / "routes").mkdir()
    for name in ("dicomweb.yaml", "dicom-in.yaml"):
        shutil.copy(PACKAGE_ROOT / "routes" / name, tmp_path / "routes" / name)
    started = await start_engine(db_url=users_db.url)
    archive = started.context.service("dicom-archive").archive  # type: ignore[attr-defined]
    for key, (modality, department) in STUDIES.items():
        source = SMALL_CT if modality == "CT" else "MR_small.dcm"
        (path,) = series(tmp_path / key, 1, patient_id=key, study_uid=generate_uid(), source=source)
        ds = dcmread(path)
        ds.InstitutionalDepartmentName = department
        ds.save_as(path)
        await asyncio.to_thread(archive.store, path)
    return started


def basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def patients(client: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> tuple[int, set[str]]:
    async with client.get(f"{base}/studies?PatientID=*", headers=headers) as got:
        found: list[Any] = await got.json(content_type=None) if got.status == 200 else []
        return got.status, {s["00100020"]["Value"][0] for s in found}


async def test_qido_and_wado_per_role_and_scope(engine: Engine, users_db: UsersDb) -> None:
    base = f"http://127.0.0.1:{engine.http_port}/dicomweb"
    _, token = tokens.create_token(users_db.engine, "dr-ct")
    bearer = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/studies") as got:  # anonymous: asked to authenticate
            assert got.status == 401 and "Bearer" in got.headers["WWW-Authenticate"]
        assert refusals("anonymous", "dicom.query")
        assert await patients(client, base, bearer) == (200, {"ct-radiology", "ct-cardiology"})
        assert await patients(client, base, basic("dr-cardio")) == (200, {"mr-cardiology", "ct-cardiology"})
        assert await patients(client, base, basic("radiologist")) == (200, set(STUDIES))
        assert logins("dr-ct", success=True) and logins("dr-cardio", success=True)

        async with client.get(f"{base}/studies?PatientID=mr-cardiology", headers=basic("radiologist")) as got:
            mr_study = (await got.json(content_type=None))[0]["0020000D"]["Value"][0]
        async with client.get(f"{base}/studies?PatientID=ct-radiology", headers=bearer) as got:
            ct_study = (await got.json(content_type=None))[0]["0020000D"]["Value"][0]
        async with client.get(f"{base}/studies/{ct_study}/metadata", headers=bearer) as got:
            assert got.status == 200
        async with client.get(f"{base}/studies/{mr_study}/metadata", headers=bearer) as got:
            assert got.status == 404  # out of scope: as if it were not there
        async with client.get(f"{base}/studies/{ct_study}/metadata", headers=basic("dr-cardio")) as got:
            assert got.status == 403  # may query, not retrieve
        assert refusals("dr-cardio", "dicom.retrieve")

        clear_captured()
        async with client.get(f"{base}/studies", headers=basic("dr-ct", "wrong password")) as got:
            assert got.status == 401
        async with client.get(f"{base}/studies", headers={"Authorization": "Bearer esb_" + "x" * 43}) as got:
            assert got.status == 401
        assert len(logins(success=False)) == 2


async def test_c_find_is_refused_then_scoped_for_the_anonymous_role(engine: Engine, users_db: UsersDb) -> None:
    port = int(engine.routes["dicom-in"].consumer.port)  # type: ignore[union-attr]

    def find() -> list[tuple[int, str]]:
        query = identifier("STUDY", PatientID="*", ModalitiesInStudy="")
        with association(port, [build_context(STUDY_ROOT_FIND)]) as assoc:
            return [(int(s.Status), str(i.PatientID) if i is not None else "")
                    for s, i in assoc.send_c_find(query, STUDY_ROOT_FIND)]  # fmt: skip

    answers = await asyncio.to_thread(find)
    assert answers == [(0x0124, "")]  # Refused: Not Authorized
    assert refusals("anonymous", "dicom.query")
    users_db.store.save_role("anonymous", ["dicom.query"], scope=Scope(departments=frozenset({"RADIOLOGY"})))
    directory(engine.journal.engine).invalidate()
    answers = await asyncio.to_thread(find)
    assert answers == [(0xFF00, "ct-radiology"), (0x0000, "")]
