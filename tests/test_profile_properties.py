"""Property tests: any pattern and setup profiles without crashing, and the capacity answers agree
with the memory model."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from designer.layout import layout_from_dict, load_layout, tensor_parallel_divides
from designer.profile.analytic import prepare, profile

MOE_BASE = load_layout("nemotron-3-nano-30b-a3b").to_dict()
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _finite(obj) -> bool:
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


@FAST
@given(pattern=st.text(alphabet="M*-E", min_size=1, max_size=60), batch=st.integers(1, 64),
       prompt=st.integers(1, 200_000), gen=st.integers(1, 4096), tp=st.sampled_from([1, 2, 4, 8]),
       pp=st.integers(1, 4), mode=st.sampled_from(["parallel", "chunked", "sequential"]),
       precision=st.sampled_from(["bf16", "fp8", "fp4", "fp32"]))
def test_any_layout_and_setup_profiles_consistently(pattern, batch, prompt, gen, tp, pp, mode, precision):
    lay = layout_from_dict({**MOE_BASE, "pattern": pattern, "mlp": {"intermediate_size": 1024}})
    pp = min(pp, lay.num_layers)
    assume(tensor_parallel_divides(lay, tp))   # other degrees are ST007 errors
    d = profile(lay, "h100-sxm", batch=batch, prompt=prompt, gen=gen, tp=tp, pp=pp, prefill_mode=mode,
                precision=precision).to_dict()
    assert _finite(d)
    p = d["params"]
    assert sum(p["by_kind"].values()) + p["embedding"] + p["lm_head"] + p["final_norm"] == p["total"] >= p["active"]
    assert d["latency"]["e2e_s"] >= d["latency"]["ttft_s"] > 0
    r = prepare(lay, "h100-sxm", tp=tp, pp=pp, prefill_mode=mode, precision=precision)
    b = r.max_batch(prompt, gen)
    if b:
        assert r.memory(b, prompt + gen, prompt=prompt).fits
    assert not r.memory(b + 1, prompt + gen, prompt=prompt).fits
    assert r.tpot_s(batch, prompt + 1) >= r.tpot_s(batch, prompt)
    assert r.memory(batch + 1, prompt + gen).total_bytes >= r.memory(batch, prompt + gen).total_bytes


def test_profile_refuses_a_tensor_parallel_degree_that_st007_refuses():
    import pytest

    from designer.layout import LayoutError
    from designer.rules import check
    lay = load_layout("nemotron-h-8b")
    with pytest.raises(LayoutError, match=r"attention.num_heads 32 is not divisible by 3 \(rule ST007\)"):
        profile(lay, "h100-sxm", tp=3)
    from designer.layout import ParallelConfig
    assert any(v.rule == "ST007" for v in check(lay.replace(parallel=ParallelConfig(tensor=3))))
    assert profile(lay, "h100-sxm", tp=4).setup["tp"] == 4
