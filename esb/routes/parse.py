"""Route files -> :class:`~esb.routes.model.Route`, collecting every error with its position."""

from __future__ import annotations

from pathlib import Path

import yaml

from esb.errors import ConfigError, LintError, Position
from esb.routes import model as m
from esb.yamlnodes import Nodes

STEP_KINDS = (
    "to", "wiretap", "multicast", "enrich", "transform", "validate", "filter",
    "choice", "set-header", "split", "log",
)  # fmt: skip
ERROR_STEP_KINDS = ("to", "transform", "set-header", "log", "reply", "ack")
ROUTE_KEYS = (
    "id", "description", "from", "steps", "on_error", "store", "concurrency",
    "max_pending", "enabled", "retention",
)  # fmt: skip
RETRY_KEYS = ("max_attempts", "delay", "multiplier", "max_delay")
VALIDATORS = ("xsd", "xpath", "python", "hl7v2")


class RouteParser:
    def __init__(self, file: str) -> None:
        self.n = Nodes(file)
        self.file = file

    @property
    def errors(self) -> list[ConfigError]:
        return self.n.errors

    def parse_text(self, text: str) -> m.Route | None:
        root = self.n.compose(text)
        if root is None:
            if not self.errors:
                self.n.errors.append(ConfigError("route file is empty", None))
            return None
        top = self.n.mapping(root, "route file", ["route"], ["route"])
        if "route" not in top:
            return None
        return self.route(top["route"][1])

    def route(self, node: yaml.Node) -> m.Route | None:
        keys = self.n.mapping(node, "route", ROUTE_KEYS, ["id", "from", "steps"])
        route_id = self.n.string(keys["id"][1], "route id") if "id" in keys else None
        stem = Path(self.file).stem
        if route_id is not None and route_id != stem:
            self.n.error(keys["id"][1], f"route id '{route_id}' must equal the file name '{stem}'")
        source = self.uri(keys["from"][1], "from") if "from" in keys else None
        steps = self.steps(keys["steps"][1], STEP_KINDS, "steps") if "steps" in keys else ()
        on_error: tuple[m.Step, ...] = ()
        retry = m.RetryPolicy()
        if "on_error" in keys:
            on_error, retry = self.on_error(keys["on_error"][1])
        opts: dict[str, object] = {}
        if "store" in keys:
            opts["store"] = self.n.choice(keys["store"][1], "store", ["full", "metadata", "none"])
        for name in ("concurrency", "max_pending"):
            if name in keys:
                opts[name] = self.n.integer(keys[name][1], name, minimum=1)
        if "enabled" in keys:
            opts["enabled"] = self.n.boolean(keys["enabled"][1], "enabled")
        if "retention" in keys:
            opts["retention"] = self.n.duration(keys["retention"][1], "retention")
        description = ""
        if "description" in keys:
            description = self.n.string(keys["description"][1], "description") or ""
        if route_id is None or source is None or self.errors:
            return None
        return m.Route(
            id=route_id,
            file=self.file,
            position=self.n.pos(node),
            source=source,
            steps=steps,
            on_error=on_error,
            description=description,
            retry=retry,
            **{k: v for k, v in opts.items() if v is not None},  # type: ignore[arg-type]
        )

    def uri(self, node: yaml.Node, what: str) -> m.Uri | None:
        text = self.n.string(node, what)
        if text is None:
            return None
        if ":" not in text:
            self.n.error(node, f"{what}: '{text}' is not an endpoint URI (e.g. file:///in)")
            return None
        # Point past an opening quote, so an option's column inside the URI is exact.
        quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
        return m.Uri(text, self.n.pos(node, 1 if quoted else 0))

    def steps(self, node: yaml.Node, kinds: tuple[str, ...], what: str) -> tuple[m.Step, ...]:
        out: list[m.Step] = []
        for item in self.n.sequence(node, what):
            step = self.step(item, kinds)
            if step is not None:
                out.append(step)
        return tuple(out)

    def step(self, node: yaml.Node, kinds: tuple[str, ...]) -> m.Step | None:
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            self.n.error(node, f"a step is a mapping with one key, one of: {', '.join(kinds)}")
            return None
        key_node, value = node.value[0]
        kind = str(key_node.value)
        if kind not in kinds:
            self.n.mapping(node, "step", kinds)  # reports 'unknown key' with a suggestion
            return None
        pos = self.n.pos(key_node)
        handler = getattr(self, "step_" + kind.replace("-", "_"))
        step: m.Step | None = handler(value, pos)
        return step

    # -- one method per step kind ------------------------------------------------

    def step_to(self, node: yaml.Node, pos: Position) -> m.Step | None:
        if isinstance(node, yaml.MappingNode):
            keys = self.n.mapping(node, "to", ["uri", "retry"], ["uri"])
            uri = self.uri(keys["uri"][1], "to") if "uri" in keys else None
            retry = self.retry(keys["retry"][1]) if "retry" in keys else None
            return m.ToStep(pos, uri, retry) if uri else None
        uri = self.uri(node, "to")
        return m.ToStep(pos, uri) if uri else None

    def step_wiretap(self, node: yaml.Node, pos: Position) -> m.Step | None:
        uri = self.uri(node, "wiretap")
        return m.WiretapStep(pos, uri) if uri else None

    def step_multicast(self, node: yaml.Node, pos: Position) -> m.Step | None:
        uris = [self.uri(n, "multicast") for n in self.n.sequence(node, "multicast")]
        if not uris:
            self.n.error(node, "multicast needs at least one URI")
        return m.MulticastStep(pos, tuple(u for u in uris if u))

    def step_enrich(self, node: yaml.Node, pos: Position) -> m.Step | None:
        if not isinstance(node, yaml.MappingNode):
            uri = self.uri(node, "enrich")
            return m.EnrichStep(pos, uri) if uri else None
        keys = self.n.mapping(node, "enrich", ["uri", "strategy"], ["uri"])
        uri = self.uri(keys["uri"][1], "enrich") if "uri" in keys else None
        strategy = self.n.string(keys["strategy"][1], "strategy") if "strategy" in keys else None
        return m.EnrichStep(pos, uri, strategy) if uri else None

    def step_transform(self, node: yaml.Node, pos: Position) -> m.Step | None:
        keys = self.n.mapping(node, "transform", ["xslt", "python", "params"])
        kinds = [k for k in ("xslt", "python") if k in keys]
        if len(kinds) != 1:
            self.n.error(node, "transform needs exactly one of 'xslt' or 'python'")
            return None
        target = self.n.string(keys[kinds[0]][1], kinds[0])
        params = self.n.string_map(keys["params"][1], "params") if "params" in keys else {}
        if target is None:
            return None
        return m.TransformStep(pos, kinds[0], target, params)

    def step_validate(self, node: yaml.Node, pos: Position) -> m.Step | None:
        keys = self.n.mapping(node, "validate", [*VALIDATORS, "profile", "namespaces"])
        kinds = [k for k in VALIDATORS if k in keys]
        if len(kinds) != 1:
            self.n.error(node, f"validate needs exactly one of {', '.join(VALIDATORS)}")
            return None
        target = self.n.string(keys[kinds[0]][1], kinds[0])
        options = {}
        if "profile" in keys:
            options["profile"] = self.n.string(keys["profile"][1], "profile") or ""
        if "namespaces" in keys:
            options.update({f"ns:{k}": v for k, v in self.n.string_map(keys["namespaces"][1], "ns").items()})
        return m.ValidateStep(pos, kinds[0], target, options) if target else None

    def predicate(self, node: yaml.Node, what: str) -> m.Predicate | None:
        keys = self.n.mapping(node, what, ["xpath", "python", "header", "equals", "matches", "namespaces"])
        kinds = [k for k in ("xpath", "python", "header") if k in keys]
        if len(kinds) != 1:
            self.n.error(node, f"{what} needs exactly one of xpath, python, header")
            return None
        kind = kinds[0]
        expression = self.n.string(keys[kind][1], kind)
        namespaces = {}
        if "namespaces" in keys:
            namespaces = self.n.string_map(keys["namespaces"][1], "namespaces")
        header_value, regex = None, False
        if kind == "header":
            if "equals" in keys:
                header_value = self.n.string(keys["equals"][1], "equals")
            elif "matches" in keys:
                header_value, regex = self.n.string(keys["matches"][1], "matches"), True
        elif "equals" in keys or "matches" in keys:
            self.n.error(node, f"{what}: 'equals'/'matches' go with 'header'")
        if expression is None:
            return None
        return m.Predicate(
            kind,
            expression,
            self.n.pos(keys[kind][1]),
            namespaces,
            header_value,
            regex,
        )

    def step_filter(self, node: yaml.Node, pos: Position) -> m.Step | None:
        predicate = self.predicate(node, "filter")
        return m.FilterStep(pos, predicate) if predicate else None

    def step_choice(self, node: yaml.Node, pos: Position) -> m.Step | None:
        whens: list[m.When] = []
        otherwise: tuple[m.Step, ...] = ()
        for item in self.n.sequence(node, "choice"):
            keys = self.n.mapping(item, "choice branch", ["when", "steps", "otherwise"])
            if "otherwise" in keys:
                otherwise = self.steps(keys["otherwise"][1], STEP_KINDS, "otherwise")
            elif "when" in keys:
                predicate = self.predicate(keys["when"][1], "when")
                if "steps" not in keys:
                    self.n.error(item, "choice branch: 'when' needs 'steps'")
                    continue
                steps = self.steps(keys["steps"][1], STEP_KINDS, "steps")
                if predicate:
                    whens.append(m.When(predicate, steps))
            else:
                self.n.error(item, "choice branch needs 'when' and 'steps', or 'otherwise'")
        if not whens:
            self.n.error(node, "choice needs at least one 'when' branch")
        return m.ChoiceStep(pos, tuple(whens), otherwise)

    def step_set_header(self, node: yaml.Node, pos: Position) -> m.Step | None:
        keys = self.n.mapping(node, "set-header", ["name", "value", "xpath", "python", "namespaces"], ["name"])
        sources = [k for k in ("value", "xpath", "python") if k in keys]
        if len(sources) != 1:
            self.n.error(node, "set-header needs exactly one of value, xpath, python")
            return None
        name = self.n.string(keys["name"][1], "name") if "name" in keys else None
        text = self.n.string(keys[sources[0]][1], sources[0])
        namespaces = {}
        if "namespaces" in keys:
            namespaces = self.n.string_map(keys["namespaces"][1], "namespaces")
        if name is None or text is None:
            return None
        return m.SetHeaderStep(pos, name, namespaces=namespaces, **{sources[0]: text})

    def step_split(self, node: yaml.Node, pos: Position) -> m.Step | None:
        keys = self.n.mapping(node, "split", ["xpath", "python", "steps", "namespaces"], ["steps"])
        kinds = [k for k in ("xpath", "python") if k in keys]
        if len(kinds) != 1:
            self.n.error(node, "split needs exactly one of xpath or python")
            return None
        expression = self.n.string(keys[kinds[0]][1], kinds[0])
        steps = self.steps(keys["steps"][1], STEP_KINDS, "steps") if "steps" in keys else ()
        namespaces = {}
        if "namespaces" in keys:
            namespaces = self.n.string_map(keys["namespaces"][1], "namespaces")
        if expression is None:
            return None
        return m.SplitStep(pos, kinds[0], expression, steps, namespaces)

    def step_log(self, node: yaml.Node, pos: Position) -> m.Step | None:
        if isinstance(node, yaml.ScalarNode):
            text = self.n.string(node, "log")
            return m.LogStep(pos, text) if text is not None else None
        keys = self.n.mapping(node, "log", ["message", "level"], ["message"])
        text = self.n.string(keys["message"][1], "message") if "message" in keys else None
        level: str | None = "info"
        if "level" in keys:
            level = self.n.choice(keys["level"][1], "level", ["debug", "info", "warning", "error"])
        return m.LogStep(pos, text, level) if text is not None and level else None  # type: ignore[arg-type]

    def step_reply(self, node: yaml.Node, pos: Position) -> m.Step | None:
        return m.ReplyStep(pos, self.n.string_map(node, "reply"))

    step_ack = step_reply

    def retry(self, node: yaml.Node) -> m.RetryPolicy | None:
        keys = self.n.mapping(node, "retry", RETRY_KEYS)
        values: dict[str, float] = {}
        if "max_attempts" in keys:
            attempts = self.n.integer(keys["max_attempts"][1], "max_attempts", minimum=1)
            if attempts is not None:
                values["max_attempts"] = attempts
        for name in ("delay", "max_delay"):
            if name in keys:
                seconds = self.n.duration(keys[name][1], name)
                if seconds is not None:
                    values[name] = seconds
        if "multiplier" in keys:
            text = self.n.string(keys["multiplier"][1], "multiplier")
            try:
                values["multiplier"] = float(text or "")
            except ValueError:
                self.n.error(keys["multiplier"][1], f"multiplier must be a number (got '{text}')")
        return m.RetryPolicy(**values)  # type: ignore[arg-type]

    def on_error(self, node: yaml.Node) -> tuple[tuple[m.Step, ...], m.RetryPolicy]:
        steps: list[m.Step] = []
        retry = m.RetryPolicy()
        for item in self.n.sequence(node, "on_error"):
            if isinstance(item, yaml.MappingNode) and len(item.value) == 1:
                key = str(item.value[0][0].value)
                if key == "retry":
                    retry = self.retry(item.value[0][1]) or retry
                    continue
            step = self.step(item, (*ERROR_STEP_KINDS, "retry"))
            if step is not None:
                steps.append(step)
        return tuple(steps), retry


def parse_route_file(path: Path) -> m.Route:
    """Parse one route file; raises :class:`LintError` with every problem found."""
    parser = RouteParser(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LintError([ConfigError(f"cannot read route file: {exc}")]) from None
    route = parser.parse_text(text)
    if parser.errors or route is None:
        # In file order, as an editor shows them (they are collected per key, not per line).
        errors = sorted(parser.errors, key=lambda e: (e.position.line, e.position.column) if e.position else (0, 0))
        raise LintError(errors or [ConfigError("no route in file")])
    return route
