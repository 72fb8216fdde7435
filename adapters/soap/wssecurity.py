"""WS-Security 1.1 for ``soap:``: signed Timestamp and Body, a replay window, UsernameToken.

Receiving (:class:`WsSecurityPolicy`, options ``wss``, ``wss_cafile``,
``wss_peers``, ``wss_username``, ``wss_window``): the ``wsse:Security`` header
must carry a ``ds:Signature`` (X.509 token profile: the key in a
``wsse:BinarySecurityToken`` named by a ``wsse:SecurityTokenReference``,
exclusive c14n, RSA or ECDSA with SHA-256 or better, never SHA-1) whose
references cover the ``soap:Body`` and the ``wsu:Timestamp`` by their
``wsu:Id``. The signer's certificate must chain to ``wss_cafile`` and, when
``wss_peers`` is set, match it (``subject:``, ``cn:``, ``sha256:`` entries, as
``peers`` on listeners). The Timestamp must be younger than ``wss_window``
(:data:`CLOCK_SKEW` allowed for clocks apart), and the SignatureValue (or a
UsernameToken's Nonce) must not have been seen in the window: the digests are
kept in the engine's database, so a message replayed to another node is caught.

Checked against the element tree the consumer goes on to use, so what was
verified is what the route gets (no signature wrapping): signxml resolves a
reference by Id and refuses an Id that names two elements, and the Body and
Timestamp ids must be the ones this envelope's Body and Timestamp carry. With
MTOM the signature covers the Body as sent, ``xop:Include`` elements and all;
the attachments are not covered (see docs/security.md: toolkits that sign the
XOP-decoded infoset will not verify here).

UsernameToken: ``PasswordText`` is checked against the users table (or an API
token given as the password), with the lockout and audit of any login.
``PasswordDigest`` needs the clear password on this side, which the engine
never keeps (argon2id hashes, SHA-256 token digests): it is refused with
FailedAuthentication.

Refusals are :class:`~esb.errors.WsSecurityError` with the WSS 1.1 fault code
(InvalidSecurity, InvalidSecurityToken, FailedAuthentication, FailedCheck,
MessageExpired, UnsupportedAlgorithm), answered as a Sender Fault, and each is
audited (``security_alert``, kind ``ws-security``).

Sending (:class:`WsSigner`, ``wss_sign=true`` with ``wss_certfile`` and
``wss_keyfile``, optional ``wss_user`` and ``wss_password_env``): the request
gets a Timestamp, the certificate as a BinarySecurityToken, an optional
UsernameToken with Nonce, and one signature over Timestamp, Body and token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import (  # type: ignore[attr-defined]
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
    methods,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature, SignXMLException
from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from adapters.soap.envelope import PARSER, SOAP11, SOAP12, Envelope
from esb.audit import emit, events
from esb.errors import AuthenticationError, SoapFaultError, WsSecurityError
from esb.journal.store import utcnow
from esb.security.peers import AllowedPeers, identity_from_der
from esb.security.users import UserDirectory, wss_seen

log = logging.getLogger("esb.adapters.soap.wss")

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SECURITY = f"{{{WSSE}}}Security"
WSU_ID = f"{{{WSU}}}Id"
#: how far apart two nodes' clocks may be (IHE CT keeps them much closer)
CLOCK_SKEW = 60.0
#: lifetime of the Timestamp this engine puts on its own requests
SIGNED_TTL = 300.0
#: how often (seconds) a node deletes expired replay digests
PRUNE_EVERY = 60.0
STRONG_SIGNATURES = frozenset(
    {SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
     SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512}
)  # fmt: skip
STRONG_DIGESTS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})


@dataclass(frozen=True)
class Verified:
    """What the Security header proved: the UsernameToken's user, the signer and its system user."""

    user: str | None = None
    signer_subject: str | None = None
    signer_fingerprint: str | None = None
    #: the system user whose certificate signed (:meth:`UserDirectory.user_by_certificate`)
    system: str | None = None

    def headers(self) -> dict[str, str]:
        """``auth-user`` (the UsernameToken's user, else the signer's system user) and the signer."""
        caller = self.user or self.system
        out = {"auth-user": caller} if caller else {}
        if self.signer_subject:
            out["wss-signer-subject"] = self.signer_subject
        if self.signer_fingerprint:
            out["wss-signer-fingerprint"] = self.signer_fingerprint
        return out


def _time(text: str | None, what: str) -> dt.datetime:
    """An xsd:dateTime as naive UTC; a missing or unreadable one is InvalidSecurity."""
    try:
        moment = dt.datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise WsSecurityError(f"{what} is not an xsd:dateTime") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds") + "Z"


class WsSecurityPolicy:
    """The receiving side's checks; :meth:`check` runs in a worker thread (crypto, database)."""

    def __init__(
        self,
        *,
        mode: str,
        username: str,
        window: float,
        cafile: str | None,
        peers: tuple[str, ...],
        users: UserDirectory | None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.mode, self.username, self.window = mode, username, window
        self.peers = AllowedPeers.parse(peers)
        self.users = users
        self.clock = clock
        self._anchors = x509.load_pem_x509_certificates(Path(cafile).read_bytes()) if cafile else []
        self._next_prune = 0.0

    @property
    def understood(self) -> bool:
        """Whether this endpoint processes ``wsse:Security`` (and so may accept it with mustUnderstand)."""
        return self.mode != "none" or self.username != "none"

    def check(self, envelope: Envelope, *, peer_host: str = "") -> Verified:
        attempted: list[str] = []
        try:
            return self._check(envelope, peer_host, attempted)
        except WsSecurityError as exc:
            user = attempted[0] if attempted else None
            log.warning("WS-Security refused a message from %s: %s", peer_host or "?", exc.subcode)
            log.debug("WS-Security refusal: %s", exc.reason)
            emit(events.security_alert(kind="ws-security", detail=exc.reason, peer_host=peer_host or None, user=user))
            raise
        except SQLAlchemyError as exc:  # the users or the replay window cannot be read: not the sender's fault
            log.error("WS-Security checks need the database: %s", type(exc).__name__)
            raise SoapFaultError("the message cannot be checked now; try again later", code="Receiver") from None

    # -- the checks ------------------------------------------------------------------

    def _check(self, envelope: Envelope, peer_host: str, attempted: list[str]) -> Verified:
        blocks = [b for b in envelope.header if b.tag == SECURITY]
        if len(blocks) > 1:
            raise WsSecurityError("the message has more than one wsse:Security header")
        security = blocks[0] if blocks else None
        if security is None:
            if self.mode == "require":
                raise WsSecurityError("the message has no wsse:Security header; this endpoint takes signed requests")
            if self.username == "required":
                raise WsSecurityError("this endpoint requires a wsse:UsernameToken", fault="FailedAuthentication")
            return Verified()
        now = self.clock()
        timestamp = security.find(f"{{{WSU}}}Timestamp")
        if timestamp is not None:
            self._fresh(timestamp, now)
        signer: tuple[str, str] | None = None
        signature = security.find(f"{{{DS}}}Signature")
        if self.mode != "none":
            if signature is None:
                if self.mode == "require":
                    raise WsSecurityError("the message is not signed; this endpoint takes signed requests")
            else:
                signer = self._verify(envelope, security, signature, timestamp)
                self._first_time("sig", signature.findtext(f"{{{DS}}}SignatureValue") or "", now)
        user = None
        token = security.find(f"{{{WSSE}}}UsernameToken")
        if token is not None and self.username != "none":
            user = self._username(token, now, peer_host, attempted)
        elif self.username == "required":
            raise WsSecurityError("this endpoint requires a wsse:UsernameToken", fault="FailedAuthentication")
        system = None
        if signer is not None and self.users is not None:
            found = self.users.user_by_certificate(*signer)
            system = found.name if found is not None and not found.disabled else None
        subject, fingerprint = signer or (None, None)
        return Verified(user, signer_subject=subject, signer_fingerprint=fingerprint, system=system)

    def _fresh(self, timestamp: Any, now: dt.datetime) -> None:
        created = _time(timestamp.findtext(f"{{{WSU}}}Created"), "wsu:Timestamp/wsu:Created")
        if (created - now).total_seconds() > CLOCK_SKEW:
            raise WsSecurityError("wsu:Created lies in the future (are the clocks in step?)")
        if (now - created).total_seconds() > self.window + CLOCK_SKEW:
            raise WsSecurityError(f"the message is older than {self.window:g}s", fault="MessageExpired")
        expires = timestamp.findtext(f"{{{WSU}}}Expires")
        if expires is not None and (now - _time(expires, "wsu:Expires")).total_seconds() > CLOCK_SKEW:
            raise WsSecurityError("the message has expired (wsu:Expires)", fault="MessageExpired")

    def _verify(self, envelope: Envelope, security: Any, signature: Any, timestamp: Any) -> tuple[str, str]:
        """Check the signature; the signer's (subject, fingerprint)."""
        der = self._token(security, signature)
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise WsSecurityError("the BinarySecurityToken is no certificate", fault="InvalidSecurityToken") from None
        identity = identity_from_der(der)
        self._trusted(cert)
        if not self.peers.allows(identity):
            raise WsSecurityError(f"signer {identity.subject} is not among wss_peers", fault="FailedAuthentication")
        root = envelope.body.getroottree().getroot()
        location = f"./{{{envelope.namespace}}}Header/{SECURITY}/"
        config = SignatureConfiguration(
            location=location, expect_references=True, signature_methods=STRONG_SIGNATURES,
            digest_algorithms=STRONG_DIGESTS,
        )  # fmt: skip
        try:
            results = XMLVerifier().verify(root, x509_cert=cert, id_attribute="Id", expect_config=config)
        except (InvalidDigest, InvalidSignature):
            raise WsSecurityError("the signature does not match the message", fault="FailedCheck") from None
        except InvalidCertificate as exc:
            raise WsSecurityError(
                f"the signing certificate is not valid: {exc}", fault="FailedAuthentication"
            ) from None
        except InvalidInput as exc:
            fault = "UnsupportedAlgorithm" if "forbidden" in str(exc) else "InvalidSecurity"
            raise WsSecurityError(f"the signature cannot be checked: {exc}", fault=fault) from None
        except (SignXMLException, ValueError) as exc:
            raise WsSecurityError(f"the signature cannot be checked: {type(exc).__name__}") from None
        first = results[0] if isinstance(results, list) else results
        uris = {r.get("URI", "") for r in first.signature_xml.iterfind(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")}
        for part, name in ((envelope.body, "soap:Body"), (timestamp, "wsu:Timestamp")):
            ident = part.get(WSU_ID) if part is not None else None
            if not ident or f"#{ident}" not in uris:
                raise WsSecurityError(f"the signature does not cover the {name}")
        return identity.subject, identity.fingerprint

    @staticmethod
    def _token(security: Any, signature: Any) -> bytes:
        """The DER certificate the signature's KeyInfo points at (a BinarySecurityToken in this header)."""
        reference = signature.find(f"{{{DS}}}KeyInfo/{{{WSSE}}}SecurityTokenReference/{{{WSSE}}}Reference")
        uri = reference.get("URI", "") if reference is not None else ""
        if not uri.startswith("#"):
            raise WsSecurityError("the signature's KeyInfo names no BinarySecurityToken", fault="InvalidSecurityToken")
        tokens = [t for t in security.iterfind(f"{{{WSSE}}}BinarySecurityToken") if t.get(WSU_ID) == uri[1:]]
        if len(tokens) != 1 or tokens[0].get("ValueType") != X509V3:
            raise WsSecurityError("no X.509v3 BinarySecurityToken with that wsu:Id", fault="InvalidSecurityToken")
        try:
            return base64.b64decode("".join((tokens[0].text or "").split()), validate=True)
        except ValueError:
            raise WsSecurityError("the BinarySecurityToken is not base64", fault="InvalidSecurityToken") from None

    def _trusted(self, cert: x509.Certificate) -> None:
        from cryptography.x509 import verification as v

        if not self._anchors:
            raise WsSecurityError("no wss_cafile to check signers against", fault="FailedAuthentication")
        ee = v.ExtensionPolicy.permit_all()
        builder = v.PolicyBuilder().store(v.Store(self._anchors)).time(dt.datetime.now(dt.UTC))
        builder = builder.extension_policies(ee_policy=ee, ca_policy=v.ExtensionPolicy.webpki_defaults_ca())
        try:
            builder.build_client_verifier().verify(cert, [])
        except v.VerificationError:
            raise WsSecurityError("the signing certificate is not trusted here", fault="FailedAuthentication") from None

    def _username(self, token: Any, now: dt.datetime, peer_host: str, attempted: list[str]) -> str:
        name = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
        attempted.append(name)
        password = token.find(f"{{{WSSE}}}Password")
        if not name or password is None:
            raise WsSecurityError("the UsernameToken needs Username and Password", fault="InvalidSecurityToken")
        if password.get("Type", PASSWORD_TEXT) != PASSWORD_TEXT:
            raise WsSecurityError(
                "UsernameToken PasswordDigest cannot be checked here (no clear passwords are kept); send "
                "PasswordText over TLS", fault="FailedAuthentication",
            )  # fmt: skip
        created = token.findtext(f"{{{WSU}}}Created")
        if created is not None and abs((now - _time(created, "UsernameToken wsu:Created")).total_seconds()) > (
            self.window + CLOCK_SKEW
        ):
            raise WsSecurityError("the UsernameToken is too old", fault="MessageExpired")
        nonce = token.findtext(f"{{{WSSE}}}Nonce")
        if nonce:
            self._first_time("nonce", f"{name}\n{nonce.strip()}\n{(created or '').strip()}", now)
        if self.users is None:
            raise WsSecurityError("no user directory to check the UsernameToken", fault="FailedAuthentication")
        secret = password.text or ""
        from esb.security.tokens import authenticate_token, looks_like_token

        try:
            if looks_like_token(secret.strip()):
                owner = authenticate_token(self.users.engine, secret, method="ws-security", peer_host=peer_host)
                if owner != name:
                    raise AuthenticationError("the API token belongs to another user")
            else:
                self.users.store.login(name, secret, method="ws-security", peer_host=peer_host)
        except AuthenticationError:
            raise WsSecurityError(f"UsernameToken of '{name}' not accepted", fault="FailedAuthentication") from None
        return name

    def _first_time(self, kind: str, value: str, now: dt.datetime) -> None:
        """Record a signature or nonce for the window; seen before (on any node) is a replay."""
        if self.users is None:
            raise WsSecurityError("no database for the replay window")
        engine: Engine = self.users.engine
        key = hashlib.sha256(f"{kind}\n{value}".encode()).hexdigest()
        expires = now + dt.timedelta(seconds=self.window + 2 * CLOCK_SKEW)
        try:
            with engine.begin() as conn:
                conn.execute(insert(wss_seen).values(digest=key, expires_at=expires))
        except IntegrityError:
            raise WsSecurityError("the message was seen before (replay)") from None
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            with engine.begin() as conn:
                conn.execute(delete(wss_seen).where(wss_seen.c.expires_at < now))


class WsSigner:
    """Signs the engine's own requests: Timestamp, BinarySecurityToken, optional UsernameToken, Signature."""

    def __init__(
        self,
        certfile: str,
        keyfile: str | None = None,
        *,
        user: str | None = None,
        password_env: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        pem = Path(certfile).read_bytes()
        self.cert = x509.load_pem_x509_certificate(pem)
        self.key = Path(keyfile).read_bytes() if keyfile else pem
        self.user, self.password_env, self.clock = user, password_env, clock

    def _password(self) -> str:
        value = os.environ.get(self.password_env or "")
        if value is None:
            raise WsSecurityError(f"environment variable {self.password_env} (wss_password_env) is not set")
        return value

    def sign(self, data: bytes) -> bytes:
        """The envelope ``data`` with a wsse:Security header and its signature."""
        root = etree.fromstring(data, PARSER)
        ns = etree.QName(root).namespace
        header, body = root.find(f"{{{ns}}}Header"), root.find(f"{{{ns}}}Body")
        if header is None:
            header = etree.Element(f"{{{ns}}}Header")
            root.insert(0, header)
        assert body is not None, "a request envelope has a Body"
        security = etree.SubElement(header, SECURITY, nsmap={"wsse": WSSE, "wsu": WSU})
        security.set(f"{{{ns}}}mustUnderstand", "true" if ns == SOAP12 else "1")
        ids = {name: f"{name}-{uuid.uuid4().hex}" for name in ("TS", "X509", "UT", "Body")}
        now = self.clock()
        stamp = etree.SubElement(security, f"{{{WSU}}}Timestamp", {WSU_ID: ids["TS"]})
        etree.SubElement(stamp, f"{{{WSU}}}Created").text = _stamp(now)
        etree.SubElement(stamp, f"{{{WSU}}}Expires").text = _stamp(now + dt.timedelta(seconds=SIGNED_TTL))
        token_attributes = {WSU_ID: ids["X509"], "ValueType": X509V3, "EncodingType": BASE64}
        bst = etree.SubElement(security, f"{{{WSSE}}}BinarySecurityToken", token_attributes)
        bst.text = base64.b64encode(self.cert.public_bytes(Encoding.DER)).decode("ascii")
        references = [f"#{ids['TS']}", f"#{ids['Body']}"]
        if self.user:
            token = etree.SubElement(security, f"{{{WSSE}}}UsernameToken", {WSU_ID: ids["UT"]})
            etree.SubElement(token, f"{{{WSSE}}}Username").text = self.user
            etree.SubElement(token, f"{{{WSSE}}}Password", {"Type": PASSWORD_TEXT}).text = self._password()
            nonce = etree.SubElement(token, f"{{{WSSE}}}Nonce", {"EncodingType": BASE64})
            nonce.text = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
            etree.SubElement(token, f"{{{WSU}}}Created").text = _stamp(now)
            references.append(f"#{ids['UT']}")
        body.set(WSU_ID, ids["Body"])
        key_info = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
        reference = etree.SubElement(
            etree.SubElement(key_info, f"{{{WSSE}}}SecurityTokenReference"), f"{{{WSSE}}}Reference"
        )
        reference.set("URI", f"#{ids['X509']}")
        reference.set("ValueType", X509V3)
        signer = XMLSigner(method=methods.detached, signature_algorithm=_algorithm(self.cert),
                           digest_algorithm="sha256", c14n_algorithm=EXC_C14N)  # fmt: skip
        signature = signer.sign(root, key=self.key, reference_uri=references, key_info=key_info, id_attribute="Id")
        security.append(signature)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _algorithm(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    return "ecdsa-sha256" if isinstance(cert.public_key(), ec.EllipticCurvePublicKey) else "rsa-sha256"


__all__ = ["SOAP11", "SOAP12", "Verified", "WsSecurityPolicy", "WsSigner"]
