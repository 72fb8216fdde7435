"""A development certificate authority: the CA, node certificates signed by it, and a reader for any PEM file.

Every listener of a Secure Node (IHE ATNA) authenticates its peers by
certificate, so a site needs a CA before its first TLS test. Production sites
use their own PKI; this one makes the same kinds of files, so configuration and
tests are the same: ``ca.pem`` (the trust anchor every node lists as
``cafile``), and per node ``NAME.pem`` + ``NAME.key`` (``certfile``/``keyfile``).

Choices, made for interoperability with dcmtk, Java and .NET peers: ECDSA
P-256 by default (RSA 3072 on request, for peers without ECDSA), SHA-256
signatures, key files in unencrypted PKCS#8 with mode 0600 (the engine reads
them unattended; the file mode is their protection), a CA valid 10 years,
node certificates 825 days (the longest lifetime current TLS clients accept),
a subject alternative name on every server certificate (clients ignore the CN
for host names), and a start five minutes in the past to absorb clock skew.
Existing files are never overwritten unless asked to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from esb.errors import CertificateError

KeyType = Literal["ec", "rsa"]
Usage = Literal["client", "server", "both"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CA_DAYS = 3650
NODE_DAYS = 825
RSA_BITS = 3072
#: certificates start this far in the past, so a peer whose clock is slightly behind accepts them
BACKDATE = dt.timedelta(minutes=5)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_-]{1,63})*$")
_FILE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Issued:
    """Where a certificate and its key were written, and its fingerprint (for ``peers=sha256:...``)."""

    cert: Path
    key: Path
    subject: str
    fingerprint: str


@dataclass(frozen=True)
class CertificateInfo:
    """What ``esb certs show`` prints for one certificate."""

    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sans: tuple[str, ...]
    fingerprint: str
    is_ca: bool
    key: str
    usages: tuple[str, ...]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex without colons (the ``tls-peer-fingerprint`` form)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def subject_name(name: str) -> x509.Name:
    """``node1`` becomes ``CN=node1``; a name with ``=`` is read as RFC 4514 (``CN=pacs1,O=Hospital``)."""
    text = name.strip()
    if not text:
        raise CertificateError("a certificate name must not be empty")
    if "=" not in text:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    try:
        parsed = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise CertificateError(f"name '{name}' is not an RFC 4514 name like CN=pacs1,O=Hospital: {exc}") from None
    if not parsed.get_attributes_for_oid(NameOID.COMMON_NAME):
        raise CertificateError(f"name '{name}' has no CN (common name)")
    return parsed


def _common_name(name: x509.Name) -> str:
    value = name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def san_entries(values: Sequence[str]) -> list[x509.GeneralName]:
    """IP addresses and DNS names from ``127.0.0.1,localhost`` (comma lists, several options allowed)."""
    names: list[x509.GeneralName] = []
    for value in (v.strip() for item in values for v in item.split(",")):
        if not value:
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
            continue
        except ValueError:
            pass
        if not _HOSTNAME.match(value.removeprefix("*.")):
            raise CertificateError(f"subject alternative name '{value}' is neither an IP address nor a host name")
        names.append(x509.DNSName(value))
    return names


def new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise CertificateError(f"key type must be ec or rsa (got '{key_type}')")


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key and not ca,  # RSA key exchange, for old TLS 1.2 peers
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write_new(path: Path, data: bytes, *, mode: int, force: bool) -> None:
    """Write a file with ``mode`` from the start (a key is never readable by others, not even briefly)."""
    if path.exists() and not force:
        raise CertificateError(f"{path} exists; not overwritten (use --force to replace it)")
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _directory(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    return path


def init_ca(
    directory: Path, name: str = "ESB Development CA", *, key_type: KeyType = "ec", days: int = CA_DAYS,
    force: bool = False,
) -> Issued:  # fmt: skip
    """A self-signed CA in ``directory`` (``ca.pem``, ``ca.key`` mode 0600) that signs node certificates only."""
    if days <= 0:
        raise CertificateError(f"validity must be at least one day (got {days})")
    directory = _directory(directory)
    for file in (CA_CERT, CA_KEY):
        if (directory / file).exists() and not force:
            raise CertificateError(f"{directory / file} exists; not overwritten (use --force to replace the CA)")
    key = new_key(key_type)
    subject = subject_name(name)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True, rsa_key=key_type == "rsa"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_new(directory / CA_KEY, _key_pem(key), mode=0o600, force=force)
    _write_new(directory / CA_CERT, _cert_pem(cert), mode=0o644, force=force)
    return Issued(directory / CA_CERT, directory / CA_KEY, cert.subject.rfc4514_string(), fingerprint(cert))


def _spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    data = public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bytes(data)


def load_ca(directory: Path) -> tuple[x509.Certificate, PrivateKey]:
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not cert_path.is_file() or not key_path.is_file():
        raise CertificateError(
            f"no CA in {directory} (needs {CA_CERT} and {CA_KEY}; make one with 'esb certs init-ca --dir {directory}')"
        )
    cert = read_certificates(cert_path)[0]
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{key_path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, PrivateKey):
        raise CertificateError(f"{key_path} holds a {type(key).__name__}; the CA key must be EC or RSA")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise CertificateError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def issue(
    ca_dir: Path,
    name: str,
    out_dir: Path,
    *,
    sans: Sequence[str] = (),
    usage: Usage = "both",
    key_type: KeyType = "ec",
    days: int = NODE_DAYS,
    force: bool = False,
) -> Issued:
    """A node certificate signed by the CA in ``ca_dir``, written as ``out_dir/STEM.pem`` and ``STEM.key``.

    STEM is the common name made safe for a file name. A server certificate
    without ``sans`` gets its common name as DNS name when it is a host name.
    """
    if days <= 0:
        raise CertificateError(f"validity must be at least one day (got {days})")
    subject = subject_name(name)
    names = san_entries(sans)
    common = _common_name(subject)
    if not names and usage != "client" and _HOSTNAME.match(common):
        names = [x509.DNSName(common)]
    ca_cert, ca_key = load_ca(ca_dir)
    stem = _FILE_STEM.sub("_", common).strip("._") or "node"
    out_dir = _directory(out_dir)
    cert_path, key_path = out_dir / f"{stem}.pem", out_dir / f"{stem}.key"
    for path in (cert_path, key_path):
        if path.exists() and not force:
            raise CertificateError(f"{path} exists; not overwritten (use --force to replace it)")
    key = new_key(key_type)
    now = dt.datetime.now(dt.UTC)
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    usages = {
        "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
        "server": [ExtendedKeyUsageOID.SERVER_AUTH],
        "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    }[usage]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, rsa_key=key_type == "rsa"), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_new(key_path, _key_pem(key), mode=0o600, force=force)
    _write_new(cert_path, _cert_pem(cert), mode=0o644, force=force)
    return Issued(cert_path, key_path, cert.subject.rfc4514_string(), fingerprint(cert))


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM file (a chain or a bundle) or the one of a DER file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertificateError(f"{path} holds no certificate (PEM or DER)") from None
    return certs


def _key_text(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def describe(cert: x509.Certificate) -> CertificateInfo:
    sans: list[str] = []
    alt = _extension(cert, x509.SubjectAlternativeName)
    if alt is not None:
        sans = [f"DNS:{n}" for n in alt.get_values_for_type(x509.DNSName)]
        sans += [f"IP:{n}" for n in alt.get_values_for_type(x509.IPAddress)]
        sans += [f"URI:{n}" for n in alt.get_values_for_type(x509.UniformResourceIdentifier)]
        sans += [f"email:{n}" for n in alt.get_values_for_type(x509.RFC822Name)]
    constraints = _extension(cert, x509.BasicConstraints)
    eku = _extension(cert, x509.ExtendedKeyUsage)
    known = {ExtendedKeyUsageOID.SERVER_AUTH: "server", ExtendedKeyUsageOID.CLIENT_AUTH: "client"}
    usages = tuple(known.get(oid, oid.dotted_string) for oid in eku) if eku is not None else ()
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=tuple(sans),
        fingerprint=fingerprint(cert),
        is_ca=bool(constraints is not None and constraints.ca),
        key=_key_text(cert),
        usages=usages,
    )
