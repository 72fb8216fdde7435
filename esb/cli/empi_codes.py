"""``esb empi codes ...``: the standard code sets and per-system code maps (REQUIREMENTS A1.11).

Code maps are "managed by CLI and files": the files are the source of truth
(``profiles/empi/codes/*.yaml`` shipped, plus the deployment's ``code_maps``
in ``config/empi.yaml``), and these commands show what they add up to and
check a file before it is deployed. ``check`` walks the composed YAML so each
problem is reported as ``file:line:col``; the meaning of each entry is judged
by :class:`CodeMaps` itself (one entry at a time), so the CLI and the service
can never disagree about what a file means.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from esb.authz import authorize
from esb.cli.common import EXIT_PROBLEM, emit, fail, guard
from esb.cli.empi import empi
from esb.errors import ConfigError
from esb.yamlnodes import Nodes
from profiles.empi.config import load_empi_config
from profiles.empi.standardize.codes import CodeMaps, key

CODE_COLUMNS = ["code_set", "code", "display", "zh", "standard"]


def deployment_maps() -> CodeMaps:
    """The shipped code sets and the deployment's override files, as the EMPI service loads them."""
    return CodeMaps.load(load_empi_config().code_maps)


@empi.group()
def codes() -> None:
    """Standard code sets and the local code maps of sending systems."""


@codes.command(name="list")
@click.argument("code_set", required=False)
@click.pass_context
@guard
def codes_list(ctx: click.Context, code_set: str | None) -> None:
    """The standard codes of CODE_SET (default: every code set)."""
    authorize("empi.read")
    maps = deployment_maps()
    names = [code_set] if code_set else sorted(maps.code_sets)
    rows = [
        {"code_set": s.name, "code": c.code, "display": c.display, "zh": c.zh, "standard": s.standard}
        for s in (maps.code_set(name) for name in names)
        for c in s.codes.values()
    ]
    emit(ctx, rows, CODE_COLUMNS)


@codes.command(name="map")
@click.argument("system")
@click.argument("code_set")
@click.argument("local_code")
@click.pass_context
@guard
def codes_map(ctx: click.Context, system: str, code_set: str, local_code: str) -> None:
    """The standard code LOCAL_CODE stands for when SYSTEM (``APP^FACILITY``) sends it; exit 1 when none."""
    authorize("empi.read")
    maps = deployment_maps()
    code = maps.map(system, code_set, local_code)
    if code is None:
        fail(f"{code_set} code '{local_code}' from '{system}' maps to no standard code (add it to a code map file)")
    found = maps.code_set(code_set).codes[str(code)]
    emit(
        ctx,
        {
            "system": system,
            "code_set": code_set,
            "local_code": local_code,
            "code": found.code,
            "display": found.display,
            "zh": found.zh,
        },
    )


@codes.command(name="check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@guard
def codes_check(file: Path) -> None:
    """Validate a per-deployment code map FILE against the shipped code sets; errors as file:line:col."""
    authorize("empi.read")
    errors = check_file(file)
    for error in errors:
        click.echo(str(error))
    if errors:
        fail(f"{file}: {len(errors)} error(s)", EXIT_PROBLEM)
    click.echo(f"{file}: ok")


def check_file(file: Path) -> list[ConfigError]:
    """Every problem in an override file, each at the node it is about."""
    nodes = Nodes(str(file))
    root = nodes.compose(file.read_text(encoding="utf-8"))
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value in ("", "~", "null")):
        return nodes.errors
    top = nodes.mapping(root, "code map file", ["code_sets", "maps"])
    maps = CodeMaps.load()
    if "code_sets" in top:
        for name_node, body in _pairs(nodes, top["code_sets"][1], "code_sets"):
            _check_set(nodes, maps, file, str(name_node.value), body)
    if "maps" in top:
        for system, sets in _pairs(nodes, top["maps"][1], "maps"):
            for set_node, entries in _pairs(nodes, sets, f"maps: {system.value}"):
                _check_map(nodes, maps, f"maps: {system.value}", set_node, entries)
    return sorted(nodes.errors, key=lambda e: (e.position.line, e.position.column) if e.position else (0, 0))


def _pairs(nodes: Nodes, node: yaml.Node, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return []
    if not isinstance(node, yaml.MappingNode):
        nodes.error(node, f"{what} must be a mapping")
        return []
    return list(node.value)


def _plain(node: yaml.Node) -> object:
    """A node as the values CodeMaps reads (every scalar a string, as its BaseLoader does)."""
    if isinstance(node, yaml.MappingNode):
        return {str(k.value): _plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    return str(node.value)


def _check_set(nodes: Nodes, maps: CodeMaps, file: Path, name: str, body: yaml.Node) -> None:
    """Each key, code and crosswalk entry is fed to CodeMaps on its own, so its error lands on its node."""
    sections = _pairs(nodes, body, f"code_sets: {name}")
    ordered = sorted(sections, key=lambda pair: str(pair[0].value) == "crosswalks")  # codes before crosswalks
    for key_node, value in ordered:
        section = str(key_node.value)
        entries: list[tuple[yaml.Node, dict[str, object]]]
        if section == "codes":
            entries = [(n, {section: {str(n.value): _plain(v)}}) for n, v in _pairs(nodes, value, section)]
        elif section == "crosswalks":
            entries = [
                (local, {section: {str(std.value): {str(local.value): _plain(target)}}})
                for std, walk in _pairs(nodes, value, section)
                for local, target in _pairs(nodes, walk, f"{section}: {std.value}")
            ]
        else:
            entries = [(key_node, {section: _plain(value)})]
        for node, part in entries:
            try:
                maps._load_set(file, name, part)
            except ConfigError as exc:
                nodes.error(node, exc.message.removeprefix(f"'{file}': "))


def _check_map(nodes: Nodes, maps: CodeMaps, where: str, set_node: yaml.Node, entries: yaml.Node) -> None:
    try:
        codes = maps.code_set(str(set_node.value))
    except ConfigError as exc:
        nodes.error(set_node, f"{where}: {exc.message}")
        return
    seen: dict[str, str] = {}
    for local, target in _pairs(nodes, entries, f"{where}: {codes.name}"):
        if not isinstance(target, yaml.ScalarNode):
            nodes.error(target, f"{where}: {codes.name}: {local.value!r} must map to one code")
        elif str(target.value) not in codes.codes:
            allowed = ", ".join(sorted(codes.codes))
            nodes.error(
                target,
                f"{where}: {codes.name}: {local.value!r} maps to '{target.value}', "
                f"which is not a code of '{codes.name}' (allowed: {allowed})",
            )
        elif seen.get(key(local.value), target.value) != target.value:
            nodes.error(local, f"{where}: {codes.name}: {local.value!r} is mapped twice, to different codes")
        else:
            seen[key(local.value)] = str(target.value)
