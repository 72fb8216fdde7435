"""The WSDL at ``PATH?wsdl`` and the schemas it imports at ``PATH?xsd=...``.

The files in ``wsdl/`` import the schemas by relative location
(``../xsd/vendor/ext/ebRS/query.xsd``), which is right on disk (``zeep.Client``
on the file) but means nothing to a client that fetched ``PATH?wsdl``. So the
served copy has each relative import rewritten to ``PATH?xsd=<file under the
project>``, recursively through the schemas, and its ``soap:address`` set to
the URL the client asked for (the one it can reach, whatever the config says).
Only ``.wsdl``/``.xsd`` files under ``wsdl/`` and ``xsd/`` are ever served.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from lxml import etree

from adapters.soap.envelope import PARSER
from esb.settings import PACKAGE_ROOT

XSD = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
#: elements whose attribute points at another document
REFERENCES = {
    f"{{{XSD}}}import": "schemaLocation",
    f"{{{XSD}}}include": "schemaLocation",
    f"{{{XSD}}}redefine": "schemaLocation",
    f"{{{WSDL}}}import": "location",
}
ADDRESSES = frozenset(
    {"{http://schemas.xmlsoap.org/wsdl/soap12/}address", "{http://schemas.xmlsoap.org/wsdl/soap/}address"}
)
SERVED_DIRS = tuple((PACKAGE_ROOT / name).resolve() for name in ("wsdl", "xsd"))
SUFFIXES = (".wsdl", ".xsd")


def served_key(path: Path) -> str | None:
    """The ``?xsd=`` value of a file we may serve (its path under the project), else None."""
    resolved = path.resolve()
    if resolved.suffix not in SUFFIXES or not any(resolved.is_relative_to(d) for d in SERVED_DIRS):
        return None
    return resolved.relative_to(PACKAGE_ROOT.resolve()).as_posix()


def resolve_key(key: str) -> Path | None:
    """The file a ``?xsd=`` value names, if it is one we serve."""
    candidate = PACKAGE_ROOT / key
    if served_key(candidate) is None or not candidate.is_file():
        return None
    return candidate.resolve()


def document(path: Path, endpoint_url: str) -> bytes:
    """``path`` as served at ``endpoint_url``: references and addresses rewritten."""
    return _document(str(path.resolve()), endpoint_url, path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _document(path: str, endpoint_url: str, mtime_ns: int) -> bytes:
    tree = etree.parse(path, PARSER)
    directory = Path(path).parent
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag in ADDRESSES:
            element.set("location", endpoint_url)
            continue
        attribute = REFERENCES.get(element.tag)
        reference = element.get(attribute) if attribute else None
        if attribute is None or not reference or "://" in reference:
            continue
        key = served_key(directory / reference)
        if key is not None:
            element.set(attribute, f"{endpoint_url}?xsd={quote(key)}")
    return bytes(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
