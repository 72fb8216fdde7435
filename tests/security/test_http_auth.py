"""Credentials on plain ``http:`` routes: a proved user becomes the exchange's ``auth-user``; wrong ones get 401."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp

from esb.http import auth
from esb.security import tokens
from tests.conftest import write_routes
from tests.security import users_support
from tests.security.users_support import UsersDb
from tests.support import StartEngine

_upgraded_db, users_db = users_support._upgraded_db, users_support.users_db

ROUTE = """
route:
  id: whoami
  from: http://127.0.0.1:0/whoami?methods=POST
  steps:
    - set-header: {name: content-type, value: text/plain}
    - transform: {python: "tests.security.test_http_auth:who"}
"""


def who(exchange: object) -> bytes:
    """The body the route answers: who the request proved to be ('-' for nobody)."""
    headers = exchange.headers  # type: ignore[attr-defined]
    return (headers.get("auth-user") or "-").encode()


async def test_a_proved_user_is_on_the_exchange_and_a_wrong_credential_is_refused(
    start_engine: StartEngine, users_db: UsersDb, tmp_path: Path
) -> None:
    users_db.store.add_user("integrator", password="correct horse battery")
    _, token = tokens.create_token(users_db.engine, "integrator")
    auth.forget()
    write_routes(tmp_path / "routes", {"whoami": ROUTE})
    engine = await start_engine(db_url=users_db.url)
    url = f"http://127.0.0.1:{engine.http_port}/whoami"
    basic = base64.b64encode(b"integrator:correct horse battery").decode()
    async with aiohttp.ClientSession() as client:
        async with client.post(url, data=b"x", headers={"Authorization": f"Bearer {token}"}) as got:
            assert (got.status, await got.text()) == (200, "integrator")
        async with client.post(url, data=b"x", headers={"Authorization": f"Basic {basic}"}) as got:
            assert (got.status, await got.text()) == (200, "integrator")
        async with client.post(url, data=b"x", headers={"auth-user": "admin"}) as got:  # a header proves nothing
            assert (got.status, await got.text()) == (200, "-")
        async with client.post(url, data=b"x", headers={"Authorization": "Bearer esb_" + "x" * 43}) as got:
            assert got.status == 401 and "Bearer" in got.headers["WWW-Authenticate"]
