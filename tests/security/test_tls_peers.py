"""Allowed peers: the option's syntax, matching by subject, name and fingerprint, lint, and the TLS floor."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adapters.http import tls
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.security.peers import AllowedPeers, PeerIdentity, identity_from_der, with_identity
from esb.security.tls import client_context, server_context
from esb.settings import Settings
from tests.conftest import write_routes
from tests.security.tls_support import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def identity(path: Path) -> PeerIdentity:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return identity_from_der(cert.public_bytes(serialization.Encoding.DER))


def test_identity_is_the_rfc4514_subject_and_the_sha256_of_the_certificate(pki: Pki) -> None:
    pacs = identity(pki.allowed.cert)
    assert pacs.subject == "CN=pacs1,O=Hospital A" and pacs.common_names == ("pacs1",)
    assert pacs.fingerprint == pki.allowed.fingerprint and len(pacs.fingerprint) == 64
    headers = {"tls-peer-subject": "CN=forged", "tls-peer-fingerprint": "ab", "other": "kept"}
    assert with_identity(headers, None) == {"other": "kept"}  # a peer's own claim is dropped, even with no cert
    assert with_identity(headers, pacs) == {"other": "kept", **pacs.headers()}


def test_entries_match_by_whole_subject_common_name_or_fingerprint(pki: Pki) -> None:
    pacs, rogue, foreign = identity(pki.allowed.cert), identity(pki.other.cert), identity(pki.foreign.cert)
    by_subject = AllowedPeers.parse(["subject:cn=PACS1", "o=hospital  a"])  # URI parts; case and spaces ignored
    assert by_subject.entries == ("subject:cn=PACS1,o=hospital  a",)
    assert by_subject.allows(pacs) and by_subject.allows(foreign) and not by_subject.allows(rogue)
    assert not AllowedPeers.parse(["subject:CN=pacs1"]).allows(pacs)  # the whole subject, not a part of it
    assert not AllowedPeers.parse(["subject:O=Hospital A,CN=pacs1"]).allows(pacs)  # RDN order counts
    by_name = AllowedPeers.parse(["cn:Rogue"])
    assert by_name.allows(rogue) and not by_name.allows(pacs)
    colons = ":".join(pki.allowed.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    by_print = AllowedPeers.parse([f"sha256:{colons}"])
    assert by_print.allows(pacs) and not by_print.allows(foreign)  # same name, another certificate
    mixed = AllowedPeers.parse(["subject:CN=rogue,O=Hospital B,cn:nobody", f"sha256:{pki.allowed.fingerprint}"])
    assert len(mixed.entries) == 3 and mixed.allows(rogue) and mixed.allows(pacs) and not mixed.allows(foreign)
    assert mixed.check(None) == "no client certificate" and mixed.check(foreign) == "certificate not allowed"
    assert AllowedPeers.parse([]).allows(None) and not AllowedPeers.parse([])  # empty: no restriction
    escaped = AllowedPeers.parse([r"subject:CN=a\,b", "O=x"])
    assert escaped.entries == (r"subject:CN=a\,b,O=x",) and len(escaped.subjects[0]) == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("pacs1", "'pacs1' must start with subject:, cn: or sha256: (e.g. cn:pacs1)"),
        ("sha256:abc", "'sha256:abc' is not a SHA-256 fingerprint (64 hex digits, colons allowed)"),
        ("subject:pacs1", "'subject:pacs1' is not an RFC 4514 subject (e.g. subject:CN=pacs1,O=Hospital)"),
        ("cn:", "'cn:' names no common name (e.g. cn:pacs1)"),
    ],
)
def test_bad_entries_are_named(entry: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        AllowedPeers.parse([entry])
    assert message in str(caught.value)


def lint_problems(tmp_path: Path, settings: Settings, sources: dict[str, str]) -> str:
    routes = {k: f"route:\n  id: {k}\n  from: {v}\n  steps: []\n" for k, v in sources.items()}
    routes["to"] = "route:\n  id: to\n  from: direct:x\n  steps:\n    - to: mllp://peer:2575?tls=true&peers=cn:x\n"
    write_routes(tmp_path / "routes", routes)
    return "\n".join(str(e) for e in lint([tmp_path / "routes"], EngineContext(settings)).errors)


def test_lint_checks_peers(tmp_path: Path, make_settings: Callable[..., Settings], pki: Pki) -> None:
    files = f"certfile={pki.server.cert}&keyfile={pki.server.key}&cafile={pki.ca}"
    sources = {
        "a": f"mllp://127.0.0.1:0?tls=true&{files}&peers=cn:pacs1",
        "b": f"dicom://127.0.0.1:0?archive=&tls=true&{files}&client_auth=required&peers=md5:00",
        "c": f"https://127.0.0.1:9443/x?{files}&client_auth=optional&peers=cn:pacs1",
        "d": "mllp://127.0.0.1:0?peers=cn:pacs1",
        "e": f"mllp://127.0.0.1:0?tls=true&{files}&client_auth=required&peers=subject:CN=pacs1,O=Hospital%20A",
    }
    problems = lint_problems(tmp_path, make_settings(), sources)
    assert "a.yaml" in problems and "mllp: option 'peers' needs client_auth=required" in problems
    assert "dicom: option 'peers': 'md5:00' must start with subject:, cn: or sha256:" in problems
    assert "https: option 'peers' needs client_auth=required" in problems
    assert "mllp: option 'peers' needs tls=true" in problems
    assert "mllp: option 'peers' applies to 'from' endpoints only" in problems
    assert "e.yaml" not in problems
    assert len(problems.splitlines()) == 5, problems


def test_every_context_refuses_less_than_tls_1_2(pki: Pki) -> None:
    contexts = [
        server_context(str(pki.server.cert), str(pki.server.key), str(pki.ca), "required"),
        client_context(str(pki.ca), str(pki.allowed.cert), str(pki.allowed.key)),
        client_context(verify=False),
    ]
    for context in contexts:
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED
    assert contexts[1].verify_mode == ssl.CERT_REQUIRED and contexts[1].check_hostname
    with pytest.raises(ValueError, match="client_auth must be one of none|optional|required"):
        server_context(str(pki.server.cert), client_auth="mutual")
    options = tls.HttpsOptions(host="peer", certfile=str(pki.allowed.cert), keyfile=str(pki.allowed.key))
    assert tls.client_context(options).minimum_version == ssl.TLSVersion.TLSv1_2
