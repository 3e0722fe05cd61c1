"""The vectorised scorer is the profiler: equal to `profile()` (plus the documented adjustments) on random
candidates; the Pareto mask equals a brute-force one."""
import random

import numpy as np
import pytest

from designer.layout import load_layout
from designer.profile.analytic import profile
from designer.search.assumptions import Assumptions, evaluate
from designer.search.pareto import pareto_mask
from designer.search.space import KINDS, apply_widths, default_space
from designer.search.vector import VectorScorer

SETUPS = [
    ("nemotron-h-56b", Assumptions(hardware="rtx-5090", precision="fp4", kv_dtype="fp4", context=1 << 20,
                                   embeddings="quantized", prefill_chunk=2048)),
    ("nemotron-h-8b", Assumptions()),
    ("nemotron-h-8b", Assumptions(hardware="h100-sxm", precision="fp8", kv_dtype="fp8", batch=7, context=4096, gen=100,
                                  prefill_mode="parallel", reserve_bytes=5e8, tp=2)),
    ("nemotron-3-nano-30b-a3b", Assumptions(hardware="h200", precision="bf16", batch=3, context=32768, gen=1,
                                            state_dtype="bf16", prefill_mode="sequential")),
    ("falcon-mamba-7b", Assumptions(hardware="a10", precision="bf16", context=9000)),
    ("llama-3.1-8b", Assumptions(hardware="l40s", precision="fp8", embeddings="quantized")),
]


@pytest.mark.parametrize("preset,assumptions", SETUPS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(SETUPS)])
def test_vectorised_scores_equal_the_profiler_on_random_candidates(preset, assumptions):
    base = load_layout(preset)
    space = default_space(base)
    variants = space.variants()
    scorer = VectorScorer(variants, assumptions)
    rng = random.Random(hash(preset) % 1000)
    kinds = [s for s in KINDS if base.block_config(s) is not None]
    for _ in range(12):
        v = rng.randrange(len(variants))
        pattern = "".join(rng.choice(kinds) for _ in range(rng.randint(1, 60)))
        lay = variants[v].with_pattern(pattern)
        got = scorer.score(np.array([[pattern.count(s) for s in KINDS]]), np.array([v]))
        want = evaluate(lay, assumptions).to_dict()
        for key, value in want.items():
            assert got[key][0] == pytest.approx(value, rel=1e-9, abs=1e-6), (key, pattern)


def test_without_adjustments_the_memory_is_exactly_the_profilers_total():
    a = Assumptions(hardware="h100-sxm", precision="fp8", batch=4)
    base = load_layout("nemotron-h-8b")
    scorer = VectorScorer([base], a)
    got = scorer.score(np.array([[base.count(s) for s in KINDS]]), np.array([0]))
    p = profile(base, "h100-sxm", precision="fp8", batch=4, prompt=a.prompt, gen=a.gen).to_dict()
    assert got["memory_bytes"][0] == pytest.approx(p["memory"]["total_bytes"], rel=1e-12)
    assert got["throughput_tokens_per_s"][0] == pytest.approx(p["throughput"]["output_tokens_per_s"], rel=1e-12)
    assert got["params"][0] == p["params"]["total"]


def test_hidden_size_variants_of_a_fresh_space_score_like_the_profiler():
    base = load_layout("nemotron-h-8b")
    a = Assumptions(hardware="h200", precision="fp8", kv_dtype="fp8", embeddings="quantized")
    variants = [apply_widths(base, {"hidden_size": h, "mlp.intermediate_size": f})
                for h in (3072, 4096) for f in (8192, 12288)]
    scorer = VectorScorer(variants, a)
    for v, pattern in enumerate(["M-M*-M-", "M*-" * 5, "M" * 9 + "-", "M-M-M-M-M-M*-M-M-M-M-M-"]):
        got = scorer.score(np.array([[pattern.count(s) for s in KINDS]]), np.array([v]))
        want = evaluate(variants[v].with_pattern(pattern), a).to_dict()
        for key, value in want.items():
            assert got[key][0] == pytest.approx(value, rel=1e-9, abs=1e-6), (key, v)


def test_width_variants_change_the_numbers_like_the_profiler():
    base = load_layout("nemotron-h-56b")
    lay = apply_widths(base, {"mlp.intermediate_size": 30720, "mamba.num_heads": 224})
    assert lay.mlp.intermediate_size == 30720 and lay.mamba.num_heads == 224 and lay.pattern == base.pattern
    a = Assumptions(hardware="rtx-5090", precision="fp4")
    scorer = VectorScorer([base, lay], a)
    counts = np.array([[base.count(s) for s in KINDS]] * 2)
    got = scorer.score(counts, np.array([0, 1]))
    assert got["params"][1] == profile(lay, "rtx-5090", precision="fp4").to_dict()["params"]["total"]
    assert got["params"][1] < got["params"][0]


def _brute(values):
    n = len(values)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if i != j and np.all(values[j] >= values[i]) and (np.any(values[j] > values[i]) or j < i):
                keep[i] = False
                break
    return keep


@pytest.mark.parametrize("k,block", [(2, 1024), (3, 1024), (3, 7), (4, 16)])
def test_pareto_mask_equals_brute_force(k, block, monkeypatch):
    from designer.search import pareto
    monkeypatch.setattr(pareto, "BLOCK", block)         # several blocks: front checks across blocks
    rng = np.random.default_rng(k)
    values = rng.integers(0, 12, size=(300, k)).astype(float)     # many ties and duplicates
    mask = pareto_mask(values)
    brute = _brute(values)
    # same set of objective vectors (duplicates: exactly one representative kept)
    assert {tuple(r) for r in values[mask]} == {tuple(r) for r in values[brute]}
    assert mask.sum() == len({tuple(r) for r in values[mask]})
