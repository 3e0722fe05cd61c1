"""The search space: how many layers of each kind to keep, and which block widths to try.

Two modes:
- `prune` (default): candidates are subsets of the base layout's layers (MiniPuzzle-style depth pruning)
  with optionally narrower blocks. `keep` bounds how many layers of each kind survive (default: half to all
  of the base's); which ones survive is chosen by an exact integer program (`designer.search.place`).
- `fresh`: candidates are new Nemotron-style stacks (attention spread evenly, each followed by an FFN, the
  rest alternating Mamba and FFN) with `counts` layers of each kind; the base supplies the block configs.

Widths are dotted paths into the layout (`mlp.intermediate_size`, `mamba.num_heads`, `moe.num_experts`,
`moe.top_k`, `moe.intermediate_size`, `attention.num_kv_heads`, `hidden_size`), each a list of values or
`{min, max, step}`. The space YAML (every key optional):

    mode: prune                   # prune | fresh
    keep: {M: [40, 54], "*": [1, 5], "-": [40, 54]}     # prune: [min, max] layers kept per kind
    counts: {M: [20, 30], "*": [2, 4], "-": [20, 30]}   # fresh: [min, max] layers per kind
    layers: [80, 118]             # total depth bounds
    widths:
      mlp.intermediate_size: {min: 24576, max: 32768, step: 2048}
      mamba.num_heads: [224, 240, 256]
    method: auto                  # auto | enumerate | nsga2 (pymoo) | optuna (Optuna's NSGA-II)
    max_enumerate: 2000000        # auto enumerates up to this many candidates, else NSGA-II
    trials: 20000                 # NSGA-II evaluations
    seed: 0
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designer.layout import (ATTENTION, MAMBA, MLP, MOE, SYMBOLS, Layout, LayoutError, layout_from_dict,
                             layout_to_dict, parse_yaml_text)

MODES = ("prune", "fresh")
METHODS = ("auto", "enumerate", "nsga2", "optuna")
WIDTH_PATHS = ("hidden_size", "mlp.intermediate_size", "mamba.num_heads", "mamba.head_dim", "mamba.state_size",
               "attention.num_heads", "attention.num_kv_heads", "moe.num_experts", "moe.top_k",
               "moe.intermediate_size", "moe.shared_intermediate_size")
SPACE_KEYS = ("mode", "keep", "counts", "layers", "widths", "method", "max_enumerate", "trials", "seed",
              "population")
KINDS = tuple(SYMBOLS)                  # M * - E: the column order of every count array
MAX_VARIANTS = 20000


@dataclass(frozen=True)
class SearchSpace:
    base: Layout
    mode: str = "prune"
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)   # symbol -> (min, max), inclusive
    layers: tuple[int, int] | None = None
    widths: dict[str, tuple[int, ...]] = field(default_factory=dict)   # dotted path -> values
    method: str = "auto"
    max_enumerate: int = 2_000_000
    trials: int = 20000
    population: int = 200
    seed: int = 0
    source: str = "derived from the base"

    # ---- size ---------------------------------------------------------------------------------------
    def count_ranges(self) -> list[range]:
        return [range(self.counts[s][0], self.counts[s][1] + 1) if s in self.counts else range(0, 1) for s in KINDS]

    @property
    def num_variants(self) -> int:
        return math.prod(len(v) for v in self.widths.values()) if self.widths else 1

    @property
    def size(self) -> int:
        """Candidates before any filtering: the product of every count range and width list."""
        return math.prod(len(r) for r in self.count_ranges()) * self.num_variants

    def chosen_method(self) -> str:
        if self.method != "auto":
            return self.method
        return "enumerate" if self.size <= self.max_enumerate else "nsga2"

    # ---- width variants -----------------------------------------------------------------------------
    def variant_values(self) -> list[dict[str, int]]:
        """Every combination of width values, in a fixed order (index = variant id)."""
        if not self.widths:
            return [{}]
        keys = list(self.widths)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.widths[k] for k in keys))]

    def variants(self) -> list[Layout]:
        return [apply_widths(self.base, v) for v in self.variant_values()]

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "source": self.source,
                ("keep" if self.mode == "prune" else "counts"): {s: list(r) for s, r in self.counts.items()},
                "layers": list(self.layers) if self.layers else None,
                "widths": {k: list(v) for k, v in self.widths.items()}, "method": self.method,
                "max_enumerate": self.max_enumerate, "trials": self.trials, "population": self.population,
                "seed": self.seed, "size": self.size}


def apply_widths(base: Layout, values: dict[str, int]) -> Layout:
    """The base with the given width values (dotted paths); the layout's name is unchanged."""
    lay = base
    for path, value in values.items():
        if "." not in path:
            lay = dataclasses.replace(lay, **{path: value})
            continue
        block, attr = path.split(".", 1)
        cfg = getattr(lay, block)
        lay = dataclasses.replace(lay, **{block: dataclasses.replace(cfg, **{attr: value})})
    return lay


def _err(message: str, source: str | None, key: str) -> LayoutError:
    return LayoutError(message, source=source, key=key)


def _int(value: Any, source: str | None, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _err(f"expected an integer >= {minimum}, got {value!r}", source, key)
    return value


def _range(value: Any, source: str | None, key: str, minimum: int = 0) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _err(f"expected [min, max] (two integers) or one integer, got {value!r}", source, key)
    lo, hi = (_int(v, source, key, minimum) for v in value)
    if lo > hi:
        raise _err(f"min {lo} is larger than max {hi}", source, key)
    return lo, hi


def _values(value: Any, source: str | None, key: str) -> tuple[int, ...]:
    if isinstance(value, dict):
        extra = set(value) - {"min", "max", "step"}
        if extra or not {"min", "max"} <= set(value):
            raise _err(f"expected {{min, max, step}}, got keys {sorted(map(str, value))}", source, key)
        lo, hi = _int(value["min"], source, key, 1), _int(value["max"], source, key, 1)
        step = _int(value.get("step", 1), source, key, 1)
        if lo > hi:
            raise _err(f"min {lo} is larger than max {hi}", source, key)
        value = list(range(lo, hi + 1, step))
    if not isinstance(value, (list, tuple)) or not value:
        raise _err(f"expected a non-empty list of integers or {{min, max, step}}, got {value!r}", source, key)
    return tuple(sorted({_int(v, source, key, 1) for v in value}))


def _symbol(key: Any, source: str | None, where: str) -> str:
    from designer.layout import KIND_TO_SYMBOL
    sym = KIND_TO_SYMBOL.get(str(key), str(key))
    if sym not in SYMBOLS:
        raise _err(f"unknown layer kind {key!r}; expected one of {', '.join(SYMBOLS)} "
                   f"({', '.join(SYMBOLS.values())})", source, f"{where}.{key}")
    return sym


def default_widths(base: Layout) -> dict[str, tuple[int, ...]]:
    """75%..100% of the base's FFN width and Mamba heads (steps that keep dimensions multiples of 64 and
    heads divisible by the groups); MoE experts 75/87.5/100%."""
    out: dict[str, tuple[int, ...]] = {}
    if base.mlp is not None and MLP in base.pattern:
        f = base.mlp.intermediate_size
        step = 1024 if f >= 16384 else 256 if f >= 2048 else 64
        lo = max(step, (int(f * 0.75) // step) * step)
        vals = set(range(lo, f + 1, step)) | {f}
        out["mlp.intermediate_size"] = tuple(sorted(v for v in vals if v <= f))
    if base.mamba is not None and base.mamba.version == 2 and MAMBA in base.pattern:
        h, g = base.mamba.num_heads, base.mamba.n_groups
        step = 2 * g if h >= 16 * g else g
        vals = {v for v in range(h, int(h * 0.75) - 1, -step) if v > 0 and v % g == 0} | {h}
        out["mamba.num_heads"] = tuple(sorted(vals))
    if base.moe is not None and MOE in base.pattern:
        e = base.moe.num_experts
        vals = {max(base.moe.top_k, round(e * r)) for r in (0.75, 0.875, 1.0)}
        out["moe.num_experts"] = tuple(sorted(vals))
    return out


def default_space(base: Layout, mode: str = "prune") -> SearchSpace:
    """Keep half to all of each kind (attention: 1 to all), with the default widths."""
    counts: dict[str, tuple[int, int]] = {}
    for s in KINDS:
        n = base.count(s)
        if n:
            counts[s] = (1, n) if s == ATTENTION else (max(1, math.ceil(n / 2)), n)
    return SearchSpace(base=base, mode=mode, counts=counts, widths=default_widths(base))


def load_space(base: Layout, ref: "str | Path | dict | None" = None) -> SearchSpace:
    """The default space of `base`, overridden by a space YAML file (path) or dict. Bad keys or values
    raise LayoutError naming the file and the key."""
    space = default_space(base)
    if ref is None:
        return space
    if isinstance(ref, dict):
        data, source = ref, "space"
    else:
        path = Path(ref)
        if not path.is_file():
            raise LayoutError(f"no such space file {str(ref)!r}", key="space")
        data, source = parse_yaml_text(path.read_text(encoding="utf-8"), source=str(path)), str(path)
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise LayoutError(f"expected a mapping of {', '.join(SPACE_KEYS)}, got {type(data).__name__}", source=source)
    for key in data:
        if key not in SPACE_KEYS:
            import difflib
            close = difflib.get_close_matches(str(key), SPACE_KEYS, n=1)
            raise _err(f"unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
                       + f"; allowed: {', '.join(SPACE_KEYS)}", source, str(key))
    changes: dict[str, Any] = {"source": source}
    mode = data.get("mode", "prune")
    if mode not in MODES:
        raise _err(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}", source, "mode")
    changes["mode"] = mode
    if mode == "prune" and "counts" in data:
        raise _err("prune mode takes 'keep' (layers of the base to keep); 'counts' is for mode: fresh", source,
                   "counts")
    if mode == "fresh" and "keep" in data:
        raise _err("fresh mode takes 'counts'; 'keep' is for mode: prune", source, "keep")
    key = "keep" if mode == "prune" else "counts"
    if key in data:
        raw = data[key]
        if not isinstance(raw, dict) or not raw:
            raise _err("expected a mapping from layer kind (M, *, -, E) to [min, max]", source, key)
        counts = {}
        for k, v in raw.items():
            sym = _symbol(k, source, key)
            lo, hi = _range(v, source, f"{key}.{k}")
            if mode == "prune" and hi > base.count(sym):
                raise _err(f"cannot keep {hi} {SYMBOLS[sym]} layers: the base {base.name} has "
                           f"{base.count(sym)}", source, f"{key}.{k}")
            if base.block_config(sym) is None and hi > 0:
                raise _err(f"the base {base.name} has no {SYMBOLS[sym]} block config to build those layers from",
                           source, f"{key}.{k}")
            counts[sym] = (lo, hi)
        if mode == "prune":     # kinds not named keep all of the base's layers
            for s in KINDS:
                if s not in counts and base.count(s):
                    counts[s] = (base.count(s), base.count(s))
        changes["counts"] = counts
    elif mode == "fresh":
        raise _err("fresh mode needs 'counts' (layers of each kind: [min, max])", source, "counts")
    if "layers" in data:
        changes["layers"] = _range(data["layers"], source, "layers", 1)
    if "widths" in data:
        raw = data["widths"]
        if not isinstance(raw, dict):
            raise _err("expected a mapping from a dotted path (e.g. mlp.intermediate_size) to values", source,
                       "widths")
        widths = dict(space.widths) if mode == "prune" else {}
        for k, v in raw.items():
            if k not in WIDTH_PATHS:
                import difflib
                close = difflib.get_close_matches(str(k), WIDTH_PATHS, n=1)
                raise _err("unknown width" + (f" (did you mean '{close[0]}'?)" if close else "")
                           + f"; allowed: {', '.join(WIDTH_PATHS)}", source, f"widths.{k}")
            block = k.split(".")[0]
            if "." in k and getattr(base, block) is None:
                raise _err(f"the base {base.name} has no {block} block", source, f"widths.{k}")
            widths[k] = _values(v, source, f"widths.{k}")
        changes["widths"] = widths
    if "method" in data:
        if data["method"] not in METHODS:
            raise _err(f"unknown method {data['method']!r}; allowed: {', '.join(METHODS)}", source, "method")
        changes["method"] = data["method"]
    for k, minimum in (("max_enumerate", 1), ("trials", 1), ("seed", 0), ("population", 4)):
        if k in data:
            changes[k] = _int(data[k], source, k, minimum)
    out = dataclasses.replace(space, **changes)
    check_space(out)
    return out


def check_space(space: SearchSpace) -> None:
    """Every width variant must still be a valid layout (positive sizes, known keys); a bounded size."""
    if space.num_variants > MAX_VARIANTS:
        raise LayoutError(f"{space.num_variants:,} width combinations; at most {MAX_VARIANTS:,} (use fewer values "
                          "or a larger step)", source=space.source, key="widths")
    if not any(hi for _, hi in space.counts.values()):
        raise LayoutError("the space keeps no layers at all", source=space.source, key="keep")
    for values in (space.variant_values()[0], space.variant_values()[-1]):
        lay = apply_widths(space.base, values)
        try:
            layout_from_dict(layout_to_dict(lay), source=space.source)
        except LayoutError as e:
            raise LayoutError(f"widths {values} make an invalid layout: {e}", source=space.source,
                              key="widths") from None
