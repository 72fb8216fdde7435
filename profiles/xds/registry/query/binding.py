"""Check the Slots of an AdhocQuery against a query's parameter table and type their values.

Error codes (ITI TF-3 Table 4.2.4.1-2, ITI TF-2a 3.18.4.1.2.3.7):

- a required parameter (or every member of a ``one_of`` group) absent:
  ``XDSStoredQueryMissingParam``;
- several values (or Slots) for a single-valued parameter, or both parameters of
  an exclusive pair: ``XDSStoredQueryParamNumber``;
- a value not in the slot-value syntax, of the wrong type (a quoted number, an
  unquoted string, a code not ``code^^scheme``...), several Slots for a
  parameter without AND/OR semantics: ``XDSRegistryError``, the only code the
  table has for them.

A parameter the query does not define is not an error in the spec; it is
ignored and reported as a Warning so a misspelt filter does not pass unnoticed.
Every problem of a request is reported, not only the first. Patient IDs are
never echoed in codeContext.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from esb.errors import XdsError
from profiles.xds import ebxml
from profiles.xds.registry.patients import PatientId
from profiles.xds.registry.query.parameters import Kind, Param, QuerySpec
from profiles.xds.registry.query.values import Literal, SyntaxProblem, parse_value

MISSING = "XDSStoredQueryMissingParam"
NUMBER = "XDSStoredQueryParamNumber"
SYNTAX = "XDSRegistryError"

STATUS_PREFIX = "urn:oasis:names:tc:ebxml-regrep:StatusType:"
_TIME_LENGTHS = (4, 6, 8, 10, 12, 14)

#: a bound value: str, int, or (code, codingScheme)
Value = Any


@dataclass
class Args:
    """Bound parameters: every parameter as AND-groups of OR-values (single values: one group of one)."""

    values: dict[str, list[list[Value]]] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def one(self, name: str) -> Value | None:
        groups = self.values.get(name)
        return groups[0][0] if groups else None

    def many(self, name: str) -> list[Value]:
        """The values of a multi-valued parameter without AND/OR semantics (OR)."""
        return [value for group in self.values.get(name, []) for value in group]

    def groups(self, name: str) -> list[list[Value]]:
        """AND of ORs: each Slot is one group."""
        return self.values.get(name, [])


def _error(text: str, code: str, name: str) -> XdsError:
    return XdsError(text, code=code, location=name)


def slots_of(adhoc_query: Any) -> dict[str, list[list[str]]]:
    """Slot name -> its Slots (in order) -> their Value texts."""
    found: dict[str, list[list[str]]] = {}
    for slot in adhoc_query.iterchildren(ebxml.q("rim", "Slot")):
        texts = [value.text or "" for value in slot.iter(ebxml.q("rim", "Value"))]
        found.setdefault(slot.get("name") or "", []).append(texts)
    return found


def bind(spec: QuerySpec, slots: dict[str, list[list[str]]]) -> tuple[Args, list[XdsError]]:
    """The typed arguments and the problems found (Errors and Warnings)."""
    args = Args()
    problems: list[XdsError] = []
    for name in slots:
        if spec.param(name) is None:
            problems.append(
                XdsError(
                    f"parameter {name or '(no name)'} is not defined for {spec.name}; it was ignored",
                    code=SYNTAX,
                    location=name,
                    severity="Warning",
                )
            )
    for param in spec.params:
        if param.name not in slots:
            if param.required:
                problems.append(_error(f"{spec.name}: required parameter {param.name} is missing", MISSING, param.name))
            continue
        try:
            args.values[param.name] = _bind_param(param, slots[param.name])
        except XdsError as error:
            problems.append(error)
    for group in spec.one_of:
        present = [name for name in group if name in slots]
        names = " or ".join(group)
        if not present:
            problems.append(_error(f"{spec.name}: one of {names} is required", MISSING, group[0]))
        elif len(present) > 1:
            problems.append(_error(f"{spec.name}: {names} are mutually exclusive", NUMBER, present[1]))
    return args, problems


def _bind_param(param: Param, slots: list[list[str]]) -> list[list[Value]]:
    name = param.name
    if any(not texts for texts in slots):
        raise _error(f"parameter {name} has a Slot without a Value", SYNTAX, name)
    if not param.multiple:
        if len(slots) > 1 or len(slots[0]) > 1:
            raise _error(f"parameter {name} takes a single value; it was given several", NUMBER, name)
        parsed = _parse(name, slots[0][0])
        if parsed.is_list:
            if len(parsed.items) > 1:
                raise _error(f"parameter {name} takes a single value; it was given a list", NUMBER, name)
            raise _error(f"parameter {name} takes a single value, not a list in parentheses", SYNTAX, name)
        return [[_convert(param, parsed.items[0])]]
    if len(slots) > 1 and not param.and_or:
        raise _error(f"parameter {name} does not support AND semantics (several Slots)", SYNTAX, name)
    groups: list[list[Value]] = []
    for texts in slots:
        group: list[Value] = []
        for text in texts:
            parsed = _parse(name, text)
            if not parsed.is_list:
                raise _error(f"parameter {name} takes a list of values in parentheses: ('a', 'b')", SYNTAX, name)
            group.extend(_convert(param, item) for item in parsed.items)
        groups.append(_unique(group))
    return groups


def _parse(name: str, text: str) -> Any:
    try:
        return parse_value(text)
    except SyntaxProblem as problem:
        raise _error(f"parameter {name}: {problem}", SYNTAX, name) from None


def _unique(values: Iterable[Value]) -> list[Value]:
    return list(dict.fromkeys(values))


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _convert(param: Param, item: Literal) -> Value:
    name, kind = param.name, param.kind
    if kind in (Kind.TIME, Kind.INT):
        if item.quoted:
            raise _error(f"parameter {name} is a number and must not be quoted (got {_shown(item.text)})", SYNTAX, name)
        if kind is Kind.INT:
            number = int(item.text)
            if param.allowed and number not in param.allowed:
                allowed = " or ".join(str(a) for a in param.allowed)
                raise _error(f"parameter {name} must be {allowed} (got {number})", SYNTAX, name)
            return number
        if not item.text.isdigit() or len(item.text) not in _TIME_LENGTHS:
            raise _error(
                f"parameter {name} must be a time of 4 to 14 digits (YYYY[MM[DD[hh[mm[ss]]]]]) "
                f"(got {_shown(item.text)})",
                SYNTAX,
                name,
            )
        return item.text.ljust(14, "0")
    if not item.quoted:
        shown = _shown(item.text)
        raise _error(f"parameter {name} is a string and must be in single quotes (got {shown})", SYNTAX, name)
    text = item.text
    if kind is Kind.PATIENT:
        patient = PatientId.parse(text)
        if patient is None:
            raise _error(f"parameter {name} must be a patient ID of the form id^^^&OID&ISO", SYNTAX, name)
        return str(patient)
    if kind is Kind.CODE:
        parts = text.split("^")
        if len(parts) != 3 or not parts[0] or parts[1] or not parts[2]:
            raise _error(f"parameter {name} must be coded as code^^codingScheme (got {_shown(text)})", SYNTAX, name)
        return (parts[0], parts[2])
    if kind is Kind.STATUS and not (text.startswith(STATUS_PREFIX) and len(text) > len(STATUS_PREFIX)):
        raise _error(f"parameter {name} must be a status {STATUS_PREFIX}... (got {_shown(text)})", SYNTAX, name)
    if kind is Kind.DOCUMENT_TYPE and text not in ebxml.DOCUMENT_TYPES:
        allowed = " or ".join(ebxml.DOCUMENT_TYPES)
        raise _error(f"parameter {name} must be {allowed} (got {_shown(text)})", SYNTAX, name)
    return text
