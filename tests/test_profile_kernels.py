"""Per kernel backend efficiency terms of the roofline (hardware profiles' `kernels:` block, Scenario.kernels,
`designer profile --kernels`) and the measured points drawn over the app's latency curves.

Every new term defaults to the plain roofline (bit-identical predictions); each one, set, moves prefill or
decode by exactly the amount its formula says (docs/measure.md, "Per kernel backend terms")."""
from __future__ import annotations

import dataclasses
import json

import plotly.graph_objects as go
import pytest
import yaml

from designer.layout import LayoutError, load_layout
from designer.present import figures as charts
from designer.present.measured import MeasuredFileError, check_measured, load_measured, overlay
from designer.profile.analytic import prepare, profile, sweep
from designer.profile.hardware import (HARDWARE_DIR, Efficiency, HardwareError, hardware_from_dict,
                                       hardware_names, load_hardware)
from designer.profile.roofline import Roofline
from designer.profile.scenario import Scenario

H200 = yaml.safe_load((HARDWARE_DIR / "h200.yaml").read_text())
PROMPT = 4096
# one pass over the whole prompt, so a per-pass term is paid once
ONE_PASS = Scenario(batch=1, prompt=PROMPT, gen=16, prefill_mode="parallel", tp=1, pp=1)


def h200(efficiency: dict | None = None, kernels: dict | None = None):
    """The H200 profile with `efficiency` changes in its general block and only the `kernels` blocks given (none by
    default: the plain roofline, whatever the committed profile's fitted blocks are)."""
    data = {**H200, "efficiency": {**H200["efficiency"], **(efficiency or {})}, "kernels": kernels or {}}
    return hardware_from_dict(data, source="h200-test.yaml")


def one_block(symbol: str, preset: str = "nemotron-h-8b"):
    return load_layout(preset).with_pattern(symbol)


def roofs(symbol: str, changes: dict, preset: str = "nemotron-h-8b", batch: int = 1) -> tuple[Roofline, Roofline]:
    """(the plain roofline, the one with `changes` in efficiency) of a one-block layout."""
    lay = one_block(symbol, preset)
    scenario = ONE_PASS.replace(batch=batch)
    return Roofline(lay, h200(), scenario), Roofline(lay, h200(changes), scenario)


# ---- defaults leave every prediction as it was ------------------------------------------------------


DEFAULTS = {"mamba_elementwise_passes": 0.0, "attention_elementwise_passes": 0.0, "mlp_elementwise_passes": 0.0,
            "state_update_passes": 2.0, "scan_memory_passes": 1.0, "decode_kernel_overhead_s": None,
            "mamba_kernels": None, "attention_kernels": None, "mlp_kernels": None, "mamba_decode_kernels": None,
            "attention_decode_kernels": None}


def test_the_new_fields_default_to_the_plain_roofline():
    eff = Efficiency()
    assert {k: getattr(eff, k) for k in DEFAULTS} == DEFAULTS
    assert eff.decode_kernel_s == eff.kernel_overhead_s
    assert eff.kernels("moe", 10) == 10 and eff.elementwise_passes("moe") == 0.0


@pytest.mark.parametrize("preset", ["nemotron-h-8b", "nemotron-3-nano-30b-a3b", "falcon-mamba-7b", "llama-3.1-8b"])
@pytest.mark.parametrize("setup", [dict(), dict(batch=8, prompt=8192, precision="fp8"),
                                   dict(tp=2, pp=2, prefill_mode="sequential", prompt=512)])
def test_defaults_spelled_out_give_bit_identical_predictions(preset, setup):
    plain = h200()
    # every new field at its default, in `efficiency` and again as a `kernels.triton` / `kernels.torch` block
    explicit = h200({k: v for k, v in DEFAULTS.items() if v is not None},
                    kernels={"triton": {"state_update_passes": 2, "scan_memory_passes": 1},
                             "torch": {"mamba_elementwise_passes": 0, "mlp_kernels": None}})
    want = profile(preset, plain, **setup).to_dict()
    mamba2 = load_layout(preset).mamba is not None and load_layout(preset).mamba.version == 2
    for kernels in (None, "triton", "torch"):
        got = profile(preset, explicit, kernels=kernels, **setup).to_dict()
        assert got["latency"] == want["latency"]
        # a chosen backend's SSD scan has its own workspace on Mamba-2 models (a memory term of the backend,
        # not of the efficiency block; tests/test_memtrace.py): memory, and for torch the capacity, differ
        if kernels is None or not mamba2:
            assert got["memory"] == want["memory"] and got["throughput"] == want["throughput"]
        elif kernels == "torch":
            assert got["throughput"] != want["throughput"]
        else:       # fla's scan holds at least what fused kernels do (equal where another kind is wider)
            assert got["memory"]["activation_bytes"] >= want["memory"]["activation_bytes"]
    assert sweep(preset, explicit, **setup)["latency_vs_context"] == sweep(preset, plain, **setup)["latency_vs_context"]


def test_uncalibrated_profiles_predict_the_same_for_both_backends():
    for name in hardware_names():
        if load_hardware(name).kernels:
            continue
        r_torch, r_triton = prepare("nemotron-h-8b", name, kernels="torch"), prepare("nemotron-h-8b", name)
        assert r_torch.prefill_s(1, 8192) == r_triton.prefill_s(1, 8192)
        assert r_torch.decode_coefficients(4) == r_triton.decode_coefficients(4)


def test_the_h200_fits_predict_the_measured_prefill():
    """profiles/hardware/h200.yaml's fitted torch and triton blocks against the committed H200 measurements of
    the whole nemotron-h-8b (bench/results/measured/nemotron-h-8b_cuda_{torch,triton}.json: TTFT 4k = 290.4 and
    106.6 ms, the triton one measured on the fused kernels of 2026-12-03), which the fits never saw; the
    uncalibrated general terms predict 83 ms for both."""
    common = dict(precision="bf16", prefill_mode="parallel")
    torch_ttft = prepare("nemotron-h-8b", "h200", kernels="torch", **common)
    triton_ttft = prepare("nemotron-h-8b", "h200", kernels="triton", **common)
    general = prepare("nemotron-h-8b", h200(), **common)
    assert abs(torch_ttft.prefill_s(1, 4096) / 0.29038 - 1) < 0.11
    assert abs(triton_ttft.prefill_s(1, 4096) / 0.10655 - 1) < 0.11
    assert general.prefill_s(1, 4096) < 0.1


# ---- each term, by its formula ---------------------------------------------------------------------------


@pytest.mark.parametrize("symbol, field", [("M", "mamba_elementwise_passes"), ("*", "attention_elementwise_passes"),
                                           ("-", "mlp_elementwise_passes")])
def test_one_elementwise_pass_adds_the_blocks_activations_at_the_memory_rate(symbol, field):
    plain, passes = roofs(symbol, {field: 1.0}, batch=2)
    c = plain.costs[symbol]
    tokens = 2 * PROMPT
    one_pass_s = tokens * c.act_elems_per_token * 2 / plain.mem_rate       # bf16 activations: 2 B
    assert plain.act_bytes == 2 and plain.mem_rate == 4.8e12 * 0.884
    assert passes.prefill_s(2, PROMPT) - plain.prefill_s(2, PROMPT) == pytest.approx(one_pass_s, rel=1e-9)
    # a decode step runs the same passes over its 2 tokens
    a0, k0 = plain.decode_coefficients(2)
    a1, k1 = passes.decode_coefficients(2)
    assert a1 - a0 == pytest.approx(2 * c.act_elems_per_token * 2 / plain.mem_rate, rel=1e-6) and k1 == k0


def test_nemotron_mamba_pass_is_the_hand_computed_number():
    # Nemotron-H-8B's Mamba block writes h + in_proj (2*8192 + 2*8*128 + 128) + conv (10,240) + y + gated norm
    # (8,192 each) + h = 53,376 activation elements per token (blocks.py): 4,096 tokens x 53,376 x 2 B =
    # 437,256,192 B a pass; at 0.884 x 4.8 TB/s that is 103.05 us, 12 passes 1.2366 ms
    plain, twelve = roofs("M", {"mamba_elementwise_passes": 12.0})
    assert plain.costs["M"].act_elems_per_token == 4096 + (2 * 8192 + 2 * 8 * 128 + 128) + 10240 + 2 * 8192 + 4096
    extra = twelve.prefill_s(1, PROMPT) - plain.prefill_s(1, PROMPT)
    assert extra == pytest.approx(12 * 437_256_192 / (4.8e12 * 0.884), rel=1e-9)
    assert extra == pytest.approx(1.23658e-3, rel=1e-5)


def test_a_kinds_passes_leave_the_other_kinds_alone():
    for symbol, field in (("M", "attention_elementwise_passes"), ("*", "mlp_elementwise_passes"),
                          ("-", "mamba_elementwise_passes")):
        plain, other = roofs(symbol, {field: 5.0})
        assert other.prefill_s(1, PROMPT) == plain.prefill_s(1, PROMPT)
        assert other.decode_coefficients(1) == plain.decode_coefficients(1)


def test_moe_blocks_take_the_mlp_terms():
    plain, passes = roofs("E", {"mlp_elementwise_passes": 1.0, "mlp_kernels": 30.0}, preset="nemotron-3-nano-30b-a3b")
    c = plain.costs["E"]
    assert c.kind == "moe" and c.kernels == 10
    want = PROMPT * c.act_elems_per_token * 2 / plain.mem_rate + (30 - 10) * plain.kernel_s
    assert passes.prefill_s(1, PROMPT) - plain.prefill_s(1, PROMPT) == pytest.approx(want, rel=1e-9)


def test_state_update_passes_scale_the_decode_state_traffic():
    plain, three = roofs("M", {"state_update_passes": 3.0}, batch=4)
    c = plain.costs["M"]
    state_bytes = c.ssm_state_elems * 4 + c.conv_state_elems * 2         # fp32 SSM state, bf16 conv window
    assert state_bytes == 4 * 1048576 + 2 * 30720                        # 128 heads x 64 x 128; 10,240 ch x 3
    # decode is state-bound for Mamba: 2 passes over 4.25 MB cost more than the step's scan FLOPs
    assert c.decode_core_flops / plain.core_rate["scan"] < 2 * state_bytes / plain.mem_rate
    a0, _ = plain.decode_coefficients(4)
    a1, _ = three.decode_coefficients(4)
    assert a1 - a0 == pytest.approx(4 * state_bytes / plain.mem_rate, rel=1e-9)
    assert three.prefill_s(4, PROMPT) == plain.prefill_s(4, PROMPT)


def test_scan_memory_passes_multiply_the_scan_cores_bytes():
    plain, many = roofs("M", {"scan_memory_passes": 1e5})
    c = plain.costs["M"]
    core_flops = c.prefill_core(PROMPT, 0)
    core_bytes = c.ssm_state_elems * 4 + c.conv_state_elems * 2
    assert core_flops / plain.core_rate["scan"] > core_bytes / plain.mem_rate       # plain: FLOP-bound
    assert core_flops / plain.core_rate["scan"] < 1e5 * core_bytes / plain.mem_rate  # x1e5: byte-bound
    want = 1e5 * core_bytes / plain.mem_rate - core_flops / plain.core_rate["scan"]
    assert many.prefill_s(1, PROMPT) - plain.prefill_s(1, PROMPT) == pytest.approx(want, rel=1e-9)
    attn_plain, attn_many = roofs("*", {"scan_memory_passes": 1e5})            # not an attention term
    assert attn_many.prefill_s(1, PROMPT) == attn_plain.prefill_s(1, PROMPT)


def test_decode_kernel_overhead_prices_the_gpus_gaps_between_kernels():
    """decode_kernel_overhead_s is what a queued kernel costs the GPU (a CUDA graph's node): every decode node,
    and the gap between a prefill's kernels when the host is ahead (a 4k-token Mamba block: GPU-bound)."""
    plain, graph = roofs("M", {"decode_kernel_overhead_s": 1e-6})
    assert plain.kernel_s == 7.7e-6 and plain.costs["M"].kernels == 8
    assert graph.prefill_s(1, PROMPT) - plain.prefill_s(1, PROMPT) == pytest.approx(8 * (1e-6 - 7.7e-6), rel=1e-9)
    a0, _ = plain.decode_coefficients(1)
    a1, _ = graph.decode_coefficients(1)
    assert a1 - a0 == pytest.approx(8 * (1e-6 - 7.7e-6), rel=1e-9)


def test_a_prefill_is_launch_bound_only_when_issuing_outlasts_the_work():
    """Per stage: max(GPU work, host launches) + the head. 4k tokens through one Mamba block take ~1.7 ms of GPU
    work; 8 launches at 7.7 us are hidden behind it, 2,000 launches (15.4 ms) are not."""
    plain, many = roofs("M", {"mamba_kernels": 2000.0, "decode_kernel_overhead_s": 0.0})
    (work, launch, head), = plain.prefill_stage_parts(1, PROMPT)
    assert launch == pytest.approx(8 * 7.7e-6, rel=1e-12) and work > 1e-3 > launch
    assert plain.prefill_s(1, PROMPT) == pytest.approx(work + head, rel=1e-12)
    (work2, launch2, head2), = many.prefill_stage_parts(1, PROMPT)
    assert launch2 == pytest.approx(2000 * 7.7e-6, rel=1e-12) and launch2 > work2
    assert many.prefill_s(1, PROMPT) == pytest.approx(2000 * 7.7e-6 + head2, rel=1e-12)


def test_decode_node_counts_replace_the_prefill_count_in_decode_only():
    plain, fused = roofs("M", {"mamba_decode_kernels": 3.0})
    assert fused.prefill_s(1, PROMPT) == plain.prefill_s(1, PROMPT)
    a0, _ = plain.decode_coefficients(1)
    a1, _ = fused.decode_coefficients(1)
    assert a1 - a0 == pytest.approx((3 - 8) * 7.7e-6, rel=1e-9)
    # an MLP runs the same kernels in both: one count (Efficiency has no mlp_decode_kernels)
    assert Efficiency(mlp_kernels=5.0).decode_kernels("mlp", 4) == 5.0 == Efficiency(mlp_kernels=5.0).kernels("mlp", 4)
    assert Efficiency().decode_kernels("mamba", 8) == 8


@pytest.mark.parametrize("symbol, field, default", [("M", "mamba_kernels", 8), ("*", "attention_kernels", 6),
                                                    ("-", "mlp_kernels", 4)])
def test_kernels_per_block_replace_the_block_estimate(symbol, field, default):
    plain, more = roofs(symbol, {field: 25.0})
    assert plain.costs[symbol].kernels == default
    assert more.prefill_s(1, PROMPT) - plain.prefill_s(1, PROMPT) == pytest.approx((25 - default) * 7.7e-6, rel=1e-9)
    a0, _ = plain.decode_coefficients(1)
    a1, _ = more.decode_coefficients(1)
    assert a1 - a0 == pytest.approx((25 - default) * 7.7e-6, rel=1e-9)


def test_per_pass_terms_are_paid_every_chunk():
    lay = one_block("M")
    chunked = Scenario(batch=1, prompt=4 * 8192, gen=16, prefill_mode="chunked", prefill_chunk=8192, tp=1, pp=1)
    plain, more = Roofline(lay, h200(), chunked), Roofline(lay, h200({"mamba_kernels": 18.0}), chunked)
    assert more.prefill_s(1, 4 * 8192) - plain.prefill_s(1, 4 * 8192) == pytest.approx(4 * 10 * 7.7e-6, rel=1e-9)


# ---- per-backend blocks ----------------------------------------------------------------------------------

BACKENDS = {"torch": {"scan": 0.05, "mamba_elementwise_passes": 12, "decode_kernel_overhead_s": 9e-6},
            "triton": {"mamba_elementwise_passes": 2, "mamba_kernels": 5}}


def test_efficiency_for_applies_that_backends_overrides():
    hw = h200(kernels=BACKENDS)
    torch, triton = hw.efficiency_for("torch"), hw.efficiency_for("triton")
    assert (torch.scan, torch.mamba_elementwise_passes, torch.decode_kernel_s, torch.mamba_kernels) == \
        (0.05, 12.0, 9e-6, None)
    assert (triton.scan, triton.mamba_elementwise_passes, triton.decode_kernel_s, triton.mamba_kernels) == \
        (0.3, 2.0, 7.7e-6, 5.0)
    assert hw.efficiency_for(None) == triton                       # the default backend is the fast path
    assert torch == dataclasses.replace(hw.efficiency, **BACKENDS["torch"])
    assert hw.efficiency.mamba_elementwise_passes == 0.0           # the general block is unchanged
    only_torch = h200(kernels={"torch": BACKENDS["torch"]})
    assert only_torch.efficiency_for("triton") is only_torch.efficiency


def test_the_scenarios_backend_picks_the_terms():
    hw = h200(kernels=BACKENDS)
    lay = one_block("M")
    by_name = {k: Roofline(lay, hw, ONE_PASS.replace(kernels=k)) for k in (None, "triton", "torch")}
    assert by_name[None].prefill_s(1, PROMPT) == by_name["triton"].prefill_s(1, PROMPT)
    want = Roofline(lay, h200({"mamba_elementwise_passes": 2, "mamba_kernels": 5}), ONE_PASS)
    assert by_name["triton"].prefill_s(1, PROMPT) == want.prefill_s(1, PROMPT)
    torch = Roofline(lay, h200(BACKENDS["torch"]), ONE_PASS)
    assert by_name["torch"].prefill_s(1, PROMPT) == torch.prefill_s(1, PROMPT)
    assert by_name["torch"].decode_coefficients(1) == torch.decode_coefficients(1)
    assert by_name["torch"].prefill_s(1, PROMPT) > by_name["triton"].prefill_s(1, PROMPT)
    d = profile("nemotron-h-8b", hw, kernels="torch").to_dict()
    assert d["setup"]["kernels"] == "torch"
    assert any(a.startswith("torch kernels (the profile's kernels.torch terms)") for a in d["assumptions"])
    assert profile("nemotron-h-8b", "h200").to_dict()["setup"]["kernels"] == "triton"


def test_a_scenario_refuses_an_unknown_backend():
    with pytest.raises(LayoutError, match=r"unknown kernel backend 'cuda'; allowed: torch, triton"):
        Scenario(kernels="cuda")
    with pytest.raises(HardwareError, match=r"allowed: torch, triton"):
        h200().efficiency_for("cuda")


@pytest.mark.parametrize("change, message", [
    ({"kernels": {"cuda": {"scan": 0.1}}}, r"key 'kernels.cuda': unknown kernel backend 'cuda'; allowed: torch, triton"),
    ({"kernels": {"torch": {"scann": 0.1}}}, r"key 'kernels.torch': unknown key\(s\) \['scann'\]; allowed: .*scan,"),
    ({"kernels": {"torch": {"mamba_elementwise_passes": -1}}},
     r"key 'kernels.torch.mamba_elementwise_passes': must be a non-negative number, got -1"),
    ({"kernels": {"triton": {"scan": 1.5}}}, r"key 'kernels.triton': kernels.triton.scan must be a fraction in \(0, 1\]"),
    ({"kernels": {"triton": {"decode_kernel_overhead_s": 2}}},
     r"kernels.triton.decode_kernel_overhead_s must be in \[0, 1\) seconds"),
    ({"kernels": ["torch"]}, r"key 'kernels': must map kernel backends \(torch, triton\)"),
    ({"kernels": {"torch": 3}}, r"key 'kernels.torch': must map efficiency fields to numbers"),
    ({"efficiency": {**H200["efficiency"], "state_update_passes": -2}},
     r"key 'efficiency.state_update_passes': must be a non-negative number"),
    ({"efficiency": {**H200["efficiency"], "scan_memory_passes": "lots"}}, r"key 'efficiency.scan_memory_passes'"),
    ({"calibration": "yesterday"}, r"key 'calibration': must be a mapping"),
])
def test_a_bad_kernels_block_names_the_file_and_field(tmp_path, change, message):
    path = tmp_path / "bad-gpu.yaml"
    path.write_text(yaml.safe_dump({**H200, **change}))
    with pytest.raises(HardwareError, match=message) as e:
        load_hardware(str(path))
    assert str(path) in str(e.value)


def test_a_kernels_block_and_its_provenance_load_from_yaml(tmp_path):
    path = tmp_path / "h200-fitted.yaml"
    text = (HARDWARE_DIR / "h200.yaml").read_text() + (
        "kernels:\n  torch: {scan: 0.05, mamba_elementwise_passes: 12}\n  triton: {mamba_kernels: 5}\n"
        "calibration: {gpu: NVIDIA H200, date: 2025-06-01, command: designer calibrate --save, "
        "packages: {torch: 2.7.0, fla-core: 0.3.0}}\n")
    path.write_text(text)
    hw = load_hardware(str(path))
    assert hw.kernels == {"torch": {"scan": 0.05, "mamba_elementwise_passes": 12.0}, "triton": {"mamba_kernels": 5.0}}
    assert hw.calibration["date"] == "2025-06-01" and hw.calibration["packages"]["fla-core"] == "0.3.0"
    json.dumps(hw.to_dict())                                        # JSON-ready
    assert hw.efficiency_for("torch").scan == 0.05


# ---- the CLI -----------------------------------------------------------------------------------------------


def test_profile_kernels_option(run_cli, tmp_path):
    torch = run_cli("profile", "nemotron-h-8b", "--kernels", "torch", "--json")
    assert torch.returncode == 0, torch.stderr
    d = json.loads(torch.stdout)
    assert d["setup"]["kernels"] == "torch"
    default = json.loads(run_cli("profile", "nemotron-h-8b", "--json").stdout)
    assert default["setup"]["kernels"] == "triton"
    assert d["latency"] == default["latency"]                       # h100-sxm has no kernels: block yet
    path = tmp_path / "fitted.yaml"
    path.write_text(yaml.safe_dump({**H200, "kernels": BACKENDS}))
    fitted = {k: json.loads(run_cli("profile", "nemotron-h-8b", "--hardware", path, "--kernels", k, "--prompt",
                                    "4096", "--json").stdout) for k in ("torch", "triton")}
    want = {k: profile("nemotron-h-8b", load_hardware(str(path)), kernels=k, prompt=4096).to_dict()["latency"]
            for k in ("torch", "triton")}
    assert {k: v["latency"] for k, v in fitted.items()} == want
    assert want["torch"]["ttft_s"] > want["triton"]["ttft_s"]


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_an_unknown_kernels_option_exits_2_with_one_line(run_cli, json_flag):
    for command in (["profile", "nemotron-h-8b"], ["compare", "nemotron-h-8b"]):
        out = run_cli(*command, "--kernels", "cuda", *json_flag)
        assert out.returncode == 2
        lines = [ln for ln in out.stderr.splitlines() if ln.startswith("designer: error:")]
        assert lines == ["designer: error: argument --kernels: invalid choice: 'cuda' (choose from 'torch', 'triton')"]
        if json_flag:
            assert set(json.loads(out.stdout)) == {"error"}


# ---- measured points over the app's latency curves ---------------------------------------------------


def measured_run(**changes) -> dict:
    points = [
        {"metric": "ttft", "batch": 1, "prompt": 1024, "predicted_s": 0.05, "measured_s": 0.08, "error": -0.375},
        {"metric": "ttft", "batch": 1, "prompt": 16384, "predicted_s": 0.9, "measured_s": 1.2, "error": -0.25},
        {"metric": "ttft", "batch": 16, "prompt": 1024, "predicted_s": 0.7, "measured_s": 1.1, "error": -0.36},
        {"metric": "tpot", "batch": 1, "context": 4096, "predicted_s": 0.006, "measured_s": 0.021, "error": -0.71},
        {"metric": "tpot", "batch": 16, "context": 4096, "predicted_s": 0.008, "measured_s": 0.025, "error": -0.68},
    ]
    return {"layout": "nemotron-h-8b", "device": "cuda", "kernels": "torch", "kernels_in_use": "torch",
            "hardware": "h200", "precision": "bf16", "points": points, "environment": {"gpu": "NVIDIA H200"},
            **changes}


def test_the_figure_draws_the_measured_points_at_the_curves_batch():
    sw = sweep("nemotron-h-8b", "h200", batch=1)
    fig = charts.latency_with_measured_figure(sw, measured_run(), batch=1).to_dict()
    go.Figure(fig)                                                   # valid plotly
    assert len(fig["data"]) == 4                                     # 2 predicted curves + 2 marker traces
    ttft, tpot = fig["data"][2], fig["data"][3]
    assert ttft["mode"] == tpot["mode"] == "markers"
    assert list(ttft["x"]) == [1024, 16384] and list(ttft["y"]) == [0.08, 1.2]           # seconds
    assert list(tpot["x"]) == [4096] and list(tpot["y"]) == pytest.approx([21.0])        # milliseconds
    assert tpot["xaxis"] == "x2" and tpot["yaxis"] == "y2"
    assert ttft["name"] == "measured, torch kernels on NVIDIA H200"
    assert [t["showlegend"] for t in fig["data"][2:]] == [True, False]
    # the predicted curves are the plain chart's
    plain = charts.latency_vs_context_figure([sw]).to_dict()
    assert fig["data"][:2] == plain["data"]
    at16 = charts.latency_with_measured_figure(sw, measured_run(), batch=16).to_dict()
    assert [list(t["x"]) for t in at16["data"][2:]] == [[1024], [4096]]
    assert len(charts.latency_with_measured_figure(sw, measured_run(), batch=8).to_dict()["data"]) == 2


def test_overlay_reads_the_saved_run_for_the_profiles_backend(tmp_path):
    prof = profile("nemotron-h-8b", "h200", batch=1, kernels="torch").to_dict()
    assert overlay(prof, directory=tmp_path) == (None, None)                      # nothing saved
    (tmp_path / "nemotron-h-8b_cuda_torch.json").write_text(json.dumps(measured_run()))
    run, note = overlay(prof, directory=tmp_path)
    assert run == measured_run() and note == "Markers: 3 points measured at batch 1 (nemotron-h-8b_cuda_torch.json)."
    triton = profile("nemotron-h-8b", "h200", batch=1).to_dict()
    assert overlay(triton, directory=tmp_path) == (None, None)                    # no triton run saved
    on_h100 = profile("nemotron-h-8b", "h100-sxm", batch=1, kernels="torch").to_dict()
    run, note = overlay(on_h100, directory=tmp_path)
    assert run is None and note.endswith("this set-up differs in hardware.")
    fp8_tp2 = profile("nemotron-h-8b", "h200", batch=1, kernels="torch", precision="fp8", tp=2).to_dict()
    assert overlay(fp8_tp2, directory=tmp_path)[1].endswith("differs in precision, parallelism.")
    at8 = profile("nemotron-h-8b", "h200", batch=8, kernels="torch").to_dict()
    assert overlay(at8, directory=tmp_path) == (None, "Measured points (nemotron-h-8b_cuda_torch.json) not drawn: "
                                                      "none at batch 8; the run has batch 1, 16.")
    # the whole `designer measure --json` document is read too
    (tmp_path / "nemotron-h-8b_cuda_torch.json").write_text(json.dumps({"timing": measured_run()}))
    assert load_measured("nemotron-h-8b", "torch", directory=tmp_path) == measured_run()


def test_a_broken_measured_file_is_named_not_drawn(tmp_path):
    path = tmp_path / "nemotron-h-8b_cuda_torch.json"
    path.write_text("{not json")
    prof = profile("nemotron-h-8b", "h200", kernels="torch").to_dict()
    run, note = overlay(prof, directory=tmp_path)
    assert run is None and note.startswith(f"Measured points not drawn: {path}: cannot read")
    bad = measured_run()
    bad["points"][3] = {**bad["points"][3], "context": 0}
    with pytest.raises(MeasuredFileError, match=r"points\[3\].context must be an integer >= 1, got 0"):
        check_measured(bad, "f.json")
    with pytest.raises(MeasuredFileError, match=r"points\[0\].metric must be ttft or tpot, got 'e2e'"):
        check_measured(measured_run(points=[{"metric": "e2e"}]), "f.json")


def test_the_profile_page_has_a_kernel_backend_and_draws_a_saved_run(monkeypatch, tmp_path):
    pytest.importorskip("streamlit")
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    import designer.present.measured as measured_module
    monkeypatch.setattr(measured_module, "MEASURED_DIR", tmp_path)
    (tmp_path / "nemotron-h-8b_cuda_triton.json").write_text(json.dumps(
        measured_run(kernels="triton", hardware="h100-sxm")))
    monkeypatch.setenv("DESIGNER_LAYOUT", "nemotron-h-8b")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60).run()
    at.segmented_control(key="page").set_value("Profile").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="pf.kernels").value == "triton" and at.selectbox(key="pf.kernels").options == \
        ["torch", "triton"]

    def latency_traces() -> list[dict]:
        spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Latency" in c.proto.spec)
        return spec["data"]

    traces = latency_traces()
    assert len(traces) == 4 and list(traces[2]["x"]) == [1024, 16384] and list(traces[2]["y"]) == [0.08, 1.2]
    assert any("Markers: 3 points measured at batch 1" in c.value for c in at.caption)
    at.selectbox(key="pf.kernels").set_value("torch").run()          # no torch run saved: the curves alone
    assert not at.exception and len(latency_traces()) == 2
