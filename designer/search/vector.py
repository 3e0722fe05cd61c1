"""Vectorised scoring: the profiler's numbers for many candidates at once (numpy).

With one pipeline stage every number the profiler reports is `constant + sum over kinds (blocks of that kind
x per-block term)`: parameters, weight/KV/state bytes, the prefill time, the decode coefficients and so the
end-to-end time (docs/profiler.md: a block's cost does not depend on its neighbours). Two exceptions, each
a max of linear parts: the prefill workspace, which holds the residual stream plus the widest *present* block
kind (a max over the kinds a candidate uses), and the prefill time, max(GPU work, host launches) + the head
(`Roofline.prefill_stage_parts`), so TTFT and the end-to-end time are rebuilt from their linear parts. So the
per-block terms are read from the profiler itself, not re-derived: for each width variant and each kind, the
Roofline of a one-block and a two-block layout (`prepare(...).request`, `.memory`, `count_params`) gives
term = f(2 blocks) - f(1 block) and constant = f(1 block) - term. Scoring a candidate is then a dot product.
`tests/test_search_vector.py` asserts the result equals `profile()` (via `assumptions.evaluate`) on random
candidates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from designer.layout import Layout, LayoutError
from designer.profile.params import count_params
from designer.profile.roofline import Roofline
from designer.search.assumptions import Assumptions
from designer.search.space import KINDS

LINEAR = ("params", "active_params", "weights_bytes", "kv_cache_bytes", "state_bytes", "prefill_work_s",
          "prefill_launch_s", "prefill_head_s", "decode_s", "tpot_s")


def _numbers(layout: Layout, a: Assumptions) -> dict[str, float]:
    from designer.profile.analytic import prepare
    kw = a.profile_kwargs()
    batch, prompt, gen = kw.pop("batch"), kw.pop("prompt"), kw.pop("gen")
    r = prepare(layout, a.hardware, **kw)
    t = r.request(batch, prompt, gen)
    m = r.memory(batch, prompt + gen, prompt=prompt)
    p = count_params(layout)
    (work, launch, head), = r.prefill_stage_parts(batch, prompt)        # one stage (pp = 1)
    return {"params": p.total, "active_params": p.active, "weights_bytes": m.weights_bytes,
            "kv_cache_bytes": m.kv_cache_bytes, "state_bytes": m.ssm_state_bytes, "prefill_work_s": work,
            "prefill_launch_s": launch, "prefill_head_s": head, "decode_s": t.e2e_s - t.ttft_s,
            "tpot_s": t.tpot_s, "activation_bytes": m.activation_bytes}


@dataclass
class Coefficients:
    const: dict[str, np.ndarray]          # field -> (variants,)
    per_block: dict[str, np.ndarray]      # field -> (variants, kinds)
    activation: np.ndarray                # (variants, kinds): workspace bytes when that kind is the widest
    embedding_delta: np.ndarray           # (variants,)


class VectorScorer:
    """Scores candidates given as `counts` (n, 4: blocks of M * - E) and `variant` (n,: width variant id)."""

    def __init__(self, variants: list[Layout], assumptions: Assumptions):
        pp = assumptions.pp if assumptions.pp is not None else (variants[0].parallel.pipeline if variants else 1)
        if pp != 1:
            raise LayoutError("search scores one pipeline stage (pp = 1): stages split layers by position, which "
                              "the vectorised form does not model; use tensor parallelism (--tp)", key="pp")
        self.assumptions = assumptions
        self.variants = variants
        nv, nk = len(variants), len(KINDS)
        const = {f: np.zeros(nv) for f in LINEAR}
        per = {f: np.zeros((nv, nk)) for f in LINEAR}
        act = np.full((nv, nk), -np.inf)
        emb = np.zeros(nv)
        tp = assumptions.tp or (variants[0].parallel.tensor if variants else 1)
        for v, lay in enumerate(variants):
            have_const = False
            for k, sym in enumerate(KINDS):
                if lay.block_config(sym) is None:
                    continue
                one, two = _numbers(lay.with_pattern(sym), assumptions), _numbers(lay.with_pattern(sym * 2), assumptions)
                for f in LINEAR:
                    per[f][v, k] = two[f] - one[f]
                    if not have_const:
                        const[f][v] = one[f] - per[f][v, k]
                act[v, k] = one["activation_bytes"]
                have_const = True
            emb[v] = assumptions.embedding_delta_bytes(lay, tp)
        self.coef = Coefficients(const=const, per_block=per, activation=act, embedding_delta=emb)

    def usable_kinds(self) -> np.ndarray:
        """(variants, kinds) bool: the variant has the block config of that kind."""
        return np.isfinite(self.coef.activation)

    def score(self, counts: np.ndarray, variant: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric of `assumptions.Metrics` for each candidate (arrays of length n)."""
        counts = np.asarray(counts, dtype=np.float64)
        variant = np.asarray(variant, dtype=np.intp)
        c = self.coef
        out: dict[str, np.ndarray] = {}
        for f in LINEAR:
            out[f] = c.const[f][variant] + np.einsum("nk,nk->n", counts, c.per_block[f][variant])
        out["ttft_s"] = Roofline.stage_s(out.pop("prefill_work_s"), out.pop("prefill_launch_s"),
                                         out.pop("prefill_head_s"), np.maximum)
        out["e2e_s"] = out["ttft_s"] + out.pop("decode_s")
        present = counts > 0
        acts = np.where(present, c.activation[variant], -np.inf)
        out["activation_bytes"] = acts.max(axis=1)
        a = self.assumptions
        out["weights_bytes"] = out["weights_bytes"] + c.embedding_delta[variant]
        out["kv_cache_bytes"] = out["kv_cache_bytes"] * a.kv_scale
        out["memory_bytes"] = (out["weights_bytes"] + out["kv_cache_bytes"] + out["state_bytes"]
                               + out["activation_bytes"] + a.reserve_bytes)
        out["throughput_tokens_per_s"] = a.batch * a.gen / out["e2e_s"]
        return out


__all__ = ["VectorScorer", "LINEAR"]
