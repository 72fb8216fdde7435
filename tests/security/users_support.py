"""Shared by the users, authorization and WS-Security tests: a database with users, the captured
audit events of each kind, and RSA certificates for WS-Security signatures.

Fixtures are imported by the test modules that use them (no conftest here: another helper's
tests live in this directory too).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from esb.audit import AuditEvent, captured
from esb.audit import codes as c
from esb.journal import database
from esb.security.users import UserStore


@dataclass
class UsersDb:
    """An upgraded SQLite database (its URL for engines and CLIs) and a store on it."""

    url: str
    engine: sa.Engine
    store: UserStore


@pytest.fixture(scope="session")
def _upgraded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database brought to the head revision per session; each test gets a copy (migrations are slow)."""
    path = tmp_path_factory.mktemp("users-template") / "esb.db"
    engine = database.make_engine(f"sqlite:///{path}")
    try:
        database.upgrade(engine)
    finally:
        engine.dispose()  # the last connection closes: SQLite folds its WAL into the file
    return path


def open_users_db(template: Path, directory: Path) -> UsersDb:
    path = directory / "var" / "esb.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    engine = database.make_engine(url)
    return UsersDb(url, engine, UserStore(engine))


@pytest.fixture
def users_db(_upgraded_db: Path, tmp_path: Path) -> Iterator[UsersDb]:
    """An upgraded SQLite database at ``tmp_path/var/esb.db`` (where test engines keep theirs)."""
    found = open_users_db(_upgraded_db, tmp_path)
    try:
        yield found
    finally:
        found.engine.dispose()


@pytest.fixture
def any_users_db(db_url: str, _upgraded_db: Path, tmp_path: Path) -> Iterator[UsersDb]:
    """:func:`users_db` on SQLite, and on PostgreSQL when ESB_TEST_PG_URL is set (``db_url`` of tests/conftest.py)."""
    if db_url.startswith("sqlite"):
        found = open_users_db(_upgraded_db, tmp_path)
    else:
        engine = database.make_engine(db_url)
        database.upgrade(engine)
        found = UsersDb(db_url, engine, UserStore(engine))
    try:
        yield found
    finally:
        found.engine.dispose()


def _codes(event: AuditEvent) -> set[str]:
    return {t.code for t in event.type_codes}


def refusals(user: str | None = None, permission: str | None = None) -> list[AuditEvent]:
    """Captured ``admin_operation`` refusals (Security Alert, Use of Restricted Function, failed)."""
    return [
        e for e in captured()
        if e.event_id == c.SECURITY_ALERT and c.USE_OF_RESTRICTED_FUNCTION.code in _codes(e) and e.outcome != 0
        and (user is None or e.user == user) and (permission is None or permission in _codes(e))
    ]  # fmt: skip


def grants(user: str, permission: str) -> list[AuditEvent]:
    """Captured ``admin_operation`` decisions that granted ``permission`` to ``user``."""
    return [e for e in captured() if e.outcome == 0 and e.user == user and permission in _codes(e)]


def alerts(kind: str = "ws-security") -> list[AuditEvent]:
    """Captured ``security_alert`` events of a kind."""
    return [e for e in captured() if e.event_id == c.SECURITY_ALERT and kind in _codes(e)]


def logins(user: str | None = None, *, success: bool | None = None) -> list[AuditEvent]:
    """Captured ``user_authentication`` events."""
    return [
        e for e in captured()
        if e.event_id == c.USER_AUTHENTICATION and (user is None or e.user == user)
        and (success is None or (e.outcome == 0) == success)
    ]  # fmt: skip


@dataclass(frozen=True)
class SigningCerts:
    """A CA, a signer it issued (RSA 2048, as PEM files), and a stranger's self-made CA and signer."""

    ca: Path
    cert: Path
    key: Path
    stranger_cert: Path
    stranger_key: Path
    subject: str


def _name(cn: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Region"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    return x509.Name(attributes)


def _issue(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
           *, ca: bool) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )  # fmt: skip
        )


@pytest.fixture(scope="session")
def signing_certs(tmp_path_factory: pytest.TempPathFactory) -> SigningCerts:
    """One set per session: RSA key generation is slow."""
    return make_signing_certs(tmp_path_factory.mktemp("wss-certs"))


def make_signing_certs(directory: Path) -> SigningCerts:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, signer_key, rogue_ca_key, rogue_key = _key(), _key(), _key(), _key()
    ca = _issue(_name("Region test CA"), ca_key, _name("Region test CA"), ca_key, ca=True)
    signer = _issue(_name("xds-source.hosp-a"), signer_key, ca.subject, ca_key, ca=False)
    rogue_ca = _issue(_name("Rogue CA"), rogue_ca_key, _name("Rogue CA"), rogue_ca_key, ca=True)
    rogue = _issue(_name("xds-source.hosp-a"), rogue_key, rogue_ca.subject, rogue_ca_key, ca=False)
    _write(directory / "ca.pem", ca)
    _write(directory / "signer.pem", signer, signer_key)
    _write(directory / "rogue.pem", rogue, rogue_key)
    return SigningCerts(directory / "ca.pem", directory / "signer.pem", directory / "signer.key",
                        directory / "rogue.pem", directory / "rogue.key", signer.subject.rfc4514_string())  # fmt: skip
