"""The search: candidates from a space, scored in bulk, filtered by rules and budgets, reduced to the
Pareto front; the front's best points placed (integer program or generator), validated and re-checked with
the profiler's own numbers.

    result = run_search(base, space, assumptions, budgets, objectives=("throughput", "params"))
    result.to_dict()        # what `designer search --json` prints

Methods (reported as `method`): `enumerate` scores every candidate of the space (vectorised, chunked);
`nsga2` runs Optuna's NSGA-II multi-objective sampler when the space is too large to enumerate, scoring each
generation in one vectorised call; in prune mode every emitted candidate's kept layers come from an exact
integer program (`place.keep_layers`, PuLP/CBC), in fresh mode from `place.interleave`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from designer.layout import ATTENTION, MAMBA, MLP, MOE, SYMBOLS, Layout, LayoutError
from designer.search import place
from designer.search.assumptions import Assumptions, evaluate
from designer.search.importance import best_retained
from designer.search.pareto import dominated_by, pareto_mask
from designer.search.space import KINDS, SearchSpace, apply_widths
from designer.search.vector import VectorScorer

# name -> (metric key, +1 maximise / -1 minimise)
OBJECTIVES: dict[str, tuple[str, int]] = {
    "throughput": ("throughput_tokens_per_s", +1),
    "memory": ("memory_bytes", -1),
    "params": ("params", +1),
    "importance": ("importance", +1),
    "ttft": ("ttft_s", -1),
    "tpot": ("tpot_s", -1),
}
DEFAULT_OBJECTIVES = ("throughput", "params")
CHUNK = 262_144
Progress = Callable[[str, int, int], None]


def parse_objectives(text: "str | Sequence[str]", *, have_importance: bool = False) -> tuple[tuple[str, int], ...]:
    """'throughput,params' or 'throughput,params:min' -> ((name, direction), ...)."""
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not items:
        raise LayoutError(f"no objective given; choose from {', '.join(OBJECTIVES)}", key="objective")
    out = []
    for item in items:
        name, _, sense = item.partition(":")
        if name not in OBJECTIVES:
            import difflib
            close = difflib.get_close_matches(name, OBJECTIVES, n=1)
            raise LayoutError(f"unknown objective {name!r}" + (f" (did you mean '{close[0]}'?)" if close else "")
                              + f"; choose from {', '.join(OBJECTIVES)} (optionally :max or :min)", key="objective")
        if sense not in ("", "max", "min"):
            raise LayoutError(f"objective {item!r}: direction must be :max or :min", key="objective")
        if name == "importance" and not have_importance:
            raise LayoutError("objective 'importance' needs --importance FILE (per-layer scores)", key="objective")
        direction = OBJECTIVES[name][1] if not sense else (1 if sense == "max" else -1)
        if any(n == name for n, _ in out):
            raise LayoutError(f"objective {name!r} given twice", key="objective")
        out.append((name, direction))
    return tuple(out)


@dataclass(frozen=True)
class Budgets:
    max_memory_bytes: float | None = None     # None: the GPU's memory x 0.9 (the profiler's usable share)
    max_params: float | None = None
    min_params: float | None = None
    min_throughput: float | None = None       # output tokens/s
    max_ttft_s: float | None = None
    max_tpot_s: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"max_memory_bytes": self.max_memory_bytes, "max_params": self.max_params,
                "min_params": self.min_params, "min_throughput_tokens_per_s": self.min_throughput,
                "max_ttft_s": self.max_ttft_s, "max_tpot_s": self.max_tpot_s}

    def violations(self, m: dict[str, float]) -> list[str]:
        """What a candidate's numbers break (empty: within every budget)."""
        out = []
        if self.max_memory_bytes is not None and m["memory_bytes"] > self.max_memory_bytes:
            out.append(f"memory {m['memory_bytes'] / 2**30:.2f} GiB > {self.max_memory_bytes / 2**30:.2f} GiB")
        if self.max_params is not None and m["params"] > self.max_params:
            out.append(f"params {m['params'] / 1e9:.2f}B > {self.max_params / 1e9:.2f}B")
        if self.min_params is not None and m["params"] < self.min_params:
            out.append(f"params {m['params'] / 1e9:.2f}B < {self.min_params / 1e9:.2f}B")
        if self.min_throughput is not None and m["throughput_tokens_per_s"] < self.min_throughput:
            out.append(f"throughput {m['throughput_tokens_per_s']:.4g} < {self.min_throughput:.4g} tokens/s")
        if self.max_ttft_s is not None and m["ttft_s"] > self.max_ttft_s:
            out.append(f"TTFT {m['ttft_s']:.4g} s > {self.max_ttft_s:.4g} s")
        if self.max_tpot_s is not None and m["tpot_s"] > self.max_tpot_s:
            out.append(f"TPOT {m['tpot_s']:.4g} s > {self.max_tpot_s:.4g} s")
        return out

    def excess(self, s: dict[str, np.ndarray]) -> np.ndarray:
        """Largest relative budget overshoot per candidate (0 = within every budget): a graded constraint for
        the evolutionary search."""
        out = np.zeros(len(s["params"]))
        for limit, key, upper in ((self.max_memory_bytes, "memory_bytes", True), (self.max_params, "params", True),
                                  (self.min_params, "params", False),
                                  (self.min_throughput, "throughput_tokens_per_s", False),
                                  (self.max_ttft_s, "ttft_s", True), (self.max_tpot_s, "tpot_s", True)):
            if limit is not None:
                over = (s[key] - limit) / limit if upper else (limit - s[key]) / limit
                out = np.maximum(out, over)
        return out

    def mask(self, s: dict[str, np.ndarray]) -> np.ndarray:
        ok = np.ones(len(s["params"]), dtype=bool)
        if self.max_memory_bytes is not None:
            ok &= s["memory_bytes"] <= self.max_memory_bytes
        if self.max_params is not None:
            ok &= s["params"] <= self.max_params
        if self.min_params is not None:
            ok &= s["params"] >= self.min_params
        if self.min_throughput is not None:
            ok &= s["throughput_tokens_per_s"] >= self.min_throughput
        if self.max_ttft_s is not None:
            ok &= s["ttft_s"] <= self.max_ttft_s
        if self.max_tpot_s is not None:
            ok &= s["tpot_s"] <= self.max_tpot_s
        return ok


@dataclass
class Candidate:
    layout: Layout
    metrics: dict[str, float]           # the reference numbers (profile() + documented adjustments)
    importance: float | None = None
    warnings: list[str] = field(default_factory=list)
    file: str | None = None
    kept: list[int] | None = None        # prune mode: indices of the base layers kept
    greedy: dict[str, Any] | None = None  # with importance: the greedy choice of the same counts, for comparison

    def row(self) -> dict[str, Any]:
        lay, m = self.layout, self.metrics
        return {"file": self.file, "name": lay.name, "pattern": lay.pattern, "layers": lay.num_layers,
                "attention_layers": lay.count(ATTENTION), "mamba_layers": lay.count(MAMBA),
                "ffn_layers": lay.count(MLP) + lay.count(MOE), "mlp_intermediate_size":
                lay.mlp.intermediate_size if lay.mlp else None, "mamba_heads": lay.mamba.num_heads if lay.mamba else None,
                "params": int(m["params"]), "active_params": int(m["active_params"]),
                "memory_bytes": m["memory_bytes"], "weights_bytes": m["weights_bytes"],
                "kv_cache_bytes": m["kv_cache_bytes"], "state_bytes": m["state_bytes"],
                "activation_bytes": m["activation_bytes"], "throughput_tokens_per_s": m["throughput_tokens_per_s"],
                "ttft_s": m["ttft_s"], "tpot_s": m["tpot_s"], "importance": self.importance,
                "kept_base_layers": self.kept, "greedy": self.greedy,
                "warnings": list(self.warnings)}


@dataclass
class SearchResult:
    base: Candidate
    assumptions: Assumptions
    budgets: Budgets
    objectives: tuple[tuple[str, int], ...]
    space: SearchSpace
    method: str
    evaluated: int
    feasible: int
    seconds: float
    search_seconds: float
    front: list[Candidate]
    front_size: int
    front_points: dict[str, list[float]]            # the whole front's objective values (for the report)
    cloud: dict[str, list[float]]                   # a sample of feasible candidates (for the report)
    references: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    strict: bool = False

    @property
    def candidates_per_s(self) -> float:
        return self.evaluated / self.search_seconds if self.search_seconds > 0 else float("inf")

    def to_dict(self, *, plot_data: bool = False) -> dict[str, Any]:
        """The `--json` document; `plot_data` adds a sample of feasible candidates (`cloud`) for the figures."""
        out = {
            "base": self.base.layout.name,
            "assumptions": {**self.assumptions.to_dict(), "sentences": self.assumptions.sentences()},
            "budgets": self.budgets.to_dict(),
            "objectives": [{"name": n, "direction": "max" if d > 0 else "min"} for n, d in self.objectives],
            "rules": self.rules,
            "strict": self.strict,
            "space": self.space.to_dict(),
            "method": self.method,
            "placement": ("integer program (PuLP/CBC): which base layers to keep" if self.space.mode == "prune"
                          else "generator: attention spread evenly, Mamba/FFN alternating"),
            "evaluated": self.evaluated,
            "feasible": self.feasible,
            "candidates_per_s": self.candidates_per_s,
            "seconds": self.seconds,
            "front_size": self.front_size,
            "front": [c.row() for c in self.front],
            "base_metrics": self.base.row(),
            "references": self.references,
            "rejected": self.rejected,
            "front_points": self.front_points,
        }
        if plot_data:
            out["cloud"] = self.cloud
        return out


# --------------------------------------------------------------------------------------------------


def _structure_mask(counts: np.ndarray, space: SearchSpace, rule_ids: set[str], base: Layout,
                    usable: np.ndarray, strict: bool = False) -> np.ndarray:
    """Count-level rules and constraints every placement needs (the integer program enforces the rest)."""
    m, a, f, e = (counts[:, KINDS.index(s)] for s in (MAMBA, ATTENTION, MLP, MOE))
    total = counts.sum(axis=1)
    ok = (total >= 1) & np.all((counts == 0) | usable, axis=1)
    if "NH001" in rule_ids:
        ok &= m >= 1
    if "NH002" in rule_ids:
        ok &= (f + e) >= 1
    if "NH003" in rule_ids:
        ok &= (f + e) >= a
    c = base.constraints
    if strict and "NH004" in rule_ids:        # attention share near the target (a warning, enforced when strict)
        ok &= np.abs(a / np.maximum(total, 1) - c.attention_fraction) <= c.attention_fraction_tolerance + 1e-12
    if strict and "NH006" in rule_ids:        # Mamba and FFN counts within one
        ok &= np.abs(m - (f + e)) <= 1
    if space.layers is not None:
        ok &= (total >= space.layers[0]) & (total <= space.layers[1])
    if c.min_attention_layers is not None:
        ok &= a >= c.min_attention_layers
    if c.max_attention_layers is not None:
        ok &= a <= c.max_attention_layers
    if c.min_layers is not None:
        ok &= total >= c.min_layers
    if c.max_layers is not None:
        ok &= total <= c.max_layers
    return ok


def _objective_matrix(s: dict[str, np.ndarray], objectives) -> np.ndarray:
    return np.stack([d * s[OBJECTIVES[n][0]] for n, d in objectives], axis=1)


def _enumerate(space: SearchSpace):
    """Yield (counts, variant) chunks covering the whole space."""
    ranges = space.count_ranges()
    sizes = [len(r) for r in ranges] + [space.num_variants]
    total = math.prod(sizes)
    starts = [r.start for r in ranges]
    for lo in range(0, total, CHUNK):
        idx = np.arange(lo, min(total, lo + CHUNK))
        digits = np.unravel_index(idx, sizes)
        counts = np.stack([digits[k] + starts[k] for k in range(len(ranges))], axis=1)
        yield counts, digits[-1]


def run_search(base: Layout, space: SearchSpace, assumptions: Assumptions, budgets: Budgets,
               objectives: Sequence[tuple[str, int]] = (("throughput", 1), ("params", 1)), *,
               rules: Sequence[str] | None = None, importance: np.ndarray | None = None, top: int = 20,
               references: Sequence[Layout] = (), progress: Progress | None = None,
               strict: bool = False) -> SearchResult:
    from designer.rules import load_all
    from designer.rules.engine import select
    load_all()
    t_start = time.perf_counter()
    progress = progress or (lambda stage, done, total: None)
    objectives = tuple(objectives)
    if importance is not None and space.mode != "prune":
        raise LayoutError("importance scores rank the base's layers: they need mode: prune", key="importance")
    selectors = list(rules) if rules else list(base.rules)
    rule_ids = {r.id for r in select(selectors, base)}
    if budgets.max_memory_bytes is None:
        from designer.profile.hardware import load_hardware
        from designer.profile.scenario import Scenario
        usable = Scenario().memory_utilization          # the profiler's usable share, defined once
        budgets = Budgets(**{**budgets.__dict__, "max_memory_bytes": load_hardware(assumptions.hardware).memory_bytes
                             * usable})

    variants = space.variants()
    progress("prepare", 0, len(variants))
    scorer = VectorScorer(variants, assumptions)
    usable = scorer.usable_kinds()
    progress("prepare", len(variants), len(variants))
    best_imp = best_retained(base, importance, KINDS) if importance is not None else None

    def score(counts: np.ndarray, variant: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        s = scorer.score(counts, variant)
        if best_imp is not None:
            s["importance"] = sum(best_imp[k][np.minimum(counts[:, k], len(best_imp[k]) - 1)]
                                  for k in range(len(KINDS)))
        ok = _structure_mask(counts, space, rule_ids, base, usable[variant], strict) & budgets.mask(s)
        c = base.constraints
        if c.max_params is not None:
            ok &= s["params"] <= c.max_params
        if c.max_active_params is not None:
            ok &= s["active_params"] <= c.max_active_params
        return s, ok

    method = space.chosen_method()
    kept_counts, kept_variant, kept_scores = [], [], []
    evaluated = 0
    t_search = time.perf_counter()
    if method == "enumerate":
        total = space.size
        for counts, variant in _enumerate(space):
            s, ok = score(counts, variant)
            evaluated += len(counts)
            if ok.any():
                kept_counts.append(counts[ok])
                kept_variant.append(variant[ok])
                kept_scores.append({k: v[ok] for k, v in s.items()})
            progress("search", evaluated, total)
    elif method == "optuna":
        evaluated = _optuna_nsga2(space, objectives, score, kept_counts, kept_variant, kept_scores, progress)
    else:
        evaluated = _pymoo_nsga2(space, objectives, score, budgets, kept_counts, kept_variant, kept_scores, progress)
    search_seconds = time.perf_counter() - t_search

    if kept_counts:
        counts = np.concatenate(kept_counts)
        variant = np.concatenate(kept_variant)
        scores = {k: np.concatenate([s[k] for s in kept_scores]) for k in kept_scores[0]}
    else:
        counts, variant, scores = np.zeros((0, len(KINDS)), int), np.zeros(0, int), {}
    feasible = len(counts)

    base_metrics = evaluate(base, assumptions).to_dict()
    base_cand = Candidate(base, base_metrics, importance=1.0 if importance is not None else None)
    if not feasible:
        return SearchResult(base_cand, assumptions, budgets, objectives, space, method, evaluated, 0,
                            time.perf_counter() - t_start, search_seconds, [], 0, {}, {},
                            _references(references, assumptions, budgets, objectives, None, base_metrics),
                            ["no candidate meets the rules and budgets"], sorted(rule_ids), strict)

    obj = _objective_matrix(scores, objectives)
    front_idx = np.flatnonzero(pareto_mask(obj))
    # walk the front from the best of the first objective; emit `top` points spread along it
    front_idx = front_idx[np.argsort(-obj[front_idx, 0], kind="stable")]
    emitted: list[Candidate] = []
    rejected: list[str] = []
    wanted = _spread(len(front_idx), top)
    # the spread points first; a point the rules or the re-check reject is replaced by the next unused one
    queue = wanted + [i for i in range(len(front_idx)) if i not in set(wanted)]
    for attempt, pos in enumerate(queue):
        if len(emitted) >= top or attempt >= 5 * top:
            break
        i = front_idx[pos]
        progress("place", min(len(emitted), top), top)
        cand, why = _materialise(base, space, variant[i], counts[i], rule_ids, importance, assumptions, budgets,
                                 len(emitted) + 1, selectors, strict)
        if cand is None:
            rejected.append(why)
            continue
        emitted.append(cand)
    progress("place", top, top)
    # emitted order: along the front by the first objective
    emitted.sort(key=lambda c: -objectives[0][1] * _metric(c, objectives[0][0]))
    front_points = {OBJECTIVES[n][0]: scores[OBJECTIVES[n][0]][front_idx].tolist() for n, _ in objectives}
    for key in ("params", "memory_bytes", "throughput_tokens_per_s"):
        front_points.setdefault(key, scores[key][front_idx].tolist())
    front_points["attention_layers"] = counts[front_idx, KINDS.index(ATTENTION)].tolist()
    rng = np.random.default_rng(0)
    sample = rng.choice(feasible, size=min(feasible, 4000), replace=False)
    cloud = {k: scores[k][sample].tolist() for k in ("params", "memory_bytes", "throughput_tokens_per_s")}
    cloud["attention_layers"] = counts[sample, KINDS.index(ATTENTION)].tolist()
    refs = _references(references, assumptions, budgets, objectives, (obj[front_idx], front_idx, scores), base_metrics)
    return SearchResult(base_cand, assumptions, budgets, objectives, space, method, evaluated, feasible,
                        time.perf_counter() - t_start, search_seconds, emitted, len(front_idx), front_points, cloud,
                        refs, rejected, sorted(rule_ids), strict)


def _metric(c: Candidate, name: str) -> float:
    return c.importance if name == "importance" else c.metrics[OBJECTIVES[name][0]]


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over 0..n-1, both ends included (all of them when k >= n)."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [0]
    return sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})


def _materialise(base: Layout, space: SearchSpace, variant: int, counts: np.ndarray, rule_ids: set[str],
                 importance, assumptions: Assumptions, budgets: Budgets, rank: int,
                 selectors: list[str], strict: bool = False) -> tuple[Candidate | None, str]:
    from designer.rules.engine import check
    want = {s: int(counts[k]) for k, s in enumerate(KINDS) if counts[k]}
    values = space.variant_values()[int(variant)]
    lay = apply_widths(base, values)
    imp_value, keep, greedy = None, None, None
    if space.mode == "prune":
        keep = place.keep_layers(base.pattern, want, importance, rule_ids=rule_ids,
                                 max_consecutive=dict(base.constraints.max_consecutive))
        if keep is None:
            return None, f"{_describe(want, values)}: no choice of layers satisfies the rules"
        pattern = place.kept_pattern(base, keep)
        if importance is not None:
            imp_value = float(importance[keep].sum() / importance.sum())
            greedy = greedy_same_counts(base.pattern, want, importance, rule_ids,
                                        dict(base.constraints.max_consecutive))
    else:
        pattern = place.interleave(want)
    tag = f"{pattern.count(ATTENTION)}a{len(pattern)}l"
    lay = lay.replace(name=f"{base.name}-search-{rank:02d}-{tag}", pattern=pattern,
                      source=f"designer search from {base.name} ({space.mode}): {_describe(want, values)}")
    violations = check(lay, selectors)
    failing = [v for v in violations if v.severity == "error" or (strict and v.severity == "warning")]
    if failing:
        first = failing[0]
        return None, f"{_describe(want, values)}: {first.rule} {first.message}"
    m = evaluate(lay, assumptions).to_dict()
    broken = budgets.violations(m)
    if broken:            # the vectorised score and the profiler disagree: never emit it, say so
        return None, f"{_describe(want, values)}: profiler re-check failed: {'; '.join(broken)}"
    warnings = [f"{v.rule}: {v.message}" for v in violations if v.severity == "warning"]
    return Candidate(lay, m, imp_value, warnings, kept=keep, greedy=greedy), ""


def greedy_same_counts(base_pattern: str, want: dict[str, int], importance: np.ndarray,
                       rule_ids: set[str], max_consecutive: dict[str, int] | None = None) -> dict[str, Any]:
    """The greedy answer to the question the integer program solved exactly (keep `want` layers of each kind):
    drop the least important layer the rules allow until the counts are met (place.greedy_drop)."""
    keep = place.greedy_drop(base_pattern, importance, tuple(rule_ids),
                             done=lambda k: place.counts_of(base_pattern, k) == {s: want.get(s, 0)
                                                                                for s in dict.fromkeys(base_pattern)},
                             may_drop=lambda kind, left: left[kind] > want.get(kind, 0),
                             max_consecutive=max_consecutive)
    if keep is None:
        return {"keep": None, "pattern": None, "importance": None,
                "note": "greedy gets stuck: every remaining drop would break a placement rule"}
    return {"keep": keep, "pattern": "".join(base_pattern[i] for i in keep),
            "importance": float(importance[keep].sum() / importance.sum())}


def _describe(counts: dict[str, int], values: dict[str, int]) -> str:
    parts = [f"{n} {SYMBOLS[s]}" for s, n in counts.items()]
    parts += [f"{k}={v}" for k, v in values.items()]
    return ", ".join(parts)


def _references(refs: Sequence[Layout], assumptions: Assumptions, budgets: Budgets, objectives, front,
                base_metrics: dict[str, float]) -> list[dict[str, Any]]:
    """Where each reference layout (e.g. the released 47B) sits: its numbers, whether it meets the budgets,
    whether a front point dominates it, the front's best throughput at >= its parameters, speed-up over base."""
    out = []
    for lay in refs:
        m = evaluate(lay, assumptions).to_dict()
        row: dict[str, Any] = {"name": lay.name, "layers": lay.num_layers, "attention_layers": lay.count(ATTENTION),
                               "params": m["params"], "memory_bytes": m["memory_bytes"],
                               "throughput_tokens_per_s": m["throughput_tokens_per_s"], "ttft_s": m["ttft_s"],
                               "tpot_s": m["tpot_s"], "meets_budgets": not budgets.violations(m),
                               "budget_violations": budgets.violations(m),
                               "speedup_vs_base": m["throughput_tokens_per_s"] / base_metrics["throughput_tokens_per_s"]}
        if front is not None and all(n != "importance" for n, _ in objectives):
            fobj, fidx, scores = front
            point = np.array([d * m[OBJECTIVES[n][0]] for n, d in objectives])
            dom = dominated_by(fobj, point)
            row["dominated_by_front_points"] = int(dom.sum())
            at_least = scores["params"][fidx] >= m["params"]
            if at_least.any():
                best = float(scores["throughput_tokens_per_s"][fidx][at_least].max())
                row["front_best_throughput_at_or_above_its_params"] = best
                row["throughput_vs_front"] = m["throughput_tokens_per_s"] / best
            fit = scores["throughput_tokens_per_s"][fidx] >= m["throughput_tokens_per_s"]
            if fit.any():
                row["front_most_params_at_or_above_its_throughput"] = float(scores["params"][fidx][fit].max())
        out.append(row)
    return out


def _pymoo_nsga2(space: SearchSpace, objectives, score, budgets: Budgets, kept_counts, kept_variant, kept_scores,
                 progress) -> int:
    """pymoo's NSGA-II over the integer count and width-variant variables: each generation is scored in one
    vectorised call; the constraint is graded (relative budget overshoot, +1 for a rule failure)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.callback import Callback
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    ranges = space.count_ranges()
    lo = np.array([r.start for r in ranges] + [0])
    hi = np.array([r.stop - 1 for r in ranges] + [space.num_variants - 1])
    state = {"evaluated": 0}

    class Layouts(Problem):
        def __init__(self):
            super().__init__(n_var=len(lo), n_obj=len(objectives), n_ieq_constr=1, xl=lo, xu=hi, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            X = np.clip(np.round(X).astype(np.int64), lo, hi)
            counts, variant = X[:, :-1], X[:, -1]
            s, ok = score(counts, variant)
            out["F"] = np.stack([-d * s[OBJECTIVES[n][0]] for n, d in objectives], axis=1)
            out["G"] = np.where(ok, -1.0, np.maximum(budgets.excess(s), 0.0) + 1.0)[:, None]
            state["evaluated"] += len(X)
            if ok.any():
                kept_counts.append(counts[ok])
                kept_variant.append(variant[ok])
                kept_scores.append({k: v[ok] for k, v in s.items()})

    class Report(Callback):
        def notify(self, algorithm):
            progress("search", min(state["evaluated"], space.trials), space.trials)

    algorithm = NSGA2(pop_size=space.population, sampling=IntegerRandomSampling(),
                      crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                      mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    minimize(Layouts(), algorithm, ("n_eval", space.trials), seed=space.seed, verbose=False, callback=Report())
    progress("search", space.trials, space.trials)
    return state["evaluated"]


def _optuna_nsga2(space: SearchSpace, objectives, score, kept_counts, kept_variant, kept_scores, progress) -> int:
    """Optuna NSGA-II over the count and width variables; each generation scored in one vectorised call
    (Optuna's per-trial bookkeeping, not the scoring, limits this to ~100 candidates/s)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ranges = space.count_ranges()
    nv = space.num_variants
    sampler = optuna.samplers.NSGAIISampler(population_size=space.population, seed=space.seed)
    study = optuna.create_study(directions=["maximize" if d > 0 else "minimize" for _, d in objectives],
                                sampler=sampler)
    evaluated = 0
    total = space.trials
    while evaluated < total:
        batch = min(space.population, total - evaluated)
        trials = [study.ask() for _ in range(batch)]
        counts = np.array([[t.suggest_int(f"n_{KINDS.index(s)}", r.start, r.stop - 1) if len(r) > 1 else r.start
                            for s, r in zip(KINDS, ranges)] for t in trials])
        variant = np.array([t.suggest_int("variant", 0, nv - 1) if nv > 1 else 0 for t in trials])
        s, ok = score(counts, variant)
        for j, t in enumerate(trials):
            t.set_constraint("rules_and_budgets", 0.0 if ok[j] else 1.0)      # <= 0: feasible
            study.tell(t, [float(s[OBJECTIVES[n][0]][j]) for n, _ in objectives])
        evaluated += batch
        if ok.any():
            kept_counts.append(counts[ok])
            kept_variant.append(variant[ok])
            kept_scores.append({k: v[ok] for k, v in s.items()})
        progress("search", evaluated, total)
    return evaluated
