"""Who is calling, by certificate: the peer's identity, the allowed-peers list of a route, and refusals.

TLS with ``client_auth=required`` proves a peer holds a certificate of a
trusted CA; a regional CA signs every hospital's nodes, so that alone would let
any of them talk to any route. ``peers`` narrows a route to named nodes (IHE
ATNA: a Secure Node accepts only the nodes it was configured for). Entries:

- ``subject:CN=pacs1,O=Hospital A``: the whole subject, RFC 4514, compared
  attribute by attribute (case and repeated spaces ignored, as X.520 matching does);
- ``cn:pacs1``: any subject whose common name is this (case ignored);
- ``sha256:HEX``: the certificate itself, by its SHA-256 fingerprint (colons allowed).

In a URI option the list is comma separated; a subject keeps its own commas
(``peers=subject:CN=pacs1,O=Hosp,cn:ris``: a part without a known prefix
continues the subject before it).

Every refusal, a failed handshake or a peer not on the list, goes through
:func:`refuse`: one WARNING line without patient data and one
node-authentication-failure audit event.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import ssl
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from esb.audit import emit, events

log = logging.getLogger("esb.security.peers")

SUBJECT_HEADER = "tls-peer-subject"
FINGERPRINT_HEADER = "tls-peer-fingerprint"
TLS_HEADERS = (SUBJECT_HEADER, FINGERPRINT_HEADER)
_PREFIXES = ("subject:", "cn:", "sha256:")
_HEX = re.compile(r"^[0-9a-f]{64}$")
#: an attribute type at the start of an RDN: RFC 4514 types are case-insensitive, cryptography wants capitals
_TYPE = re.compile(r"(^|(?<!\\)[,+])\s*([A-Za-z][A-Za-z0-9-]*)\s*=")
#: names OpenSSL tools print that cryptography's RFC 4514 parser does not know by default
_NAME_OVERRIDES = {"EMAILADDRESS": x509.NameOID.EMAIL_ADDRESS, "E": x509.NameOID.EMAIL_ADDRESS}


@dataclass(frozen=True)
class PeerIdentity:
    """A peer's certificate as the route sees it: subject (RFC 4514) and SHA-256 fingerprint."""

    subject: str
    fingerprint: str
    name: x509.Name

    @property
    def common_names(self) -> tuple[str, ...]:
        return tuple(str(a.value) for a in self.name.get_attributes_for_oid(NameOID.COMMON_NAME))

    def headers(self) -> dict[str, str]:
        return {SUBJECT_HEADER: self.subject, FINGERPRINT_HEADER: self.fingerprint}


@functools.lru_cache(maxsize=512)
def identity_from_der(der: bytes) -> PeerIdentity:
    """The identity of a DER certificate (cached: one peer sends the same certificate on every connection)."""
    cert = x509.load_der_x509_certificate(der)
    return PeerIdentity(cert.subject.rfc4514_string(), hashlib.sha256(der).hexdigest(), cert.subject)


def identity_of(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> PeerIdentity | None:
    """The verified peer certificate of a finished handshake, or None when the peer sent none."""
    if ssl_object is None:
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
        return identity_from_der(der) if der else None
    except (ValueError, OSError):  # not connected, the handshake did not finish, or DER cryptography cannot read
        return None


def with_identity(headers: MutableMapping[str, str], identity: PeerIdentity | None) -> MutableMapping[str, str]:
    """Drop any ``tls-peer-*`` header a peer sent, then set ours (when it presented a certificate)."""
    for name in TLS_HEADERS:
        headers.pop(name, None)
    if identity is not None:
        headers.update(identity.headers())
    return headers


def _normal(value: object) -> str:
    return " ".join(str(value).split()).casefold()


def _rdns(name: x509.Name) -> tuple[frozenset[tuple[str, str]], ...]:
    return tuple(frozenset((a.oid.dotted_string, _normal(a.value)) for a in rdn) for rdn in name.rdns)


def _upper(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2).upper() + "="


def _split(entries: Iterable[str]) -> list[str]:
    """Entries from option parts split at commas: a part without a known prefix continues the subject before."""
    parts = [p.strip() for e in entries for p in re.split(r"(?<!\\),", e)]
    joined: list[str] = []
    for part in parts:
        if not part:
            continue
        if part.lower().startswith(_PREFIXES) or not joined or not joined[-1].lower().startswith("subject:"):
            joined.append(part)
        else:
            joined[-1] += "," + part
    return joined


@dataclass(frozen=True)
class AllowedPeers:
    """The peers a route accepts; empty means any peer the TLS setup accepts."""

    subjects: tuple[tuple[frozenset[tuple[str, str]], ...], ...] = ()
    names: frozenset[str] = frozenset()
    fingerprints: frozenset[str] = frozenset()
    entries: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowedPeers:
        """Read option values; raises ValueError naming the bad entry and the accepted forms."""
        subjects, names, prints, kept = [], set(), set(), []
        for entry in _split(entries):
            kind, _, value = entry.partition(":")
            kind, value = kind.strip().lower(), value.strip()
            if kind == "subject":
                try:
                    name = x509.Name.from_rfc4514_string(_TYPE.sub(_upper, value), _NAME_OVERRIDES)
                except ValueError:
                    example = "subject:CN=pacs1,O=Hospital"
                    raise ValueError(f"'{entry}' is not an RFC 4514 subject (e.g. {example})") from None
                if not name.rdns:
                    raise ValueError(f"'{entry}' names an empty subject")
                subjects.append(_rdns(name))
            elif kind == "cn":
                if not value:
                    raise ValueError(f"'{entry}' names no common name (e.g. cn:pacs1)")
                names.add(_normal(value))
            elif kind == "sha256":
                digest = value.replace(":", "").lower()
                if not _HEX.match(digest):
                    raise ValueError(f"'{entry}' is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
                prints.add(digest)
            else:
                raise ValueError(f"'{entry}' must start with subject:, cn: or sha256: (e.g. cn:pacs1)")
            kept.append(entry)
        return cls(tuple(subjects), frozenset(names), frozenset(prints), tuple(kept))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def allows(self, identity: PeerIdentity | None) -> bool:
        """True for any peer when the list is empty; else the peer's certificate must match an entry."""
        if not self.entries:
            return True
        if identity is None:
            return False
        if identity.fingerprint in self.fingerprints:
            return True
        if self.names and any(_normal(cn) in self.names for cn in identity.common_names):
            return True
        return bool(self.subjects) and _rdns(identity.name) in self.subjects

    def check(self, identity: PeerIdentity | None) -> str | None:
        """The refusal reason, or None when the peer is allowed."""
        if self.allows(identity):
            return None
        return "no client certificate" if identity is None else "certificate not allowed"


def peers_problem(entries: Iterable[str]) -> str | None:
    """Lint: why ``entries`` cannot be read, or None."""
    try:
        AllowedPeers.parse(entries)
    except ValueError as exc:
        return str(exc)
    return None


def handshake_reason(error: BaseException) -> str:
    """A short reason for a failed TLS handshake, from OpenSSL's code (``CERTIFICATE_VERIFY_FAILED``)."""
    code = getattr(error, "reason", None)
    if isinstance(error, ssl.SSLError) and code:
        return f"TLS handshake failed: {str(code).lower().replace('_', ' ')}"
    return f"TLS handshake failed: {type(error).__name__}"


def counts_as_authentication(error: BaseException) -> bool:
    """Whether a failed handshake is a node authentication failure (audited) or a peer that went away.

    A TCP probe or a client that hangs up before saying anything is not
    an authentication attempt; a bad, missing or untrusted certificate and a
    protocol below TLS 1.2 are.
    """
    return isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError)


def _split_address(address: object) -> tuple[str, int]:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return str(address or "unknown"), 0


def refuse(local: str, peer: object, reason: str, identity: PeerIdentity | None = None) -> None:
    """Log and audit one refused node: ``local`` names the listener (``mllp:2575``), ``peer`` its address."""
    host, port = _split_address(peer)
    subject = identity.subject if identity is not None else None
    log.warning("%s: refused %s:%d: %s%s", local, host, port, reason, f" ({subject})" if subject else "")
    emit(events.node_authentication_failure(local=local, peer_host=host, peer_port=port, reason=reason,
                                            subject=subject))  # fmt: skip
