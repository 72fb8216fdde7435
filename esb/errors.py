"""One error hierarchy for the whole engine.

Every error the engine raises on purpose derives from :class:`EsbError`, so a
caller can catch "anything the engine meant" with one clause and a protocol
adapter can turn it into a protocol answer (HL7 ACK, SOAP Fault, DICOM status)::

    EsbError
    ├── ConfigError                    config or route file wrong; names file:line:col
    │   └── LintError                  a batch of ConfigErrors from `esb lint`
    ├── ComponentError                 registry lookups
    │   ├── UnknownSchemeError         no adapter for a URI scheme
    │   ├── UnknownServiceError        no service of that name
    │   └── UnknownTransformError      a python:/xslt: transform that cannot be loaded
    ├── ExchangeError                  a message failed inside a route
    │   ├── ValidationError            `validate` step refused the message
    │   ├── FilteredError              internal: a filter dropped the message
    │   ├── TransformError             a transform raised or returned garbage
    │   ├── DeliveryError              a producer could not deliver
    │   │   └── PermanentDeliveryError retrying cannot help (4xx, bad destination)
    │   ├── Hl7Error                   an HL7 v2 message the sender must fix; answered AE/AR with ERR
    │   ├── EmpiError                  the master patient index refused an operation
    │   │   ├── UnknownDomainError     an assigning authority it does not know (strict mode)
    │   │   ├── UnknownPatientError    no patient with that identifier
    │   │   └── StaleUpdateError       an update older than what it has
    │   ├── XdsError                   XDS registry/repository refusals with their XDS error codes
    │   └── DicomError                 the archive refuses a DICOM request; carries the DIMSE status
    ├── EngineStoppingError            the engine is shutting down and takes no new message
    ├── PermissionDeniedError          the actor lacks a permission (esb.authz); names both, never the data
    ├── AuthenticationError            a login (password, API token, UsernameToken) failed or is locked out
    ├── JournalError                   the message store failed or is inconsistent
    │   └── NotFoundError              no such message or delivery
    ├── StorageError                   a blob store (documents, images, spooled parts) failed
    │   └── BlobNotFoundError          no blob under that key (also a KeyError)
    └── AdapterError                   adapter-specific failures derive from here
        ├── MllpError                  MLLP connection, framing or ACK timeout (also a DeliveryError: retried)
        │   └── AckError               the peer answered AE/CE (retried; on_ae policy)
        │       └── ApplicationRejectError  AR/CR, or AE under on_ae=dead (also a PermanentDeliveryError)
        ├── DicomSendError             a C-STORE to a peer that may go through later (also a DeliveryError: retried)
        │   └── DicomRefusedError      the peer refused the instance for good (also a PermanentDeliveryError)
        ├── SoapFaultError             answered (or received) as a SOAP Fault: code, subcode, reason
        │   ├── MtomError              a malformed MIME package (adapters.soap.mtom)
        │   ├── TooLargeError          over max_xml / max_body: 413 with a Sender Fault (adapters.soap.mtom)
        │   └── WsSecurityError        WS-Security refused the message: a wsse: fault code (adapters.soap.wssecurity)
        └── ...

Errors carry what is needed for the answer: the object, the value and what is
allowed, never patient data.
"""

from __future__ import annotations

from dataclasses import dataclass


class EsbError(Exception):
    """Base of every error the engine raises on purpose."""


@dataclass(frozen=True)
class Position:
    """Where in which file a config problem is; 1-based like editors show it."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ConfigError(EsbError):
    """A configuration or route file is wrong; the message says how to fix it."""

    def __init__(self, message: str, position: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        return f"{self.position}: {self.message}"


class LintError(ConfigError):
    """Several config errors at once, so an admin sees them all in one run."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))

    def __str__(self) -> str:
        return self.message


class ComponentError(EsbError):
    """A component (adapter, service, transform) could not be found or loaded."""


class UnknownSchemeError(ComponentError):
    pass


class UnknownServiceError(ComponentError):
    pass


class UnknownTransformError(ComponentError):
    pass


class ExchangeError(EsbError):
    """A message failed while a route processed it."""


class ValidationError(ExchangeError):
    pass


class FilteredError(ExchangeError):
    """Raised inside the pipeline to stop a message that a filter dropped."""


class TransformError(ExchangeError):
    pass


class DeliveryError(ExchangeError):
    """A producer could not deliver; the delivery is retried per policy."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: the delivery goes straight to dead letter."""


class JournalError(EsbError):
    pass


class NotFoundError(JournalError):
    pass


class DuplicateMessageError(JournalError):
    """The route already holds a message with this inbound key: nothing was journaled."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"already taken as message {message_id}")
        self.message_id = message_id


class Hl7Error(ExchangeError):
    """An HL7 v2 message is wrong in a way its sender must hear about.

    The MLLP side answers it with ``ack_code`` (AE or AR) and an ERR segment:
    ERR-2 ``location`` (ERL, e.g. ``PID^1^3^1^4``), ERR-3 ``error_code`` from
    HL7 table 0357 (101 required field missing, 102 data type error, 103 table
    value not found, 200 unsupported message type, 204 unknown key identifier,
    207 application internal error), ERR-4 ``severity`` (E, W, I) and ``text``
    for ERR-8. The text names the field and the value's shape, never patient data.
    """

    def __init__(
        self,
        text: str,
        *,
        error_code: str = "207",
        location: str = "",
        ack_code: str = "AE",
        severity: str = "E",
    ) -> None:
        super().__init__(text)
        self.text = text
        self.error_code = error_code
        self.location = location
        self.ack_code = ack_code
        self.severity = severity

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"HL7 error {self.error_code}{where}: {self.text}"


class AdapterError(EsbError):
    """Base for adapter-specific failures (MLLP, SOAP, DICOM, ...)."""


class MllpError(AdapterError, DeliveryError):
    """An MLLP peer could not be reached, broke the framing or sent no ACK in time.

    Also a :class:`DeliveryError`, so the delivery is retried with backoff.
    """


class AckError(MllpError):
    """The peer answered with a negative ACK (AE/CE); ``ack_code`` and ``text`` say what it said."""

    def __init__(self, message: str, *, ack_code: str, text: str = "", error_code: str = "") -> None:
        super().__init__(message)
        self.ack_code = ack_code
        self.text = text
        self.error_code = error_code


class ApplicationRejectError(AckError, PermanentDeliveryError):
    """A negative ACK that resending cannot fix (AR/CR by default): the delivery goes to dead letter."""


class EmpiError(ExchangeError):
    """The master patient index refused an operation (mapped to ACK AE/AR by the HL7 face)."""


class UnknownDomainError(EmpiError):
    """An assigning authority the EMPI does not know (strict mode) -> HL7 error 204."""


class UnknownPatientError(EmpiError):
    """No patient with that identifier -> PIX/PDQ answer NF, feeds answer AE 204."""


class StaleUpdateError(EmpiError):
    """An update older than what the EMPI already has; it is refused, not applied."""


class XdsError(ExchangeError):
    """An XDS transaction the registry or repository refuses, answered as a RegistryError.

    ``code`` is the IHE error code (``XDSRegistryMetadataError``,
    ``XDSUnknownPatientId``, ...; ITI TF-3 4.2.4.1), ``location`` names the
    object (an id or uniqueId), never patient data. One error can carry others
    (``more``) so one response lists every problem of a submission.
    """

    def __init__(
        self,
        text: str,
        *,
        code: str = "XDSRegistryError",
        location: str = "",
        severity: str = "Error",
        more: tuple[XdsError, ...] = (),
    ) -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.location = location
        self.severity = severity
        self.more = more

    def all(self) -> list[XdsError]:
        """This error and the ones it carries, in order."""
        return [self, *self.more]

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.code}{where}: {self.text}"


class StorageError(EsbError):
    """A blob store failed (I/O error, bad key)."""


class BlobNotFoundError(StorageError, KeyError):
    """No blob under that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "blob not found"


class SoapFaultError(AdapterError):
    """A request the endpoint answers with a SOAP Fault (code, optional subcode, reason).

    ``code`` is the SOAP 1.2 name (Sender, Receiver, MustUnderstand, VersionMismatch,
    DataEncodingUnknown); SOAP 1.1 Faults map Sender/Receiver to Client/Server.
    ``not_understood`` lists the header blocks (Clark names) behind a MustUnderstand Fault.
    """

    def __init__(
        self, reason: str, *, code: str = "Sender", subcode: str = "", not_understood: tuple[str, ...] = ()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.subcode = subcode
        self.not_understood = not_understood


class DicomError(ExchangeError):
    """A DICOM request the archive refuses; ``status`` is the DIMSE status the SCP answers with.

    Common values: 0xA700 out of resources, 0xA900 data set does not match SOP class,
    0xC000 cannot understand (a corrupt file), 0xA801 move destination unknown,
    0xC310 unable to process (query).
    """

    def __init__(self, text: str, *, status: int = 0xC000) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


class DicomSendError(AdapterError, DeliveryError):
    """A C-STORE that may go through later (peer down, busy, out of resources): retried."""


class DicomRefusedError(DicomSendError, PermanentDeliveryError):
    """The peer refused the instance in a way resending cannot fix: dead letter."""


class EngineStoppingError(EsbError):
    """The engine is shutting down: a consumer's new message is refused (the peer resends it elsewhere)."""


class PermissionDeniedError(EsbError):
    """The actor lacks the permission; the message names both, never the data (raised by :mod:`esb.authz`)."""


class AuthenticationError(EsbError):
    """A login failed: unknown user, wrong password or token, disabled, locked out.

    The message is the same for every cause the caller could learn from (which
    user names exist, whether the password was close); the audit record and the
    log at DEBUG keep the cause.
    """


class WsSecurityError(SoapFaultError):
    """WS-Security refused a SOAP message; ``subcode`` is the WSS 1.1 fault (wsse:InvalidSecurity, ...).

    Answered as a Sender Fault; the reason names the check that failed, never the
    message content.
    """

    def __init__(self, reason: str, *, fault: str = "InvalidSecurity") -> None:
        super().__init__(reason, code="Sender", subcode=f"wsse:{fault}")
        self.fault = fault


class CertificateError(EsbError):
    """A certificate or key file cannot be made or read (``esb certs``); the message names the file."""
