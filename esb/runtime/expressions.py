"""Compiled predicates, transforms and validators used by route steps.

Everything is compiled when the engine (or ``esb lint``) loads a route, so an
XPath typo, a missing XSLT file or an unimportable callable is a lint error
with a position, not a runtime failure.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lxml import etree

from esb import registry
from esb.errors import ComponentError, TransformError, ValidationError
from esb.exchange import SAFE_XML_PARSER, Exchange
from esb.routes.model import Predicate

Test = Callable[[Exchange], Awaitable[bool]]
Apply = Callable[[Exchange], Awaitable[None]]


def python_callable(target: str) -> Callable[..., Any]:
    obj = registry.load_object(registry.transform_target(target))
    if not callable(obj):
        raise ComponentError(f"'{target}' is not callable")
    return obj  # type: ignore[no-any-return]


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def xpath(expression: str, namespaces: dict[str, str]) -> etree.XPath:
    try:
        return etree.XPath(expression, namespaces=namespaces or None)
    except etree.XPathSyntaxError as exc:
        raise ComponentError(f"XPath '{expression}' does not compile: {exc}") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) > 0
    return bool(value)


def predicate(pred: Predicate) -> Test:
    if pred.kind == "xpath":
        compiled = xpath(pred.expression, pred.namespaces)

        async def test_xpath(ex: Exchange) -> bool:
            return _truthy(compiled(ex.xml()))

        return test_xpath
    if pred.kind == "python":
        fn = python_callable(pred.expression)

        async def test_python(ex: Exchange) -> bool:
            return bool(await call_maybe_async(fn, ex))

        return test_python
    name, expected = pred.expression, pred.header_value
    pattern = re.compile(expected) if pred.header_regex and expected is not None else None

    async def test_header(ex: Exchange) -> bool:
        value = ex.headers.get(name)
        if expected is None:
            return value is not None
        if value is None:
            return False
        return bool(pattern.fullmatch(value)) if pattern else value == expected

    return test_header


def resolve_file(target: str, route_file: str) -> Path:
    """Files named in a route are relative to the route file, then to the cwd."""
    path = Path(target)
    if path.is_absolute():
        return path
    beside = Path(route_file).parent / path
    return beside if beside.exists() else path


def xslt_transform(target: str, params: dict[str, str], route_file: str) -> Apply:
    path = resolve_file(target, route_file)
    if not path.is_file():
        raise ComponentError(f"XSLT file '{target}' does not exist")
    try:
        stylesheet = etree.XSLT(etree.parse(str(path), SAFE_XML_PARSER))
    except (etree.XSLTParseError, etree.XMLSyntaxError) as exc:
        raise ComponentError(f"XSLT '{target}' does not compile: {exc}") from None
    quoted = {k: etree.XSLT.strparam(v) for k, v in params.items()}

    async def apply(ex: Exchange) -> None:
        try:
            ex.set_body(stylesheet(ex.xml(), **quoted))  # type: ignore[arg-type]
        except (etree.XSLTApplyError, etree.XMLSyntaxError) as exc:
            raise TransformError(f"XSLT {target} failed: {exc}") from exc

    return apply


def python_transform(target: str, params: dict[str, str]) -> Apply:
    fn = python_callable(target)
    takes_params = bool(params)

    async def apply(ex: Exchange) -> None:
        result = await (call_maybe_async(fn, ex, params) if takes_params else call_maybe_async(fn, ex))
        if result is None:
            return
        if isinstance(result, Exchange):
            ex.body, ex.headers, ex.attachments = result.body, result.headers, result.attachments
            return
        try:
            ex.set_body(result)
        except TypeError as exc:
            raise TransformError(f"transform {target}: {exc}") from None

    return apply


def validator(kind: str, target: str, options: dict[str, str], route_file: str) -> Apply:
    if kind == "xsd":
        path = resolve_file(target, route_file)
        if not path.is_file():
            raise ComponentError(f"XSD file '{target}' does not exist")
        try:
            schema = etree.XMLSchema(etree.parse(str(path), SAFE_XML_PARSER))
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
            raise ComponentError(f"XSD '{target}' does not compile: {exc}") from None

        async def check_xsd(ex: Exchange) -> None:
            if not schema.validate(ex.xml()):
                errors: Any = schema.error_log
                first = errors[0]
                raise ValidationError(f"line {first.line}: {first.message}")

        return check_xsd
    if kind == "xpath":
        namespaces = {k[3:]: v for k, v in options.items() if k.startswith("ns:")}
        compiled = xpath(target, namespaces)

        async def check_xpath(ex: Exchange) -> None:
            if not _truthy(compiled(ex.xml())):
                raise ValidationError(f"XPath {target} is false for this message")

        return check_xpath
    if kind == "python":
        fn = python_callable(target)

        async def check_python(ex: Exchange) -> None:
            if await call_maybe_async(fn, ex) is False:
                raise ValidationError(f"{target} refused the message")

        return check_python
    return hl7v2_type_check(target)


def hl7v2_type_check(allowed: str) -> Apply:
    """Accept only the listed HL7 v2 message types (MSH-9, e.g. ``ADT^A01|ADT^A04``).

    Just the type gate; full conformance-profile validation comes with the MLLP
    adapter, which parses the message anyway.
    """
    types = {t.strip() for t in allowed.split("|") if t.strip()}

    async def check(ex: Exchange) -> None:
        text = ex.body.decode("latin-1")
        if not text.startswith("MSH") or len(text) < 8:
            raise ValidationError("not an HL7 v2 message (no MSH segment)")
        field_sep, component_sep = text[3], text[4]
        msh = re.split(r"[\r\n]", text, maxsplit=1)[0].split(field_sep)
        if len(msh) < 9:
            raise ValidationError("MSH-9 (message type) is missing")
        parts = msh[8].split(component_sep)
        message_type = "^".join(parts[:2])
        if message_type not in types:
            raise ValidationError(f"message type {message_type} is not accepted here (allowed: {allowed})")

    return check
