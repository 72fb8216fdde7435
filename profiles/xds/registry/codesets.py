"""Affinity-domain code sets: which codes the registry accepts per coded attribute.

An XDS affinity domain agrees on the values of classCode, typeCode, formatCode...
(ITI TF-3 4.2.3; the registry refuses others with XDSRegistryMetadataError).
The file named by ``XdsConfig.code_sets`` lists them; an attribute the file does
not list accepts any code, and without a file every code is accepted, so a
fresh install works with any source::

    code_sets:
      classCode:
        - {code: "11488-4", scheme: "2.16.840.1.113883.6.1", display: Consultation note}
      mimeType: [text/xml, application/pdf]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from esb.errors import ConfigError, LintError
from esb.yamlnodes import Nodes

#: coded attributes (TF-3 names) a code set may constrain; codeList is the Folder's
CODED = (
    "classCode",
    "typeCode",
    "formatCode",
    "confidentialityCode",
    "healthcareFacilityTypeCode",
    "practiceSettingCode",
    "eventCodeList",
    "contentTypeCode",
    "codeList",
)
#: plain-valued attributes a code set may constrain
PLAIN = ("mimeType",)


@dataclass(frozen=True)
class CodeSets:
    """``codes[attribute]`` = accepted (code, codingScheme) pairs; ``plain[attribute]`` = accepted values."""

    codes: dict[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    plain: dict[str, frozenset[str]] = field(default_factory=dict)

    def accepts(self, attribute: str, code: str, coding_scheme: str) -> bool:
        allowed = self.codes.get(attribute)
        return allowed is None or (code, coding_scheme) in allowed

    def accepts_value(self, attribute: str, value: str) -> bool:
        allowed = self.plain.get(attribute)
        return allowed is None or value in allowed


#: accepts everything (no code sets configured)
ANY = CodeSets()


def load_code_sets(path: Path | None) -> CodeSets:
    """The code sets of ``path``; ANY when None. A wrong file is a LintError naming file:line:column."""
    if path is None:
        return ANY
    if not path.is_file():
        raise ConfigError(f"XDS code sets file {path} does not exist")
    nodes = Nodes(str(path))
    root = nodes.compose(path.read_text(encoding="utf-8"))
    if root is None:
        raise LintError(nodes.errors or [ConfigError(f"empty XDS code sets file {path}")])
    top = nodes.mapping(root, "code sets file", ["code_sets"], required=["code_sets"])
    codes: dict[str, frozenset[tuple[str, str]]] = {}
    plain: dict[str, frozenset[str]] = {}
    if "code_sets" in top:
        entries = nodes.mapping(top["code_sets"][1], "code_sets", [*CODED, *PLAIN])
        for attribute, (_, value) in entries.items():
            if attribute in PLAIN:
                items = [nodes.string(n, f"{attribute} value") for n in nodes.sequence(value, attribute)]
                plain[attribute] = frozenset(v for v in items if v)
            else:
                codes[attribute] = frozenset(_codes(nodes, value, attribute))
    if nodes.errors:
        raise LintError(nodes.errors)
    return CodeSets(codes, plain)


def _codes(nodes: Nodes, value: yaml.Node, attribute: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in nodes.sequence(value, attribute):
        keys = nodes.mapping(item, f"{attribute} code", ["code", "scheme", "display"], required=["code", "scheme"])
        if "code" in keys and "scheme" in keys:
            code = nodes.string(keys["code"][1], f"{attribute} code")
            scheme = nodes.string(keys["scheme"][1], f"{attribute} scheme")
            if code and scheme:
                out.append((code, scheme))
    return out
