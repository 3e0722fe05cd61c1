"""Layout search: constrained, multi-objective, vectorised (docs/search.md).

    from designer.search import search
    result = search("nemotron-h-56b", hardware="rtx-5090", precision="fp4", kv_dtype="fp4", context=1 << 20,
                    embeddings="quantized", max_memory="31.7GiB")
    result.to_dict()        # the `designer search --json` document

Modules: `space` (what may change), `assumptions` (serving scenario + memory accounting, the scalar
reference `evaluate`), `vector` (the same numbers for many candidates in numpy), `pareto`, `place` (integer
program: which layers to keep), `engine` (the loop), `importance` (per-layer scores); the front's figures and HTML report are in `designer.present.search`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from designer.layout import Layout, LayoutError, load_layout
from designer.search.assumptions import Assumptions, evaluate
from designer.search.engine import DEFAULT_OBJECTIVES, OBJECTIVES, Budgets, Progress, SearchResult, parse_objectives, run_search
from designer.search.space import SearchSpace, default_space, load_space
from designer.search.units import parse_bytes, parse_count, parse_seconds


def make_budgets(hardware: str, *, max_memory: Any = None, max_params: Any = None, min_params: Any = None,
                 min_throughput: Any = None, max_ttft: Any = None, max_tpot: Any = None) -> Budgets:
    """Budgets from text or numbers ('31.7GiB', '50B', '2s'); errors name the option."""
    from designer.profile.hardware import load_hardware
    mm = parse_bytes(max_memory, "max-memory") if max_memory is not None else None
    if mm is not None:
        gpu = load_hardware(hardware).memory_bytes
        if mm > gpu:
            raise LayoutError(f"{mm / 2**30:.2f} GiB is more than the {hardware}'s {gpu / 2**30:.2f} GiB of memory",
                              key="max-memory")
    b = Budgets(max_memory_bytes=mm,
                max_params=parse_count(max_params, "max-params") if max_params is not None else None,
                min_params=parse_count(min_params, "min-params") if min_params is not None else None,
                min_throughput=parse_count(min_throughput, "min-throughput") if min_throughput is not None else None,
                max_ttft_s=parse_seconds(max_ttft, "max-ttft") if max_ttft is not None else None,
                max_tpot_s=parse_seconds(max_tpot, "max-tpot") if max_tpot is not None else None)
    if b.min_params is not None and b.max_params is not None and b.min_params > b.max_params:
        raise LayoutError(f"min-params {b.min_params / 1e9:.2f}B is above max-params {b.max_params / 1e9:.2f}B",
                          key="min-params")
    return b


def search(base: "Layout | str", *, hardware: str = "h100-sxm", space: "str | Path | dict | None" = None,
           objectives: "str | Sequence[str]" = DEFAULT_OBJECTIVES, rules: Sequence[str] | None = None,
           importance: "str | Path | None" = None, top: int = 20, references: Sequence["Layout | str"] = (),
           progress: Progress | None = None, strict: bool = False, max_memory: Any = None, max_params: Any = None,
           min_params: Any = None, min_throughput: Any = None, max_ttft: Any = None, max_tpot: Any = None,
           **assumptions: Any) -> SearchResult:
    """One search; `assumptions` are `Assumptions` fields (precision, kv_dtype, context, gen, batch, ...)."""
    lay = base if isinstance(base, Layout) else load_layout(base)
    a = Assumptions(hardware=hardware, **assumptions)
    from designer.profile.hardware import load_hardware
    load_hardware(hardware)
    budgets = make_budgets(hardware, max_memory=max_memory, max_params=max_params, min_params=min_params,
                           min_throughput=min_throughput, max_ttft=max_ttft, max_tpot=max_tpot)
    imp = None
    if importance is not None:
        from designer.search.importance import load_importance
        imp = load_importance(importance, lay)
    objs = parse_objectives(objectives, have_importance=imp is not None)
    sp = load_space(lay, space)
    refs = [r if isinstance(r, Layout) else load_layout(r) for r in references]
    if not isinstance(top, int) or top < 1:
        raise LayoutError(f"top must be an integer >= 1, got {top!r}", key="top")
    return run_search(lay, sp, a, budgets, objs, rules=rules, importance=imp, top=top, references=refs,
                      progress=progress, strict=strict)


__all__ = ["search", "make_budgets", "Assumptions", "Budgets", "SearchResult", "SearchSpace", "OBJECTIVES",
           "default_space", "load_space", "evaluate", "parse_objectives", "run_search"]
