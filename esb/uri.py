"""Endpoint URIs: the scheme picks the adapter, path and query are typed options.

``mllp://0.0.0.0:2575?ack=application`` and ``direct:orders`` are both endpoint
URIs. Query values are coerced into the adapter's ``Options`` dataclass here, so
a wrong value is found by ``esb lint`` and never at three in the morning.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin
from urllib.parse import parse_qsl, unquote, urlsplit

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$", re.S)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class UriError(ValueError):
    """A URI or one of its options is wrong; the text says what is allowed."""


@dataclass(frozen=True)
class EndpointUri:
    """A parsed endpoint URI; ``raw`` is kept for messages and the journal."""

    raw: str
    scheme: str
    host: str | None
    port: int | None
    path: str
    query: tuple[tuple[str, str], ...]

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    @property
    def name(self) -> str:
        """The opaque part of ``direct:name`` or the path of ``file:///x``."""
        return self.path

    def without_query(self) -> str:
        return self.raw.split("?", 1)[0]


class Duration(float):
    """Seconds, written in route files as ``250ms``, ``5s``, ``2m``, ``1h``, ``1d``."""

    @classmethod
    def parse(cls, text: str | float | int) -> Duration:
        if isinstance(text, int | float):
            return cls(float(text))
        match = _DURATION.match(text)
        if not match:
            raise UriError(f"'{text}' is not a duration (use e.g. 250ms, 5s, 2m, 1h)")
        return cls(float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def parse_uri(raw: str) -> EndpointUri:
    match = _SCHEME.match(raw.strip())
    if not match:
        raise UriError(f"'{raw}' is not an endpoint URI (expected scheme:..., e.g. file:///in)")
    scheme, rest = match.group(1).lower(), match.group(2)
    if rest.startswith("//"):
        parts = urlsplit(raw.strip())
        try:
            port = parts.port
        except ValueError as exc:
            raise UriError(f"'{raw}': port must be a number from 0 to 65535") from exc
        return EndpointUri(
            raw=raw,
            scheme=scheme,
            host=parts.hostname,
            port=port,
            path=unquote(parts.path),
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
        )
    path, _, query = rest.partition("?")
    return EndpointUri(
        raw=raw,
        scheme=scheme,
        host=None,
        port=None,
        path=unquote(path),
        query=tuple(parse_qsl(query, keep_blank_values=True)),
    )


#: a password in ``scheme://user:password@host``, also inside an option's value (``url=postgresql://...``)
_USERINFO_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*(?::|%3A)//[^:/@?#&\s]*(?::|%3A))[^@/?#&\s]+(?=@|%40)"
)
#: options named like a password (``passcode=``, ``wss_password=``) and ODBC ``PWD=`` items
_NAMED_SECRET = re.compile(
    r"(?i)(?P<head>(?:^|[?&;]|%3B)[A-Za-z_]*(?:password|passcode|passwd|pwd|secret)(?:=|%3D))[^&;%]+"
)


def redact(uri: str) -> str:
    """``uri`` with its passwords replaced by ``***``: for the journal, logs and metric labels.

    A route file names credentials as ``${ENV}``, but the URI the engine holds
    is the substituted one; wherever it is shown or stored for people to read,
    this version goes instead.
    """
    return _NAMED_SECRET.sub(r"\g<head>***", _USERINFO_PASSWORD.sub(r"\g<head>***", uri))


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string, for error messages."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def option_doc(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata.get("doc", ""))


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if value in ("", None):
            return None
        return _coerce(name, value, args[0])
    if origin is Literal:
        allowed = [str(a) for a in get_args(annotation)]
        if str(value) not in allowed:
            raise UriError(
                f"option '{name}' must be one of {'|'.join(allowed)} (got '{value}')"
                + did_you_mean(str(value), allowed)
            )
        return str(value)
    if origin in (tuple, list):
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        (inner, *_) = get_args(annotation) or (str,)
        return tuple(_coerce(name, i.strip() if isinstance(i, str) else i, inner) for i in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise UriError(f"option '{name}' must be true or false (got '{value}')")
    if annotation is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise UriError(f"option '{name}' must be a whole number (got '{value}')") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UriError(f"option '{name}' must be a number (got '{value}')") from None
    if annotation is Duration:
        try:
            return Duration.parse(value)
        except UriError as exc:
            raise UriError(f"option '{name}': {exc}") from None
    return str(value)


def build_options(options_type: type[Any], values: Mapping[str, Any], *, where: str) -> Any:
    """Fill an adapter's frozen ``Options`` dataclass from URI values.

    Unknown names and badly typed values raise :class:`UriError` naming the
    option, the value and what is allowed.
    """
    fields = {f.name.replace("_", "-"): f for f in dataclasses.fields(options_type)}
    fields.update({f.name: f for f in dataclasses.fields(options_type)})
    hints = typing.get_type_hints(options_type)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        field = fields.get(key)
        if field is None or not field.init:
            public = sorted({f.name for f in dataclasses.fields(options_type) if f.init})
            raise UriError(
                f"{where}: unknown option '{key}'"
                + (did_you_mean(key, public) or f" (known: {', '.join(public) or 'none'})")
            )
        kwargs[field.name] = _coerce(key, value, hints[field.name])
    try:
        return options_type(**kwargs)
    except TypeError as exc:
        missing = re.findall(r"'(\w+)'", str(exc))
        raise UriError(f"{where}: missing required option {', '.join(missing)}") from None
    except ValueError as exc:
        raise UriError(f"{where}: {exc}") from None
