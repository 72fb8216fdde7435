"""The slot-value syntax of stored query parameters (ITI TF-2a 3.18.4.1.2.3.5).

A ``rim:Value`` holds either one value or a parenthesised list of them::

    'urn:oasis:names:tc:ebxml-regrep:StatusType:Approved'     a string: single quotes
    'Children''s Hospital'                                     '' is a quote inside a string
    200412252300                                               a number: no quotes
    ('a', 'b')   ('a')                                         a list (one value or more)

The parser is a hand-written scanner, not a regular expression over the whole
text, so an error can say where the text stops making sense; nothing here ever
reaches SQL as text: values are bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


class SyntaxProblem(ValueError):
    """A Value that is not of the slot-value syntax; the binder names the parameter."""


@dataclass(frozen=True)
class Literal:
    """One value as written: its text (quotes removed, '' unescaped) and whether it was quoted."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class Parsed:
    """A whole ``rim:Value``: a list (parenthesised) or a single value."""

    items: tuple[Literal, ...]
    is_list: bool


_SPACE = " \t\r\n"


def parse_value(text: str) -> Parsed:
    """Parse one ``rim:Value`` text; raises SyntaxProblem with the reason."""
    scanner = _Scanner(text)
    scanner.skip_space()
    if scanner.peek() == "(":
        scanner.pos += 1
        items = [scanner.literal()]
        scanner.skip_space()
        while scanner.peek() == ",":
            scanner.pos += 1
            items.append(scanner.literal())
            scanner.skip_space()
        if scanner.peek() != ")":
            raise SyntaxProblem(scanner.expected("',' or ')'"))
        scanner.pos += 1
        scanner.end()
        return Parsed(tuple(items), True)
    item = scanner.literal()
    scanner.end()
    return Parsed((item,), False)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def expected(self, what: str) -> str:
        if self.pos >= len(self.text):
            return f"expected {what} at the end of the value"
        return f"expected {what} at character {self.pos + 1}"

    def end(self) -> None:
        self.skip_space()
        if self.pos < len(self.text):
            raise SyntaxProblem(f"unexpected text after the value at character {self.pos + 1}")

    def literal(self) -> Literal:
        self.skip_space()
        if self.peek() == "'":
            return self.string()
        start = self.pos
        if self.peek() in ("-", "+"):
            self.pos += 1
        while self.peek().isdigit() and self.peek().isascii():
            self.pos += 1
        digits = self.text[start : self.pos].lstrip("+-")
        if not digits:
            if self.peek() in ("", ",", ")"):
                raise SyntaxProblem(self.expected("a value"))
            raise SyntaxProblem(self.expected("a quoted string ('...') or a number"))
        if self.peek() not in ("", ",", ")") and self.peek() not in _SPACE:
            raise SyntaxProblem(self.expected("a quoted string ('...') or a number"))
        return Literal(self.text[start : self.pos], quoted=False)

    def string(self) -> Literal:
        self.pos += 1  # the opening quote
        chunks: list[str] = []
        while True:
            close = self.text.find("'", self.pos)
            if close < 0:
                raise SyntaxProblem("a string is not closed by a single quote")
            chunks.append(self.text[self.pos : close])
            self.pos = close + 1
            if self.peek() == "'":  # '' is one quote inside the string
                chunks.append("'")
                self.pos += 1
                continue
            return Literal("".join(chunks), quoted=True)
