"""XML schemas shipped in ``xsd/`` or fetched at build time into ``xsd/vendor/``.

The ebRIM/ebRS 3.0 and XDS.b schemas come from a pinned PyPI artifact
(``bin/fetch-schemas``, run by ``make``), never copied from a repository.
Compiled schemas are cached per process: compiling rim.xsd takes ~50 ms and
validating with lxml is ~200x faster than with xmlschema.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from esb.errors import ConfigError
from esb.exchange import SAFE_XML_PARSER
from esb.settings import PACKAGE_ROOT

XSD_DIR = PACKAGE_ROOT / "xsd"

#: short names of the schemas the profiles use
KNOWN = {
    "xds.b": "vendor/ext/IHE/XDS.b_DocumentRepository.xsd",
    "ebrs-rim": "vendor/ext/ebRS/rim.xsd",
    "ebrs-rs": "vendor/ext/ebRS/rs.xsd",
    "ebrs-lcm": "vendor/ext/ebRS/lcm.xsd",
    "ebrs-query": "vendor/ext/ebRS/query.xsd",
    "order": "order.xsd",
}


def schema_path(name: str) -> Path:
    path = XSD_DIR / KNOWN.get(name, name)
    if not path.is_file():
        hint = " (run bin/fetch-schemas, which make runs)" if "vendor" in str(path) else ""
        raise ConfigError(f"schema '{name}' is not at {path}{hint}")
    return path


@cache
def xml_schema(name: str) -> etree.XMLSchema:
    """The compiled schema; its imports resolve relative to its file."""
    path = schema_path(name)
    return etree.XMLSchema(etree.parse(str(path), SAFE_XML_PARSER))
