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
    │   └── DeliveryError              a producer could not deliver
    │       └── PermanentDeliveryError retrying cannot help (4xx, bad destination)
    ├── JournalError                   the message store failed or is inconsistent
    │   └── NotFoundError              no such message or delivery
    └── AdapterError                   adapter-specific failures derive from here
        ├── MllpError > AckError > ApplicationRejectError   (issue 3)
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


class AdapterError(EsbError):
    """Base for adapter-specific failures (MLLP, SOAP, DICOM, ...)."""
