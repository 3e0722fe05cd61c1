"""Rule engine core: the registry, violations, fixes, and the check/fix loops.

A rule is one small function registered with `@rule(id, rule_set, severity, rationale)`. It receives a
`Context` (the layout and its layer graph) and yields `Hit`s: the layer index, the message, and an
optional `Fix`. Rules are selected by rule-set name (`structural`, `nemotron-h`, `constraints`), by id
(`NH003`) or by id prefix (`NH`); `structural` and `constraints` are always on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from designer.layout import Layout, LayoutError

SEVERITIES = ("error", "warning", "info")
ALWAYS_ON = ("structural", "constraints")


@dataclass(frozen=True)
class Fix:
    """A pattern edit: `insert` symbol before layer, `set` layer to symbol, `delete` layer, `append` symbol."""

    op: str
    layer: int
    symbol: str | None = None
    description: str = ""

    def apply(self, layout: Layout) -> Layout:
        return layout.with_pattern(apply_edit(layout.pattern, self))


def apply_edit(pattern: str, fix: Fix) -> str:
    i, s = fix.layer, fix.symbol or ""
    if fix.op == "insert":
        return pattern[:i] + s + pattern[i:]
    if fix.op == "append":
        return pattern + s
    if fix.op == "set":
        return pattern[:i] + s + pattern[i + 1:]
    if fix.op == "delete":
        return pattern[:i] + pattern[i + 1:]
    raise ValueError(f"unknown fix op {fix.op!r}")


@dataclass(frozen=True)
class Hit:
    layer: int | None
    message: str
    fix: Fix | None = None


@dataclass(frozen=True)
class Violation:
    rule: str
    severity: str
    layer: int | None
    message: str
    rationale: str
    fix: Fix | None = None

    def to_dict(self) -> dict:
        return {"rule": self.rule, "severity": self.severity, "layer": self.layer, "message": self.message,
                "rationale": self.rationale, "fix": self.fix.description if self.fix else None}


@dataclass(frozen=True)
class Rule:
    id: str
    rule_set: str
    severity: str
    title: str
    rationale: str
    check: Callable[["Context"], Iterable[Hit]]


RULES: dict[str, Rule] = {}


def rule(id: str, rule_set: str, severity: str, title: str, rationale: str):
    """Register a rule function. `title` is the one-line name; `rationale` says why the rule exists."""
    assert severity in SEVERITIES, severity

    def register(fn: Callable[["Context"], Iterable[Hit]]):
        if id in RULES:
            raise ValueError(f"duplicate rule id {id}")
        RULES[id] = Rule(id, rule_set, severity, title, rationale, fn)
        return fn

    return register


def rule_sets() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in RULES.values():
        out.setdefault(r.rule_set, []).append(r.id)
    return out


@dataclass
class Context:
    layout: Layout
    _graph: object = field(default=None, repr=False)

    @property
    def graph(self):
        """The layer graph (networkx), built on first use."""
        if self._graph is None:
            from designer.rules.graph import layer_graph
            self._graph = layer_graph(self.layout)
        return self._graph


def select(selectors: Iterable[str] | None, layout: Layout | None = None) -> list[Rule]:
    """Rules for the given selectors (rule-set names, ids or id prefixes) plus the always-on sets.

    With no selectors, the layout's own `rules:` list is used."""
    chosen = list(selectors) if selectors else list(layout.rules if layout else ())
    known_sets = rule_sets()
    picked: dict[str, Rule] = {rid: r for rid, r in RULES.items() if r.rule_set in ALWAYS_ON}
    for sel in chosen:
        sel = sel.strip()
        if not sel:
            continue
        if sel in known_sets:
            picked.update({rid: RULES[rid] for rid in known_sets[sel]})
            continue
        by_id = {rid: r for rid, r in RULES.items() if rid == sel.upper() or rid.startswith(sel.upper())}
        if not by_id:
            import difflib
            names = list(known_sets) + list(RULES)
            close = difflib.get_close_matches(sel, names, n=1)
            raise LayoutError(f"unknown rule set or rule id {sel!r}" + (f" (did you mean '{close[0]}'?)" if close
                              else "") + f"; rule sets: {', '.join(known_sets)}",
                              key="--rules" if selectors else "rules")
        picked.update(by_id)
    return sorted(picked.values(), key=lambda r: r.id)


def check(layout: Layout, rule_sets: Iterable[str] | None = None) -> list[Violation]:
    """Every violation of the selected rules, errors first, then by layer."""
    from designer.rules import load_all
    load_all()
    ctx = Context(layout)
    out: list[Violation] = []
    for r in select(rule_sets, layout):
        for hit in r.check(ctx):
            out.append(Violation(r.id, r.severity, hit.layer, hit.message, r.rationale, hit.fix))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda v: (order[v.severity], v.layer if v.layer is not None else -1, v.rule))
    return out


def has_errors(violations: Iterable[Violation]) -> bool:
    return any(v.severity == "error" for v in violations)


def fix_all(layout: Layout, rule_sets: Iterable[str] | None = None, *, max_steps: int = 256,
            severities: tuple[str, ...] = ("error", "warning")) -> tuple[Layout, list[str], list[Violation]]:
    """Apply fixes one at a time (errors first), re-validating after each, until none applies.

    Returns the new layout, a description of each change, and the violations that remain. A fix whose result
    would not be a valid layout (a symbol whose config block the layout lacks) is not applied; its violation
    remains."""
    rule_sets = list(rule_sets) if rule_sets else list(layout.rules)
    changes: list[str] = []
    for _ in range(max_steps):
        violations = check(layout, rule_sets)
        for v in violations:
            if v.fix is None or v.severity not in severities:
                continue
            try:
                layout = v.fix.apply(layout)
            except LayoutError:
                continue
            changes.append(f"{v.rule}: {v.fix.description}")
            break
        else:
            return layout, changes, violations
    return layout, changes, check(layout, rule_sets)


def violations_to_json(layout: Layout, violations: list[Violation]) -> dict:
    return {"layout": layout.name, "ok": not has_errors(violations),
            "violations": [v.to_dict() for v in violations]}
