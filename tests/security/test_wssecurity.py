"""ACCEPTANCE (issue 7): a tampered signed SOAP message is rejected.

Real SOAP over HTTP to soap: routes of a started engine that require WS-Security:
a signed request is accepted; the same request with its Body changed after
signing, with an expired Timestamp, sent a second time, unsigned, or signed by
a certificate of another CA gets a SOAP Fault with the WSS 1.1 code, and each
refusal leaves a captured security_alert. The engine's own soap: producer signs
a request the consumer verifies (and adds a UsernameToken checked against the
users table); MTOM requests are signed over their Body with its xop:Include.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from adapters.soap.envelope import SOAP12, request
from adapters.soap.wssecurity import PASSWORD_DIGEST, PASSWORD_TEXT, WSSE, WsSigner
from esb.audit import clear_captured
from esb.journal import admin, utcnow
from esb.runtime.engine import Engine
from tests.adapters.soap import conftest as soap_fixtures
from tests.adapters.soap import steps
from tests.adapters.soap.conftest import SoapEngine
from tests.security import users_support
from tests.security.users_support import SigningCerts, UsersDb, alerts, logins
from tests.soap_client import Part, Reply, include, mtom, post
from tests.support import wait_for

#: shared fixtures (no conftest here: another helper's tests share this directory)
users_db = users_support.users_db
_upgraded_db = users_support._upgraded_db
signing_certs = users_support.signing_certs
client = soap_fixtures.client
soap_engine = soap_fixtures.soap_engine

ACTION = "urn:esb:test:signed"
PAYLOAD = b'<p:order xmlns:p="urn:esb:test"><p:patient>P-1</p:patient><p:amount>1</p:amount></p:order>'
RECORD = "transform: {python: tests.adapters.soap.steps:record}"
ECHO = "to: service:echo/echo"
PASSWORD = "correct horse battery"
SOAP_12 = "application/soap+xml; charset=utf-8"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    steps.RECEIVED.clear()
    clear_captured()
    yield
    steps.RECEIVED.clear()


@pytest.fixture
def certs(signing_certs: SigningCerts) -> SigningCerts:
    return signing_certs


@pytest.fixture
async def engine(
    soap_engine: SoapEngine, users_db: UsersDb, certs: SigningCerts, monkeypatch: pytest.MonkeyPatch
) -> Engine:
    monkeypatch.setenv("WSS_TEST_PASSWORD", PASSWORD)
    port = free_port()
    signed = f"soap://127.0.0.1:{port}/wss/signed?wss=require&wss_cafile={certs.ca}&wss_window=5m"
    sign = f"wss_sign=true&wss_certfile={certs.cert}&wss_keyfile={certs.key}"
    routes = {
        "signed": (signed, RECORD, ECHO),
        "user": (
            f"soap://127.0.0.1:{port}/wss/user?wss=verify&wss_cafile={certs.ca}&wss_username=required",
            RECORD,
            ECHO,
        ),  # fmt: skip
        "front": (
            f"soap://127.0.0.1:{port}/front",
            f"to: soap://127.0.0.1:{port}/wss/signed?action={ACTION}&{sign}",
        ),  # fmt: skip
        "front-user": (
            f"soap://127.0.0.1:{port}/front-user",
            f"to: soap://127.0.0.1:{port}/wss/user?action={ACTION}&{sign}&wss_user=xds-source"
            "&wss_password_env=WSS_TEST_PASSWORD",
        ),  # fmt: skip
    }
    return await soap_engine(routes, http_port=port, db_url=users_db.url)


def signed(certs: SigningCerts, url: str, *, payload: bytes = PAYLOAD, clock_offset: float = 0, rogue: bool = False,
           user: str | None = None) -> bytes:  # fmt: skip
    """A request envelope for ``url``, signed (optionally by the rogue CA's signer, or in the past)."""
    cert, key = (certs.stranger_cert, certs.stranger_key) if rogue else (certs.cert, certs.key)
    then = utcnow() + dt.timedelta(seconds=clock_offset)
    signer = WsSigner(str(cert), str(key), user=user, password_env="WSS_TEST_PASSWORD" if user else None,
                      clock=lambda: then)  # fmt: skip
    return signer.sign(request(etree.fromstring(payload), action=ACTION, to=url))


async def send(client: aiohttp.ClientSession, url: str, data: bytes) -> Reply:
    return await post(client, url, data, SOAP_12)


def wss_fault(reply: Reply) -> str:
    fault = reply.fault
    assert fault is not None and reply.status == 400, reply.body[:500]
    assert fault.code == "Sender"
    return fault.subcode


async def test_signed_accepted_tampered_expired_replayed_unsigned_and_untrusted_refused(
    engine: Engine, client: aiohttp.ClientSession, certs: SigningCerts, users_db: UsersDb
) -> None:
    users_db.store.add_user("hosp-a-source", kind="system", cert_subject=certs.subject)
    url = f"http://127.0.0.1:{engine.http_port}/wss/signed"
    good = signed(certs, url)
    accepted = await send(client, url, good)
    assert accepted.status == 200 and accepted.fault is None
    (seen,) = steps.RECEIVED
    assert seen.headers["wss-signer-subject"] == certs.subject and b"P-1" in seen.body
    assert seen.headers["auth-user"] == "hosp-a-source"  # the signer's system user
    assert alerts() == []

    cases = {
        "tampered": (good.replace(b"<p:amount>1</p:amount>", b"<p:amount>9</p:amount>"), "wsse:FailedCheck"),
        "replayed": (good, "wsse:InvalidSecurity"),
        "expired": (signed(certs, url, clock_offset=-900), "wsse:MessageExpired"),
        "unsigned": (request(etree.fromstring(PAYLOAD), action=ACTION, to=url), "wsse:InvalidSecurity"),
        "untrusted": (signed(certs, url, rogue=True), "wsse:FailedAuthentication"),
    }
    for number, (name, (data, code)) in enumerate(cases.items(), start=1):
        reply = await send(client, url, data)
        assert wss_fault(reply) == code, name
        assert len(alerts()) == number, f"{name}: no security_alert audited"
    assert len(steps.RECEIVED) == 1  # none of them reached the route
    assert len(admin.list_messages(engine.journal.engine, route="signed")) == 1
    details = [e.outcome_description or "" for e in alerts()]
    assert "does not match" in details[0] and "seen before" in details[1] and "older than" in details[2]


async def test_signature_covers_body_and_timestamp_by_their_own_ids(
    engine: Engine, client: aiohttp.ClientSession, certs: SigningCerts
) -> None:
    """Signature wrapping: a signed Body moved aside, a new Body put in its place, is not what was verified."""
    url = f"http://127.0.0.1:{engine.http_port}/wss/signed"
    root = etree.fromstring(signed(certs, url))
    body = root.find(f"{{{SOAP12}}}Body")
    wrapper = etree.SubElement(root.find(f"{{{SOAP12}}}Header"), "{urn:evil}Wrapper")
    wrapper.append(body)
    forged = etree.SubElement(root, f"{{{SOAP12}}}Body")
    forged.append(etree.fromstring(PAYLOAD.replace(b"P-1", b"P-666")))
    reply = await send(client, url, etree.tostring(root))
    assert wss_fault(reply) in ("wsse:InvalidSecurity", "wsse:FailedCheck")
    assert steps.RECEIVED == [] and len(alerts()) == 1


async def test_signed_mtom_request_keeps_its_parts(
    engine: Engine, client: aiohttp.ClientSession, certs: SigningCerts
) -> None:
    url = f"http://127.0.0.1:{engine.http_port}/wss/signed"
    payload = f'<p:doc xmlns:p="urn:esb:test"><p:content>{include("doc1@src")}</p:content></p:doc>'.encode()
    content_type, data = mtom(signed(certs, url, payload=payload), [Part("doc1@src", "text/xml", b"<CDA/>")],
                              action=ACTION)  # fmt: skip
    reply = await post(client, url, data, content_type)
    assert reply.status == 200 and reply.fault is None
    (seen,) = steps.RECEIVED
    assert [a.read() for a in seen.attachments] == [b"<CDA/>"]


async def test_username_token_text_checked_against_users_digest_refused(
    engine: Engine, client: aiohttp.ClientSession, certs: SigningCerts, users_db: UsersDb
) -> None:
    users_db.store.add_user("xds-source", password=PASSWORD)
    url = f"http://127.0.0.1:{engine.http_port}/wss/user"
    reply = await send(client, url, signed(certs, url, user="xds-source"))
    assert reply.status == 200, reply.body[:500]
    assert steps.RECEIVED[0].headers["auth-user"] == "xds-source"
    assert logins("xds-source", success=True)

    def with_password(value: str, kind: str = PASSWORD_TEXT) -> bytes:
        root = etree.fromstring(signed(certs, url, user="xds-source"))
        password = root.find(f".//{{{WSSE}}}Password")
        password.text, password.attrib["Type"] = value, kind
        return etree.tostring(root)

    root = etree.fromstring(signed(certs, url))  # signed, but no UsernameToken where one is required
    assert wss_fault(await send(client, url, etree.tostring(root))) == "wsse:FailedAuthentication"
    unsigned = etree.fromstring(with_password("wrong password!"))
    security = unsigned.find(f".//{{{WSSE}}}Security")
    for node in list(security):
        if etree.QName(node).localname != "UsernameToken":
            security.remove(node)
    assert wss_fault(await send(client, url, etree.tostring(unsigned))) == "wsse:FailedAuthentication"
    assert logins("xds-source", success=False)
    digest = etree.fromstring(with_password("c2VjcmV0", PASSWORD_DIGEST))
    for node in list(digest.find(f".//{{{WSSE}}}Security")):
        if etree.QName(node).localname != "UsernameToken":
            node.getparent().remove(node)
    reply = await send(client, url, etree.tostring(digest))
    assert wss_fault(reply) == "wsse:FailedAuthentication"
    assert reply.fault is not None and "PasswordDigest" in reply.fault.reason
    assert len(alerts()) == 3 and len(steps.RECEIVED) == 1


async def test_the_engine_signs_what_it_sends_and_its_consumer_verifies_it(
    engine: Engine, client: aiohttp.ClientSession, certs: SigningCerts, users_db: UsersDb
) -> None:
    users_db.store.add_user("xds-source", password=PASSWORD)
    base = f"http://127.0.0.1:{engine.http_port}"
    for path in ("/front", "/front-user"):
        reply = await send(client, base + path, request(etree.fromstring(PAYLOAD), action=ACTION, to=base + path))
        assert reply.status == 200 and reply.fault is None, reply.body[:500]
    await wait_for(lambda: len(steps.RECEIVED) == 2, what="both signed deliveries")
    by_path = {e.headers["http-path"]: e for e in steps.RECEIVED}
    assert by_path["/wss/signed"].headers["wss-signer-subject"] == certs.subject
    assert by_path["/wss/user"].headers["auth-user"] == "xds-source"
    assert alerts() == []


def test_lint_names_what_each_side_of_wss_needs(tmp_path: Path) -> None:
    from adapters.soap.options import SoapOptions, problems

    served = problems(SoapOptions(host="0.0.0.0", port=8080, wss="require", wss_peers=("cn:x", "bogus")), consumer=True)
    assert any("wss=require needs wss_cafile" in p for p in served)
    assert any("wss_peers" in p and "'bogus'" in p for p in served)
    missing = str(tmp_path / "nope.pem")
    sending = problems(
        SoapOptions(host="peer", wss_sign=True, wss_keyfile=missing, wss_user="xds-source"), consumer=False
    )
    assert any("wss_sign=true needs wss_certfile" in p for p in sending)
    assert any("wss_user and wss_password_env go together" in p for p in sending)
    assert any(f"no file '{missing}'" in p for p in sending)
    assert problems(SoapOptions(host="peer", wss_certfile=missing), consumer=False)[0].startswith("soap: option")
