"""The model file: YAML read with positions, so a wrong level says ``matching.yaml:41:11``.

The walk follows :class:`esb.yamlnodes.Nodes` like route files do: every
error is collected with its line and column and all are raised together as
one :class:`~esb.errors.LintError`. :func:`dump_model` writes a model back
(after estimation) in the same shape.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from esb.errors import ConfigError, LintError
from esb.yamlnodes import Nodes
from profiles.empi.matching.blocking import FUNCTIONS
from profiles.empi.matching.comparators import KINDS, Kind
from profiles.empi.matching.model import BlockingRule, Comparison, KeyPart, Level, Model, TermFrequencies

#: the shipped default model (parameters estimated on the synthetic Chinese data set)
DEFAULT_MODEL_FILE = Path(__file__).resolve().parent.parent / "matching.yaml"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PART = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(?:\(\s*([A-Za-z0-9_.&-]+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


def load_model(path: Path | str | None = None) -> Model:
    """The model in ``path``, or the shipped default."""
    file = Path(path) if path is not None else DEFAULT_MODEL_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"matching model '{file}' cannot be read: {exc.strerror}") from exc
    return parse_model(text, str(file))


def parse_model(text: str, file: str = "<matching model>") -> Model:
    reader = _Reader(Nodes(file))
    model = reader.read(text)
    if reader.nodes.errors or model is None:
        raise LintError(reader.nodes.errors or [ConfigError(f"matching model '{file}' is empty")])
    return model


class _Reader:
    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    def number(self, node: yaml.Node, what: str, low: float, high: float) -> float | None:
        text = self.nodes.string(node, what)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            self.nodes.error(node, f"{what} must be a number from {low:g} to {high:g} (got '{text}')")
            return None
        return value

    def name(self, node: yaml.Node, what: str) -> str | None:
        text = self.nodes.string(node, what)
        if text is not None and not _NAME.match(text):
            self.nodes.error(node, f"{what} must be lower-case letters, digits and _ (got '{text}')")
            return None
        return text

    def read(self, text: str) -> Model | None:
        root = self.nodes.compose(text)
        if root is None:
            return None
        top = self.nodes.mapping(root, "matching model", ["matching"], ["matching"])
        if "matching" not in top:
            return None
        keys = self.nodes.mapping(
            top["matching"][1],
            "matching",
            ["description", "thresholds", "prior", "link_requires", "blocking", "comparisons"],
            ["thresholds", "blocking", "comparisons"],
        )
        upper = lower = None
        if "thresholds" in keys:
            node = keys["thresholds"][1]
            limits = self.nodes.mapping(node, "thresholds", ["upper", "lower"], ["upper", "lower"])
            if "upper" in limits:
                upper = self.number(limits["upper"][1], "thresholds.upper", -1000, 1000)
            if "lower" in limits:
                lower = self.number(limits["lower"][1], "thresholds.lower", -1000, 1000)
            if upper is not None and lower is not None and lower > upper:
                self.nodes.error(node, f"thresholds.lower ({lower:g}) must not be above thresholds.upper ({upper:g})")
        prior = self.number(keys["prior"][1], "prior", 0, 1) if "prior" in keys else 1e-6
        description = self.nodes.string(keys["description"][1], "description") if "description" in keys else ""
        blocking = self.blocking(keys["blocking"][1]) if "blocking" in keys else ()
        comparisons = self.comparisons(keys["comparisons"][1]) if "comparisons" in keys else ()
        requires: list[str] = []
        if "link_requires" in keys:
            for item in self.nodes.sequence(keys["link_requires"][1], "link_requires"):
                name = self.nodes.string(item, "link_requires")
                known = [c.name for c in comparisons]
                if name is not None and name not in known and not self.nodes.errors:
                    self.nodes.error(
                        item, f"link_requires names unknown comparison '{name}' (comparisons: {', '.join(known)})"
                    )
                elif name is not None:
                    requires.append(name)
        if upper is None or lower is None or prior is None or self.nodes.errors:
            return None
        return Model(comparisons, blocking, upper, lower, prior, description or "", tuple(requires))

    # -- blocking ----------------------------------------------------------------------

    def blocking(self, node: yaml.Node) -> tuple[BlockingRule, ...]:
        rules: list[BlockingRule] = []
        items = self.nodes.sequence(node, "blocking")
        if not items and isinstance(node, yaml.SequenceNode):
            self.nodes.error(node, "blocking must list at least one rule")
        for item in items:
            keys = self.nodes.mapping(item, "blocking rule", ["name", "key", "unordered"], ["name", "key"])
            if "name" not in keys or "key" not in keys:
                continue
            name = self.name(keys["name"][1], "blocking rule name")
            if name is not None and any(rule.name == name for rule in rules):
                self.nodes.error(keys["name"][1], f"blocking rule '{name}' is defined twice")
                continue
            what = f"blocking rule '{keys['name'][1].value}'"
            parts = [self.part(p, what) for p in self.nodes.sequence(keys["key"][1], f"{what}: key")]
            if not parts:
                self.nodes.error(keys["key"][1], f"{what}: key must list at least one field")
            unordered = self.nodes.boolean(keys["unordered"][1], "unordered") if "unordered" in keys else False
            if name is not None and parts and all(parts) and unordered is not None:
                rules.append(BlockingRule(name, tuple(p for p in parts if p is not None), unordered))
        return tuple(rules)

    def part(self, node: yaml.Node, what: str) -> KeyPart | None:
        text = self.nodes.string(node, f"{what} key part")
        if text is None:
            return None
        match = _PART.match(text)
        if not match:
            self.nodes.error(node, f"{what}: key part must be 'field' or 'function(field[, n])' (got '{text}')")
            return None
        first, inner, arg = match.groups()
        if inner is None:
            return KeyPart(first)
        if first not in FUNCTIONS:
            self.nodes.error(node, f"{what}: unknown key function '{first}' (allowed: {', '.join(FUNCTIONS)})")
            return None
        needs_arg = FUNCTIONS[first][1]
        if needs_arg != (arg is not None):
            self.nodes.error(node, f"{what}: {first}() takes {'a field and a length' if needs_arg else 'one field'}")
            return None
        return KeyPart(inner, first, int(arg) if arg is not None else None)

    # -- comparisons -------------------------------------------------------------------

    def comparisons(self, node: yaml.Node) -> tuple[Comparison, ...]:
        out: list[Comparison] = []
        seen: set[str] = set()
        for item in self.nodes.sequence(node, "comparisons"):
            comparison = self.comparison(item, seen)
            if comparison is not None:
                out.append(comparison)
        return tuple(out)

    def comparison(self, node: yaml.Node, seen: set[str]) -> Comparison | None:
        if not isinstance(node, yaml.MappingNode):
            self.nodes.error(node, "a comparison must be a mapping with name, kind and levels")
            return None
        kind_node = next((v for k, v in node.value if k.value == "kind"), None)
        kind_name = self.nodes.choice(kind_node, "comparison kind", list(KINDS)) if kind_node is not None else None
        kind = KINDS.get(kind_name or "")
        options = [o.name for o in kind.options] if kind else []
        allowed = ["name", "kind", "levels", *options, "term_frequency"]
        keys = self.nodes.mapping(node, "comparison", allowed, ["name", "kind", "levels"])
        if kind is None or "name" not in keys:
            return None
        name = self.name(keys["name"][1], "comparison name")
        if name in seen:
            self.nodes.error(keys["name"][1], f"comparison '{name}' is defined twice")
        seen.add(name or "")
        what = f"comparison '{name}'"
        values = self.options(kind, keys, node, what)
        levels = self.levels(keys["levels"][1], kind, what) if "levels" in keys else None
        tf = None
        if "term_frequency" in keys and levels:
            tf = self.frequencies(keys["term_frequency"][1], kind, levels, what)
            if tf is None:
                return None
        if name is None or values is None or not levels:
            return None
        return Comparison(name, kind.name, levels, values, tf)

    def frequencies(self, node: yaml.Node, kind: Kind, levels: tuple[Level, ...], what: str) -> TermFrequencies | None:
        if kind.tf_key is None:
            allowed = ", ".join(k.name for k in KINDS.values() if k.tf_key is not None)
            self.nodes.error(node, f"{what}: kind '{kind.name}' has no term frequencies (kinds that do: {allowed})")
            return None
        keys = self.nodes.mapping(node, f"{what}: term_frequency", ["levels", "default", "values"], ["levels"])
        names: list[str] = []
        if "levels" in keys:
            for item in self.nodes.sequence(keys["levels"][1], f"{what}: term_frequency.levels"):
                level = self.nodes.string(item, f"{what}: term_frequency level")
                if level is not None and level not in [lv.name for lv in levels]:
                    known = ", ".join(lv.name for lv in levels)
                    self.nodes.error(item, f"{what}: term_frequency names unknown level '{level}' (levels: {known})")
                elif level is not None:
                    names.append(level)
        default = self.number(keys["default"][1], f"{what}: term_frequency.default", 0, 1) if "default" in keys else 1.0
        values: dict[str, float] = {}
        if "values" in keys:
            for value, text in self.nodes.string_map(keys["values"][1], f"{what}: term_frequency.values").items():
                try:
                    values[value] = float(text)
                except ValueError:
                    self.nodes.error(
                        keys["values"][1], f"{what}: frequency of '{value}' must be a number (got '{text}')"
                    )
        if not names or default is None:
            return None
        return TermFrequencies(tuple(names), values, default)

    def options(self, kind: Kind, keys: dict[str, tuple[yaml.Node, yaml.Node]], node: yaml.Node, what: str) -> Any:
        values: dict[str, Any] = {}
        ok = True
        for option in kind.options:
            if option.name not in keys:
                if option.required:
                    self.nodes.error(node, f"{what}: kind '{kind.name}' needs option '{option.name}'")
                    ok = False
                values[option.name] = option.default
                continue
            value_node = keys[option.name][1]
            value: Any
            if option.kind == "int":
                value = self.nodes.integer(value_node, f"{what}: {option.name}")
            elif option.kind == "fields":
                items = [self.nodes.string(n, f"{what}: {option.name}") for n in self.nodes.sequence(value_node, "")]
                value = tuple(i for i in items if i) or None
                if value is None:
                    self.nodes.error(value_node, f"{what}: {option.name} must list at least one field")
            else:
                value = self.nodes.string(value_node, f"{what}: {option.name}")
                if value is not None and option.name == "placeholder":
                    try:
                        re.compile(value)
                    except re.error as exc:
                        self.nodes.error(value_node, f"{what}: placeholder must be a regular expression ({exc})")
                        value = None
            ok = ok and value is not None
            values[option.name] = value
        return values if ok else None

    def levels(self, node: yaml.Node, kind: Kind, what: str) -> tuple[Level, ...] | None:
        items = self.nodes.sequence(node, f"{what}: levels")
        levels: list[Level] = []
        ok = bool(items)
        if not items:
            self.nodes.error(node, f"{what}: levels must list at least an 'else' level")
        for index, item in enumerate(items):
            level = self.level(item, kind, what)
            if level is None:
                ok = False
                continue
            if level.name in {lv.name for lv in levels}:
                self.nodes.error(item, f"{what}: level '{level.name}' is defined twice")
                ok = False
            last = index == len(items) - 1
            if (level.test == "else") != last:
                message = "only the last level may be 'else'" if not last else "the last level must be 'else'"
                self.nodes.error(item, f"{what}: {message} (got test '{level.test}' at level '{level.name}')")
                ok = False
            levels.append(level)
        return tuple(levels) if ok else None

    def level(self, node: yaml.Node, kind: Kind, what: str) -> Level | None:
        if not isinstance(node, yaml.MappingNode):
            self.nodes.error(node, f"{what}: a level must be a mapping with name, m and u")
            return None
        raw = {str(k.value): v for k, v in node.value}
        name = self.name(raw["name"], f"{what}: level name") if "name" in raw else None
        test_name = self.nodes.string(raw["test"], f"{what}: test") if "test" in raw else name
        test = kind.tests.get(test_name or "")
        if test is None and test_name is not None:
            self.nodes.error(
                raw.get("test", raw.get("name", node)),
                f"{what}: kind '{kind.name}' has no test '{test_name}' (allowed: {', '.join(kind.tests)})",
            )
        allowed = ["name", "test", "m", "u", "fixed", *([test.param] if test and test.param else [])]
        keys = self.nodes.mapping(node, f"{what}: level", allowed, ["name", "m", "u"])
        lw = f"{what}: level '{name}'"
        m = self.number(keys["m"][1], f"{lw}: m", 0, 1) if "m" in keys else None
        u = self.number(keys["u"][1], f"{lw}: u", 0, 1) if "u" in keys else None
        fixed = self.nodes.boolean(keys["fixed"][1], f"{lw}: fixed") if "fixed" in keys else False
        param: float | None = None
        if test is not None and test.param:
            param = test.default
            if test.param in keys:
                low, high = (0.0, 1.0) if not test.integer else (0.0, 1e6)
                param = self.number(keys[test.param][1], f"{lw}: {test.param}", low, high)
                if param is not None and test.integer and param != int(param):
                    self.nodes.error(keys[test.param][1], f"{lw}: {test.param} must be a whole number (got {param:g})")
                    param = None
        if None in (name, test, m, u, fixed) or (test is not None and test.param and param is None):
            return None
        assert name is not None and test_name is not None and m is not None and u is not None
        if test is not None and test.integer and param is not None:
            param = int(param)
        return Level(name, test_name, m, u, param, bool(fixed))


def dump_model(model: Model) -> str:
    """The model as YAML in the shape :func:`parse_model` reads."""

    def level(lv: Level, kind: Kind) -> dict[str, Any]:
        out: dict[str, Any] = {"name": lv.name}
        if lv.test != lv.name:
            out["test"] = lv.test
        test = kind.tests[lv.test]
        if test.param and lv.param is not None:
            out[test.param] = int(lv.param) if test.integer else lv.param
        out.update(m=float(f"{lv.m:.6g}"), u=float(f"{lv.u:.6g}"))
        if lv.fixed:
            out["fixed"] = True
        return out

    comparisons = []
    for c in model.comparisons:
        entry: dict[str, Any] = {"name": c.name, "kind": c.kind}
        defaults = {o.name: o.default for o in KINDS[c.kind].options}
        for key, value in c.options.items():
            if value is not None and value != defaults.get(key):
                entry[key] = list(value) if isinstance(value, tuple) else value
        entry["levels"] = [level(lv, KINDS[c.kind]) for lv in c.levels]
        if c.frequencies is not None:
            entry["term_frequency"] = {
                "levels": list(c.frequencies.levels),
                "default": float(f"{c.frequencies.default:.6g}"),
                "values": {k: float(f"{v:.6g}") for k, v in c.frequencies.values.items()},
            }
        comparisons.append(entry)
    document = {
        "matching": {
            "description": model.description,
            "thresholds": {"upper": model.upper, "lower": model.lower},
            "prior": float(f"{model.prior:.6g}"),
            **({"link_requires": list(model.link_requires)} if model.link_requires else {}),
            "blocking": [
                {"name": r.name, "key": [str(p) for p in r.parts], **({"unordered": True} if r.unordered else {})}
                for r in model.blocking
            ],
            "comparisons": comparisons,
        }
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=None, width=110)
