"""Standard code sets and per-system local -> standard code maps (REQUIREMENTS A1.11).

Each hospital system codes sex, marital status and ethnicity its own way (HL7
tables, GB/T national standards, free Chinese text, private numbers). The EMPI
keeps one standard per code set and maps every incoming value to it: first
through the sending system's own map, then through what every system may send
(the standard codes, their names, other standards' codes via crosswalks).

Everything lives in YAML files: the shipped ones in ``profiles/empi/codes/``
and per-deployment override files loaded after them, so a new hospital's codes
are a file edit, not a release. A file has two optional sections::

    code_sets:
      sex:
        standard: HL7 0001            # the standard this code set is kept in
        codes:                        # standard code -> display, Chinese name, aliases
          M: {display: Male, zh: 男, aliases: [male, 男性]}
        crosswalks:                   # another standard's codes -> standard code
          GB/T 2261.1: {"1": M}
    maps:
      HIS^HOSP1:                      # a sending system, as in PatientRecord.source
        sex: {"3": F}                 # its local code -> standard code

Every scalar is read as a string (``01`` stays "01"). A later file adds codes,
aliases and crosswalk entries to a code set and replaces map entries; a key
that would mean two different codes is an error.
Lookups ignore case, width (full-width forms) and surrounding spaces, and a
numeric code matches without its leading zeros ("1" is ethnicity "01").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from esb.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "codes"

_SPACE = re.compile(r"\s+")
_FILE_KEYS = frozenset({"code_sets", "maps"})
_SET_KEYS = frozenset({"standard", "codes", "crosswalks"})
_CODE_KEYS = frozenset({"display", "zh", "aliases"})


def key(value: object) -> str:
    """The form a code is looked up by: NFKC, case-folded, inner whitespace collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", str(value))).strip().casefold()


@dataclass(frozen=True)
class Code:
    code: str
    display: str = ""
    zh: str = ""


@dataclass
class CodeSet:
    """One code set in its standard, with everything that is known to mean each code."""

    name: str
    standard: str = ""
    codes: dict[str, Code] = field(default_factory=dict)
    crosswalks: dict[str, dict[str, str]] = field(default_factory=dict)
    lookup: dict[str, str] = field(default_factory=dict)
    _origin: dict[str, str] = field(default_factory=dict, repr=False)
    #: numeric keys without their leading zeros ("1" for "01"); weaker than any real key
    _unpadded: dict[str, str] = field(default_factory=dict, repr=False)

    def add_key(self, value: object, code: str, origin: str) -> None:
        k = key(value)
        if not k:
            return
        known = self.lookup.get(k)
        if known is not None and known != code:
            raise ConfigError(
                f"code set '{self.name}': {origin} maps {value!r} to '{code}', "
                f"but {self._origin[k]} already maps it to '{known}'"
            )
        self.lookup[k] = code
        self._origin[k] = origin
        if k.isdigit() and k.startswith("0") and len(k) > 1:
            self._unpadded.setdefault(k.lstrip("0") or "0", code)

    def find(self, value: str) -> str | None:
        k = key(value)
        return self.lookup.get(k) or self._unpadded.get(k)

    def convert(self, code: str, standard: str) -> str | None:
        """A standard code in another standard, through the first crosswalk entry that names it."""
        for local, target in self.crosswalks.get(standard, {}).items():
            if target == code:
                return local
        return None


class CodeMaps:
    """All code sets and per-system maps of a deployment; read-only once loaded, safe to share."""

    def __init__(self) -> None:
        self.code_sets: dict[str, CodeSet] = {}
        self.maps: dict[str, dict[str, dict[str, str]]] = {}

    @classmethod
    def load(cls, paths: Iterable[str | Path] = (), *, shipped: bool = True) -> CodeMaps:
        """The shipped code sets (unless ``shipped=False``) and then ``paths`` (files or dirs of *.yaml)."""
        maps = cls()
        files: list[Path] = sorted(SHIPPED.glob("*.yaml")) if shipped else []
        for path in map(Path, paths):
            files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
        for file in files:
            maps._load_file(file)
        return maps

    @classmethod
    def default(cls) -> CodeMaps:
        """The shipped code sets alone, loaded once per process."""
        return _default()

    def code_set(self, name: str) -> CodeSet:
        try:
            return self.code_sets[name]
        except KeyError:
            known = ", ".join(sorted(self.code_sets)) or "none"
            raise ConfigError(f"code set '{name}' is not defined (defined: {known})") from None

    def map(self, system: str, code_set: str, local_code: str) -> str | None:
        """The standard code for ``local_code`` as ``system`` sends it, or None when nothing maps it.

        ``system`` is matched whole (``HIS^HOSP1``) and then by its first
        component (``HIS``), so a map may be written for one application or for
        it at one facility.
        """
        codes = self.code_set(code_set)
        if not local_code.strip():
            return None
        k = key(local_code)
        for name in _system_names(system):
            found = self.maps.get(name, {}).get(code_set, {}).get(k)
            if found is not None:
                return found
        return codes.find(local_code)

    # -- loading ------------------------------------------------------------------------

    def _load_file(self, file: Path) -> None:
        try:
            # BaseLoader keeps every scalar a string: code 01 stays "01", N stays "N", no stays "no"
            data = yaml.load(file.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"code map file '{file}' cannot be read: {exc}") from exc
        data = data or {}
        _check_keys(data, _FILE_KEYS, f"code map file '{file}'")
        for name, body in _mapping(data.get("code_sets", {}), f"'{file}': code_sets").items():
            self._load_set(file, str(name), body)
        for system, sets in _mapping(data.get("maps", {}), f"'{file}': maps").items():
            for set_name, entries in _mapping(sets, f"'{file}': maps: {system}").items():
                where = f"'{file}': maps: {system}: {set_name}"
                if set_name not in self.code_sets:
                    known = ", ".join(sorted(self.code_sets)) or "none"
                    raise ConfigError(f"{where}: code set '{set_name}' is not defined (defined: {known})")
                codes = self.code_sets[set_name]
                target = self.maps.setdefault(str(system), {}).setdefault(str(set_name), {})
                for local, code in _mapping(entries, where).items():
                    target[key(local)] = _known(codes, code, f"{where}: {local!r}")

    def _load_set(self, file: Path, name: str, body: Any) -> None:
        where = f"'{file}': code_sets: {name}"
        _check_keys(body, _SET_KEYS, where)
        codes = self.code_sets.setdefault(name, CodeSet(name))
        codes.standard = str(body.get("standard", codes.standard))
        for raw_code, raw_info in _mapping(body.get("codes", {}), f"{where}: codes").items():
            code = str(raw_code)
            info = raw_info or {}
            _check_keys(info, _CODE_KEYS, f"{where}: codes: {code}")
            codes.codes[code] = Code(code, str(info.get("display", "")), str(info.get("zh", "")))
            origin = f"{where}: {code}"
            codes.add_key(code, code, origin)
            for alias in (info.get("display", ""), info.get("zh", ""), *info.get("aliases", ())):
                codes.add_key(alias, code, origin)
        for standard, entries in _mapping(body.get("crosswalks", {}), f"{where}: crosswalks").items():
            walk = codes.crosswalks.setdefault(str(standard), {})
            for local, target in _mapping(entries, f"{where}: crosswalks: {standard}").items():
                code = _known(codes, target, f"{where}: crosswalks: {standard}: {local!r}")
                walk[str(local)] = code
                codes.add_key(local, code, f"{where}: crosswalks: {standard}")


@lru_cache(maxsize=1)
def _default() -> CodeMaps:
    return CodeMaps.load()


@lru_cache(maxsize=1024)
def _system_names(system: str) -> tuple[str, ...]:
    first = system.split("^", 1)[0]
    return (system, first) if first != system else (system,)


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping (got {type(value).__name__})")
    return value


def _check_keys(value: Any, allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in _mapping(value, where) if k not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")


def _known(codes: CodeSet, code: Any, where: str) -> str:
    if str(code) not in codes.codes:
        allowed = ", ".join(sorted(codes.codes))
        raise ConfigError(f"{where} maps to '{code}', which is not a code of '{codes.name}' (allowed: {allowed})")
    return str(code)
