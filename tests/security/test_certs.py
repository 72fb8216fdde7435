"""``esb certs``: a development CA, node certificates, and ``show``; the files work in a real TLS handshake."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import esb.cli.certs  # noqa: F401  (registers ``esb certs`` until esb/cli/__init__.py imports it)
from esb.cli.common import main_group
from esb.errors import CertificateError
from esb.security import certs


def run(*args: str) -> Result:
    return CliRunner().invoke(main_group, list(args), prog_name="esb", catch_exceptions=False)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_ca_makes_a_self_signed_ca_with_a_private_key(tmp_path: Path) -> None:
    result = run("certs", "init-ca", "--dir", str(tmp_path / "ca"), "--name", "Region CA")
    assert result.exit_code == 0, result.output
    ca = load(tmp_path / "ca" / "ca.pem")
    assert ca.subject.rfc4514_string() == "CN=Region CA" and ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert 3649 <= (ca.not_valid_after_utc - ca.not_valid_before_utc).days <= 3651
    key_file = tmp_path / "ca" / "ca.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert key.public_key().public_numbers() == ca.public_key().public_numbers()  # type: ignore[union-attr]
    fingerprint = hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert f"sha256: {fingerprint}" in result.output
    # An existing CA is never replaced by accident: its certificates would stop being trusted.
    again = run("certs", "init-ca", "--dir", str(tmp_path / "ca"))
    assert again.exit_code == 1 and "ca.pem exists; not overwritten (use --force" in again.output
    assert load(tmp_path / "ca" / "ca.pem") == ca
    forced = run("certs", "init-ca", "--dir", str(tmp_path / "ca"), "--force", "--key", "rsa")
    assert forced.exit_code == 0, forced.output
    replaced = load(tmp_path / "ca" / "ca.pem").public_key()
    assert isinstance(replaced, rsa.RSAPublicKey) and replaced.key_size == 3072


def test_issue_signs_node_certificates_for_each_use(tmp_path: Path) -> None:
    ca_dir, out = tmp_path / "ca", tmp_path / "out"
    certs.init_ca(ca_dir)
    ca = load(ca_dir / "ca.pem")
    args = ("certs", "issue", "--ca-dir", str(ca_dir), "--out", str(out))
    result = run(*args, "--name", "node1", "--san", "127.0.0.1,localhost", "--san", "::1")
    assert result.exit_code == 0, result.output
    node = load(out / "node1.pem")
    node.verify_directly_issued_by(ca)
    assert node.subject.rfc4514_string() == "CN=node1" and node.issuer == ca.subject
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    eku = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not node.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert 824 <= (node.not_valid_after_utc - node.not_valid_before_utc).days <= 826
    assert node.not_valid_before_utc < dt.datetime.now(dt.UTC)
    assert stat.S_IMODE((out / "node1.key").stat().st_mode) == 0o600

    client = run(*args, "--name", "CN=pacs1,O=Hospital A", "--client", "--key", "rsa", "--days", "30")
    assert client.exit_code == 0, client.output
    pacs = load(out / "pacs1.pem")
    assert pacs.subject.rfc4514_string() == "CN=pacs1,O=Hospital A"
    assert list(pacs.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    with pytest.raises(x509.ExtensionNotFound):  # a client certificate names no host
        pacs.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert isinstance(pacs.public_key(), rsa.RSAPublicKey)
    assert (pacs.not_valid_after_utc - pacs.not_valid_before_utc).days == 30

    # A server certificate without --san names its common name, which is a host name.
    assert run(*args, "--name", "pacs.hospital-a.example", "--server").exit_code == 0
    server = load(out / "pacs.hospital-a.example.pem")
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["pacs.hospital-a.example"]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]


def test_issued_files_complete_a_mutual_tls_handshake(tmp_path: Path) -> None:
    certs.init_ca(tmp_path / "ca")
    server = certs.issue(tmp_path / "ca", "server", tmp_path / "n", sans=["127.0.0.1"], usage="server")
    client = certs.issue(tmp_path / "ca", "CN=pacs1,O=Hospital A", tmp_path / "n", usage="client", key_type="rsa")
    ca = str(tmp_path / "ca" / "ca.pem")
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    server_side.load_cert_chain(server.cert, server.key)
    server_side.verify_mode = ssl.CERT_REQUIRED
    client_side = ssl.create_default_context(cafile=ca)
    client_side.load_cert_chain(client.cert, client.key)
    seen: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with server_side.wrap_socket(conn, server_side=True) as tls:
                seen.append(tls.getpeercert())
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(listener.getsockname()) as raw:
            with client_side.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.recv(2) == b"ok"
        thread.join()
    assert seen and dict(x[0] for x in seen[0]["subject"]) == {  # type: ignore[index]
        "organizationName": "Hospital A",
        "commonName": "pacs1",
    }
    assert client.subject == "CN=pacs1,O=Hospital A"


def test_show_prints_what_a_certificate_says(tmp_path: Path) -> None:
    certs.init_ca(tmp_path / "ca", "Region CA")
    issued = certs.issue(tmp_path / "ca", "node1", tmp_path / "out", sans=["127.0.0.1", "node1.example"])
    result = run("certs", "show", str(issued.cert))
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.strip().splitlines())
    cert = load(issued.cert)
    assert lines["subject"] == "CN=node1" and lines["issuer"] == "CN=Region CA"
    assert lines["sans"] == "DNS:node1.example, IP:127.0.0.1"
    assert lines["sha256"] == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert lines["sha256"] == issued.fingerprint
    assert lines["not_after"] == cert.not_valid_after_utc.isoformat(timespec="seconds")
    assert lines["ca"] == "False" and lines["key"] == "EC secp256r1" and lines["usage"] == "server, client"
    # A bundle shows every certificate; --json for scripts; DER files too.
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(issued.cert.read_bytes() + (tmp_path / "ca" / "ca.pem").read_bytes())
    rows = json.loads(run("--json", "certs", "show", str(bundle)).output)
    assert [r["subject"] for r in rows] == ["CN=node1", "CN=Region CA"] and rows[1]["ca"] is True
    der = tmp_path / "node1.der"
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    assert json.loads(run("--json", "certs", "show", str(der)).output)[0]["sha256"] == issued.fingerprint


def test_clear_errors(tmp_path: Path) -> None:
    missing = run("certs", "issue", "--ca-dir", str(tmp_path / "nowhere"), "--name", "n", "--out", str(tmp_path))
    assert missing.exit_code == 1
    assert f"no CA in {tmp_path / 'nowhere'} (needs ca.pem and ca.key; make one with 'esb certs init-ca" in (
        missing.output
    )
    certs.init_ca(tmp_path / "ca")
    base = ("certs", "issue", "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "out"))
    bad_san = run(*base, "--name", "n", "--san", "not a host")
    assert bad_san.exit_code == 1
    assert "subject alternative name 'not a host' is neither an IP address nor a host name" in bad_san.output
    bad_name = run(*base, "--name", "O=Hospital A")
    assert bad_name.exit_code == 1 and "name 'O=Hospital A' has no CN (common name)" in bad_name.output
    assert "is not an RFC 4514 name" in run(*base, "--name", "CN=x,=y").output
    assert run(*base, "--name", "n").exit_code == 0
    again = run(*base, "--name", "n")
    assert again.exit_code == 1 and "n.pem exists; not overwritten (use --force to replace it)" in again.output
    assert run(*base, "--name", "n", "--force").exit_code == 0
    assert run(*base, "--name", "n", "--days", "0").exit_code == 2  # click: out of range
    not_a_cert = tmp_path / "notes.txt"
    not_a_cert.write_text("hello")
    shown = run("certs", "show", str(not_a_cert))
    assert shown.exit_code == 1 and f"{not_a_cert} holds no certificate (PEM or DER)" in shown.output
    assert "cannot read" in run("certs", "show", str(tmp_path / "absent.pem")).output
    (tmp_path / "ca" / "ca.key").write_bytes(certs.new_key("ec").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))  # fmt: skip
    with pytest.raises(CertificateError, match=r"ca.key is not the key of .*ca.pem"):
        certs.load_ca(tmp_path / "ca")


def test_a_node_certificate_never_outlives_its_ca(tmp_path: Path) -> None:
    certs.init_ca(tmp_path / "ca", days=10)
    issued = certs.issue(tmp_path / "ca", "node1", tmp_path / "out")
    ca, node = load(tmp_path / "ca" / "ca.pem"), load(issued.cert)
    assert node.not_valid_after_utc == ca.not_valid_after_utc
    assert node.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node1"
