"""Property test over random layouts: load -> check -> fix -> profile -> export configs.

Layouts are drawn from every preset with random patterns, sizes (edge values included), MoE settings,
parallel plans and rule sets. Each stage may refuse its input only with a LayoutError (bad input, exit 2
at the CLI) or, for the HF config, HFUnsupported; any other exception is a bug. A fix must produce a layout
that loads again from its own YAML.
"""
from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from designer.export.megatron import megatron_script, suggest_parallelism, unsupported_reason
from designer.hf import HFUnsupported, hf_config_from_layout
from designer.layout import LayoutError, dump_yaml, layout_from_dict, layout_from_text, load_layout, preset_names
from designer.profile.analytic import profile
from designer.rules import check, fix_all

PRESETS = {name: load_layout(name).to_dict() for name in preset_names()}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.one_of(st.sampled_from([1, 2, 3, 7, 8, 64, 100, 128, 4096]), st.integers(1, 1 << 16))


@st.composite
def layout_dicts(draw):
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[draw(st.sampled_from(sorted(PRESETS)))].items()}
    d["pattern"] = draw(st.text(alphabet="M*-E", min_size=1, max_size=80))
    d["hidden_size"] = draw(sizes)
    if draw(st.booleans()):
        d["moe"] = {"num_experts": draw(st.integers(1, 512)), "top_k": draw(st.integers(1, 600)),
                    "intermediate_size": draw(sizes), "shared_intermediate_size": draw(st.integers(0, 4096))}
    if draw(st.booleans()):
        d["attention"] = {"num_heads": draw(sizes), "num_kv_heads": draw(sizes), "head_dim": draw(sizes)}
    if draw(st.booleans()):
        d["mamba"] = {"version": draw(st.sampled_from([1, 2])), "num_heads": draw(sizes), "head_dim": draw(sizes),
                      "n_groups": draw(sizes), "state_size": draw(sizes)}
    if draw(st.booleans()):
        d["mlp"] = {"intermediate_size": draw(sizes), "activation": draw(st.sampled_from(["relu2", "swiglu", "gelu"]))}
    if draw(st.booleans()):
        d["parallel"] = {"tensor": draw(st.sampled_from([1, 2, 3, 4, 8])), "pipeline": draw(st.integers(1, 100))}
    d["rules"] = draw(st.sampled_from([[], ["nemotron-h"]]))
    return d


def _finite(obj) -> bool:
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_finite(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


@SETTINGS
@given(data=layout_dicts(), tp=st.sampled_from([None, 1, 2, 3, 4]), precision=st.sampled_from(["bf16", "fp8", "fp4"]))
def test_random_layouts_pass_every_stage_without_unexpected_exceptions(data, tp, precision):
    try:
        lay = layout_from_dict(data, source="random.yaml")
    except LayoutError as e:
        assert str(e).startswith("random.yaml")
        return
    violations = check(lay, lay.rules)
    assert all(v.message for v in violations)
    fixed, changes, remaining = fix_all(lay, lay.rules)
    again = layout_from_text(dump_yaml(fixed), source="fixed.yaml")      # a fix always yields a loadable layout
    assert again.pattern == fixed.pattern
    try:
        p = profile(fixed, "h100-sxm", precision=precision, tp=tp, prompt=4096, gen=128).to_dict()
    except LayoutError as e:
        assert "rule ST00" in str(e) or "tensor parallel" in str(e) or "pipeline" in str(e), str(e)
    else:
        assert _finite(p) and p["params"]["total"] >= p["params"]["active"] > 0
    try:
        hf_config_from_layout(fixed)
    except HFUnsupported:
        pass
    if unsupported_reason(fixed) is None:
        megatron_script(fixed, suggest_parallelism(fixed))
