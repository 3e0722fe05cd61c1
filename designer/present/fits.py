"""Whether a serving set-up fits, and what would: the "does not fit" wording and the first change that fits.

A set-up that fits no batch at all has no latency or throughput worth showing: the tables print
"does not fit" instead, and `what_fits` names the first change (narrower weights, an fp8 KV cache, more
tensor parallelism, a shorter context) with which the profiler finds room for at least one sequence.
Every answer comes from `designer.profile.analytic.max_batch_throughput`; nothing here is a new formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from designer.layout import Layout, LayoutError
from designer.profile.analytic import max_batch_throughput
from designer.profile.memory import DTYPE_BYTES, PRECISIONS
from designer.profile.scenario import Scenario

TP_DEGREES = (2, 4, 8)


@dataclass(frozen=True)
class Suggestion:
    change: str            # "fp8 weights", "tensor parallel 2", "prompt 32,768" ...
    scenario: Scenario     # the changed scenario
    max_batch: int         # the largest batch that fits with it
    tokens_per_s_per_gpu: float

    def text(self) -> str:
        return (f"fits with {self.change} (max batch {self.max_batch:,}, "
                f"{self.tokens_per_s_per_gpu:,.0f} output tokens/s per GPU)")


def _candidates(s: Scenario) -> Iterator[tuple[str, Scenario]]:
    """Changes to try, smallest first: weight precision, KV dtype, tensor parallelism, then context."""
    width = PRECISIONS[s.precision].bytes_per_param
    narrower = [p for p in ("fp8", "fp4") if PRECISIONS[p].bytes_per_param < width]
    kv_fp8 = DTYPE_BYTES[s.kv] > DTYPE_BYTES["fp8"]
    for p in narrower:
        yield f"{p} weights", s.replace(precision=p)
        if kv_fp8:
            yield f"{p} weights and an fp8 KV cache", s.replace(precision=p, kv_dtype="fp8")
    if kv_fp8 and not narrower:
        yield "an fp8 KV cache", s.replace(kv_dtype="fp8")
    tp = s.tp or 1
    for degree in TP_DEGREES:
        if degree > tp:
            yield f"tensor parallel {degree}", s.replace(tp=degree)
    for degree in TP_DEGREES:
        for p in narrower[:1]:
            if degree > tp:
                yield f"{p} weights on tensor parallel {degree}", s.replace(precision=p, tp=degree)
    prompt = s.prompt
    while prompt > 1024:
        prompt //= 2
        yield f"a {prompt:,}-token prompt", s.replace(prompt=prompt)


def what_fits(layout: Layout, hardware: Any, scenario: Scenario) -> Suggestion | None:
    """The first change of `scenario` (see `_candidates`) with which one sequence fits; None when the set-up
    already fits or nothing tried fits. A change the layout cannot take (e.g. a TP degree its heads do
    not divide) is skipped."""
    scenario = scenario.resolve(layout)
    if max_batch_throughput(layout, hardware, scenario) is not None:
        return None
    for change, s in _candidates(scenario):
        try:
            t = max_batch_throughput(layout, hardware, s)
        except LayoutError:
            continue
        if t is not None:
            return Suggestion(change, s, t.batch, t.output_tokens_per_s_per_gpu)
    return None


def not_fit_message(layout: Layout, hardware: Any, scenario: Scenario) -> str:
    """One sentence for a set-up where no batch fits: what would fit, or that nothing tried does."""
    hint = what_fits(layout, hardware, scenario)
    if hint is not None:
        return f"{layout.name} does not fit at any batch; it {hint.text()}"
    return (f"{layout.name} does not fit at any batch, nor with fp8/fp4 weights, an fp8 KV cache, tensor "
            f"parallel up to {TP_DEGREES[-1]} or a 1,024-token prompt")
