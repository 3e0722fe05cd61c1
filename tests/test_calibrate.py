"""designer calibrate: the micro-benchmarks' structure (tiny CPU run), the fit recovering terms from
measurements the roofline itself generated, the profile write-back, and the command's errors and output.
No timing is asserted: speed lives in bench/results/."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import yaml

torch = pytest.importorskip("torch")

from designer.cli import main  # noqa: E402
from designer.layout import layout_from_dict, layout_to_dict, load_layout  # noqa: E402
from designer.measure import micro as micro_mod  # noqa: E402
from designer.measure.calibrate import (COMPONENT_FIRST, CalibrationError, efficiency_fields, fit,  # noqa: E402
                                        load_micro_file, profile_text, provenance, write_profile)
from designer.measure.flops import reduced  # noqa: E402
from designer.measure.micro import (BLOCK_KIND, FULL, SINGLE_BLOCK_VOCAB, _block_points, _gemm_shapes,  # noqa: E402
                                    block_key, run_micro, single_block_layout)
from designer.profile.blocks import ssd_chunked_flops  # noqa: E402
from designer.profile.hardware import HARDWARE_DIR, HardwareError, load_hardware  # noqa: E402
from designer.profile.roofline import Roofline  # noqa: E402
from designer.profile.scenario import Scenario  # noqa: E402

PRESETS = ["nemotron-h-8b", "llama-3.1-8b", "nemotron-3-nano-30b-a3b"]   # M * - and E, Mamba-2, SwiGLU + RoPE
COMPONENT_NAMES = {"launch", "copy", "gemm", "sdpa_prefill", "sdpa_decode", "ssd_scan", "causal_conv", "gated_rmsnorm",
                   "state_update"}


# ---- the micro-benchmarks (tiny, on the CPU) -----------------------------------------------------


@pytest.fixture(scope="module")
def quick_runs():
    layouts = [load_layout(p) for p in PRESETS]
    return {k: run_micro(layouts, k, "cpu", quick=True) for k in ("torch", "triton")}


def test_quick_cpu_micro_run_has_the_documented_structure(quick_runs):
    for kernels, d in quick_runs.items():
        assert {"format", "kernels", "kernels_in_use", "device", "dtype", "quick", "layouts", "settings", "environment",
                "blocks", "points", "components", "elapsed_s", "complete"} <= set(d)
        assert d["complete"] is True
        assert (d["kernels"], d["kernels_in_use"], d["device"], d["dtype"]) == (kernels, "torch", "cpu", "float32")
        assert {"gpu", "driver", "cuda", "torch", "packages", "kernels_in_use", "date"} <= set(d["environment"])
        assert {"triton", "fla-core", "torch"} <= set(d["environment"]["packages"])
        keys = {b["key"] for b in d["blocks"]}
        assert keys == {f"{p}-reduced:{s}" for p, syms in (("nemotron-h-8b", "M*-"), ("llama-3.1-8b", "*-"),
                                                          ("nemotron-3-nano-30b-a3b", "M*E")) for s in [*syms, "shell"]}
        for b in d["blocks"]:
            assert "error" not in b
            if b["kind"] == "shell":          # the model with no block: embedding, final norm, LM head
                assert b["symbol"] is None and "single_block" not in b
            else:
                assert b["single_block"]["pattern"] == b["symbol"] and b["kind"] == BLOCK_KIND[b["symbol"]]
                assert b["decode_repeat"] == micro_mod.QUICK.decode_repeat > 1 and b["decode_params"] > b["params"]
        shell = [p for p in d["points"] if p["block"] == "nemotron-h-8b-reduced:shell"]
        assert {(p["batch"], p["prompt"]) for p in shell if p["metric"] == "prefill"} == \
            set(micro_mod.QUICK.prefill) | set(micro_mod.QUICK.mamba_prefill)
        assert {p["batch"] for p in shell if p["metric"] == "decode"} == set(micro_mod.QUICK.decode_batches)
        assert json.loads(json.dumps(d, allow_nan=False)) == json.loads(json.dumps(d))   # strict JSON
        for p in d["points"]:
            assert "error" not in p and "skipped" not in p, p
            assert p["measured_s"] > 0
            if p["metric"] == "prefill":               # one block, one run per sample
                assert set(p) == {"block", "metric", "batch", "prompt", "measured_s"}
            elif p["block"].endswith(":shell"):         # no block to repeat; its steps timed like the blocks'
                assert set(p) == {"block", "metric", "mode", "batch", "context", "replays", "measured_s"}
                assert p["replays"] == micro_mod.QUICK.replays
            else:                                      # steady state: the block repeated, steps back to back
                assert set(p) == {"block", "metric", "mode", "batch", "context", "repeat", "replays", "measured_s"}
                assert (p["repeat"], p["replays"]) == (micro_mod.QUICK.decode_repeat, micro_mod.QUICK.replays)
                assert p["repeat"] > 1
            if p["metric"] == "decode":
                assert p["mode"] == "eager"            # no CUDA graphs on the CPU
        batches = {(p["batch"], p["prompt"]) for p in d["points"]
                   if p["metric"] == "prefill" and p["block"].endswith(":M")}
        assert batches == set(micro_mod.QUICK.prefill) | set(micro_mod.QUICK.mamba_prefill)
        contexts = {p["context"] for p in d["points"] if p["metric"] == "decode" and p["block"].endswith(":*")}
        assert contexts == set(micro_mod.QUICK.attention_contexts)
        assert {c["name"] for c in d["components"]} == COMPONENT_NAMES
        for c in d["components"]:
            assert "error" not in c, c


def test_each_component_is_measured_at_its_own_layouts_shapes(quick_runs):
    layouts = {f"{p}-reduced": reduced(load_layout(p)) for p in PRESETS}
    for c in quick_runs["torch"]["components"]:
        if "block" not in c:
            continue
        name, symbol = c["block"].split(":")
        lay = layouts[name]
        if c["name"] == "gemm" and symbol != "head":
            assert (c["op"], c["in"], c["out"]) in _gemm_shapes(lay, symbol)
            assert c["flops"] == 2.0 * c["tokens"] * c["in"] * c["out"]
        if c["name"] == "ssd_scan":
            m = lay.mamba
            assert c["flops"] == ssd_chunked_flops(c["tokens"], m.num_heads, m.head_dim, m.state_size, m.chunk_size)


def test_single_block_layout_keeps_the_widths_and_cuts_the_vocabulary():
    llama = load_layout("llama-3.1-8b")
    one = single_block_layout(llama, "*")
    assert one.pattern == "*" and one.family is None and one.vocab_size == SINGLE_BLOCK_VOCAB
    assert one.attention == llama.attention and one.hidden_size == llama.hidden_size
    from designer.export.model_export import model_args
    assert model_args(one).family == "nemotron_h"     # one attention block, not half a llama decoder layer


@pytest.mark.parametrize("preset,symbol", [("nemotron-h-8b", "M"), ("llama-3.1-8b", "*"), ("llama-3.1-8b", "-"),
                                           ("nemotron-3-nano-30b-a3b", "E")])
def test_the_forward_a_decode_graph_captures_runs_on_every_single_block_model(preset, symbol):
    """DecodeGraph needs CUDA; the step it captures (position as a tensor, a placeholder cache for the MLP
    and MoE models, which cache nothing) runs here."""
    from designer.export.model_export import model_args
    from designer.export.template import load_template
    mod = load_template("model.py")
    single = single_block_layout(reduced(load_layout(preset)), symbol, None)
    model = mod.build_model(args=model_args(single), device="cpu").eval()
    cache = model.new_cache(2, 40)
    micro_mod._ensure_cache_tensor(cache, 2, "cpu")
    assert cache.tensors() and cache.tensors()[0].shape[0] == 2
    cache.seq_len = 30
    cache.position.fill_(30)
    with torch.no_grad():
        logits = model(torch.zeros(2, 1, dtype=torch.long), cache=cache, position=cache.position)
    assert logits.shape == (2, 1, single.vocab_size) and torch.isfinite(logits).all()
    cache.reset()


class _StandInGraph:
    """The template's DecodeGraph without CUDA: the same interface and cache handling, the captured step run
    eagerly (so the graph decode points of run_micro are exercised on the CPU)."""

    def __init__(self, model, cache):
        self.model, self.cache = model, cache
        self.ids = torch.zeros(cache.tensors()[0].shape[0], 1, dtype=torch.long)
        model(self.ids, cache=cache, position=cache.position)     # "capture"
        cache.reset()

    def __call__(self, ids):
        self.ids.copy_(ids)
        self.cache.position.fill_(self.cache.seq_len)
        return self.model(self.ids, cache=self.cache, position=self.cache.position)   # seq_len += 1, as a replay


def test_graph_decode_points_are_timed_through_decode_graph(monkeypatch):
    from designer.export.template import load_template
    mod = load_template("model.py")
    monkeypatch.setattr(mod, "DecodeGraph", _StandInGraph)
    runner = micro_mod._Runner("cpu", 0, None, None)
    for preset, symbol in [("nemotron-h-8b", "M"), ("llama-3.1-8b", "*"), ("llama-3.1-8b", "-"),
                           ("nemotron-3-nano-30b-a3b", "E")]:
        block, points = micro_mod._run_block(mod, reduced(load_layout(preset)), symbol, micro_mod.QUICK, "cpu",
                                             torch.float32, True, runner, micro_mod._timer("cpu"))
        graph = [p for p in points if p.get("mode") == "graph"]
        assert graph and "error" not in block
        for p in graph:
            if symbol == "E":
                assert "host" in p["skipped"]
            else:
                assert p["measured_s"] > 0, p


def test_the_full_grid_times_decode_in_steady_state():
    assert (FULL.decode_repeat, FULL.replays) == (micro_mod.DECODE_REPEAT, micro_mod.DECODE_REPLAYS) == (8, 10)
    one = single_block_layout(load_layout("llama-3.1-8b"), "*")
    assert micro_mod.repeated_layout(one, 8).pattern == "********"
    assert micro_mod.repeated_layout(single_block_layout(load_layout("nemotron-h-8b"), "M"), 8).pattern == "M" * 8


def test_a_decode_sample_is_several_steps_back_to_back_divided_by_their_number():
    from designer.export.model_export import model_args
    from designer.export.template import load_template
    mod = load_template("model.py")
    grid = dataclasses.replace(micro_mod.QUICK, replays=5, warmup=0, iters=1)
    single = single_block_layout(reduced(load_layout("llama-3.1-8b")), "*", None)
    model = mod.build_model(args=model_args(micro_mod.repeated_layout(single, 3)), device="cpu").eval()
    steps = []
    real_forward = model.forward

    def counting(*args, **kwargs):
        steps.append(kwargs["cache"].seq_len)
        return real_forward(*args, **kwargs)

    model.forward = counting

    def one_sample(fn, warmup, iters):       # a timer whose one sample "takes" 1 s
        fn()
        return 1.0

    with torch.no_grad():
        t = micro_mod._decode_s(mod, model, 2, 40, "eager", single.vocab_size, "cpu", one_sample, grid)
    assert t == pytest.approx(1 / 5) and steps == [40, 41, 42, 43, 44]      # 5 consecutive positions


def test_repeated_decode_points_run_fewer_blocks_where_the_caches_do_not_fit(monkeypatch):
    """The memory estimate of r blocks at batch b is r * b GB here, with 9 GB free: batch 1 runs 2 of the 4
    blocks, batch 2 runs 1 (and the model keeps its 4 blocks for the next point)."""
    monkeypatch.setattr(micro_mod, "_free_bytes", lambda device: 1e10)
    monkeypatch.setattr(micro_mod, "_memory_estimate",
                        lambda layout, precision, batch, context, prompt: 4e9 * len(layout.pattern) * batch)
    from designer.export.template import load_template
    mod = load_template("model.py")
    ran = []
    real = micro_mod._decode_s

    def spy(mod_, model, *args):
        ran.append(len(model.body.layers))
        return real(mod_, model, *args)

    monkeypatch.setattr(micro_mod, "_decode_s", spy)
    grid = dataclasses.replace(micro_mod.QUICK, decode_repeat=4, prefill=())
    runner = micro_mod._Runner("cpu", 0, None, None)
    block, points = micro_mod._run_block(mod, reduced(load_layout("llama-3.1-8b")), "-", grid, "cpu",
                                         torch.float32, False, runner, micro_mod._timer("cpu"))
    decode = [p for p in points if p["metric"] == "decode"]
    assert block["decode_repeat"] == 4 and [(p["batch"], p["repeat"]) for p in decode] == [(1, 2), (2, 1)]
    assert ran == [2, 1] and all(p["measured_s"] > 0 for p in decode)


def test_a_failing_point_is_recorded_and_the_run_goes_on(monkeypatch):
    real = micro_mod._prefill_s

    def flaky(model, batch, prompt, *rest):
        if prompt == 64:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(model, batch, prompt, *rest)

    monkeypatch.setattr(micro_mod, "_prefill_s", flaky)
    d = run_micro([load_layout("llama-3.1-8b")], "torch", "cpu", quick=True)
    failed = [p for p in d["points"] if "error" in p]
    assert failed and all(p["prompt"] == 64 and "out of memory" in p["error"] for p in failed)
    assert all(p["measured_s"] > 0 for p in d["points"] if p not in failed)


def test_partial_results_are_handed_to_the_checkpoint_after_each_block():
    seen = []
    d = run_micro([load_layout("llama-3.1-8b")], "torch", "cpu", quick=True,
                  checkpoint=lambda partial: seen.append(json.loads(json.dumps(partial))))
    assert [len(s["blocks"]) for s in seen] == [0, 1, 2, 3]       # after the components, the shell, each block
    assert all(s["complete"] is False for s in seen) and seen[0]["components"]
    assert seen[-1]["points"] == d["points"] and d["complete"] is True


def test_points_after_the_time_budget_are_skipped():
    d = run_micro([load_layout("llama-3.1-8b")], "torch", "cpu", quick=True, budget_s=1e-9)
    assert all("time budget" in p["skipped"] for p in d["points"] + d["components"])


# ---- the fit -------------------------------------------------------------------------------------

TRUTH = {"attention": 0.45, "scan": 0.2, "mamba_elementwise_passes": 6.0, "attention_elementwise_passes": 3.0,
         "mlp_elementwise_passes": 2.0, "mamba_kernels": 12.0, "attention_kernels": 9.0, "mlp_kernels": 5.0,
         "decode_gemm_memory": 0.7, "attention_decode_memory": 0.85, "state_update_passes": 3.0,
         "decode_kernel_overhead_s": 2e-6, "gemm": 0.6, "memory": 0.8, "kernel_overhead_s": 6e-6,
         "mamba_decode_kernels": 4.0, "attention_decode_kernels": 7.0}


def true_hardware(truth: dict, kernels: str):
    """The h200 profile with `truth` as the whole of the backend's efficiency terms."""
    hw = load_hardware("h200")
    return dataclasses.replace(hw, efficiency=dataclasses.replace(hw.efficiency_for(kernels), **truth), kernels={})


def synthetic_micro(truth: dict, kernels: str = "torch", components: bool = True, presets=PRESETS[:2],
                    repeat: int = 1) -> dict:
    """A micro-benchmark document whose times are the roofline's own predictions with `truth` as the
    backend's terms, and whose components measure gemm, memory and the launch cost at their truth. repeat > 1:
    the decode points ran the block repeated that many times (and say so), as run_micro's do."""
    hw = load_hardware("h200")
    hw_true = true_hardware(truth, kernels)
    efficiency = hw_true.efficiency
    blocks, points = [], []
    for name in presets:
        lay = load_layout(name)
        for s in BLOCK_KIND:
            if s not in lay.pattern:
                continue
            single, key = single_block_layout(lay, s), block_key(lay, s)
            blocks.append({"key": key, "layout": name, "symbol": s, "single_block": layout_to_dict(single, full=True)})
            scenario = Scenario(precision="bf16", tp=1, pp=1, prefill_mode="parallel", kernels=kernels)
            roof = Roofline(single, hw_true, scenario)
            roof_decode = Roofline(micro_mod.repeated_layout(single, repeat), hw_true, scenario)
            for p in _block_points(s, FULL, graphs=True):
                if p["metric"] == "prefill":
                    points.append({"block": key, **p, "measured_s": roof.prefill_s(p["batch"], p["prompt"])})
                else:
                    p = {**p, **({"repeat": repeat, "replays": 10} if repeat > 1 else {})}
                    points.append({"block": key, **p, "measured_s": roof_decode.tpot_s(p["batch"], p["context"])})
    comps = []
    if components:
        peak, hbm = hw.peak("bf16"), hw.memory_bandwidth_bytes_per_s
        comps = [{"name": "gemm", "op": "up_proj", "tokens": 16384, "flops": 2e12, "bytes": 1e9,
                  "measured_s": 2e12 / (truth.get("gemm", efficiency.gemm) * peak)},
                 {"name": "gemm", "op": "in_proj", "tokens": 1, "flops": 2e8, "bytes": 2e8,
                  "measured_s": 2e8 / (truth.get("decode_gemm_memory", 0.7) * hbm)},
                 {"name": "copy", "flops": 0.0, "bytes": 4e9,
                  "measured_s": 4e9 / (truth.get("memory", efficiency.memory) * hbm)},
                 {"name": "launch", "graph_small_kernel_s": truth.get("decode_kernel_overhead_s", 1e-6),
                  "eager_small_kernel_s": truth.get("kernel_overhead_s", efficiency.kernel_overhead_s)}]
    return {"format": micro_mod.FORMAT, "kernels": kernels, "kernels_in_use": kernels, "device": "cuda",
            "dtype": "bfloat16", "layouts": list(presets), "blocks": blocks, "points": points, "components": comps,
            "environment": {"gpu": "NVIDIA H200", "driver": "570.00", "torch": "2.11", "date": "2026-01-01T00:00:00Z",
                            "packages": {"triton": "3.6.0", "fla-core": "0.6.0"}}}


def with_shell(micro: dict, truth: dict, prefill_s: float = 4e-4, decode_s: float = 3e-5) -> dict:
    """`micro` as if each single-block model also paid a fixed cost the roofline does not model (its
    embedding, final norm, LM head, input copies), measured alone by a shell point per layout and shape:
    each point's time becomes its R blocks' own (Roofline(R + 1 blocks) - Roofline(1 block), R its "repeat")
    plus the shell's."""
    hw = true_hardware(truth, micro["kernels"])
    out = {**micro, "blocks": list(micro["blocks"]), "points": []}
    shells = {}
    for b in micro["blocks"]:
        one = layout_from_dict(b["single_block"])
        scenario = Scenario(precision="bf16", tp=1, pp=1, prefill_mode="parallel", kernels=micro["kernels"])
        for p in micro["points"]:
            if p["block"] != b["key"]:
                continue
            n = p.get("repeat", 1)
            rooflines = [Roofline(lay, hw, scenario) for lay in (one, one.with_pattern(one.pattern * (n + 1)))]
            t = [r.prefill_s(p["batch"], p["prompt"]) if p["metric"] == "prefill" else
                 r.tpot_s(p["batch"], p["context"]) for r in rooflines]
            fixed = prefill_s * (1 + p.get("prompt", 0) * p["batch"] / 65536) if p["metric"] == "prefill" else decode_s
            out["points"].append({**p, "measured_s": t[1] - t[0] + fixed})
            shape = {k: p[k] for k in ("metric", "mode", "batch", "prompt") if k in p}
            shells[(b["layout"], tuple(sorted(shape.items())))] = {"block": f"{b['layout']}:shell", **shape,
                                                                    "context": 4096, "measured_s": fixed}
    out["points"] += list(shells.values())
    out["blocks"] += [{"key": f"{name}:shell", "layout": name, "symbol": None, "kind": "shell"}
                      for name in micro["layouts"]]
    return out


def _truth() -> dict:
    """TRUTH for the Efficiency fields this version of the profiler has."""
    return {k: v for k, v in TRUTH.items() if k in efficiency_fields()}


@pytest.mark.parametrize("method", ["scipy", "numpy"])
def test_fit_recovers_the_terms_the_measurements_were_made_with(method):
    truth = _truth()
    assert {"scan", "attention", "gemm", "memory", "kernel_overhead_s"} <= set(truth)
    # on the profile without its fitted backend blocks (the fit starts from the uncalibrated terms either way)
    uncalibrated = dataclasses.replace(load_hardware("h200"), kernels={})
    result = fit(synthetic_micro(truth), uncalibrated, "torch", method=method)
    for name, value in truth.items():
        assert result["overrides"][name] == pytest.approx(value, rel=0.02), (name, result["terms"])
    assert result["overrides"]["calibrated"] is True
    assert result["max_abs_error"] < 1e-3 and result["points"] == len(result["residuals"])
    sources = {t["name"]: t["source"] for t in result["terms"]}
    assert {n for n, s in sources.items() if s == "component"} == COMPONENT_FIRST & set(truth)
    assert result["before"]["median_abs_error"] > result["median_abs_error"]
    # the eager decode points are measured too but not fitted (the fit matches CUDA-graph decode)
    assert result["decode"] == "graph" and {p.get("mode") for p in result["unfitted"]} == {"eager"}
    assert {p.get("mode") for p in result["residuals"]} == {None, "graph"}


def test_without_components_the_machine_constants_keep_the_profile_and_the_rest_is_recovered():
    base = load_hardware("h200").efficiency_for("triton")
    truth = {**_truth(), "memory": base.memory, "kernel_overhead_s": base.kernel_overhead_s}
    result = fit(synthetic_micro(truth, kernels="triton", components=False), "h200", "triton")
    got = {name: result["overrides"].get(name, getattr(base, name)) for name in truth}
    # where no point is launch-bound, a kernel count only shows times the GPU's per-kernel cost: the products
    # come back, the split between count and cost is free (the launch component pins it when measured)
    counts = [n for n in truth if n.endswith("_kernels")]
    for name, value in truth.items():
        if name in counts:
            assert got[name] * got["decode_kernel_overhead_s"] == pytest.approx(
                value * truth["decode_kernel_overhead_s"], rel=0.02), name
        elif name != "decode_kernel_overhead_s":
            assert got[name] == pytest.approx(value, rel=0.02), name
    assert result["max_abs_error"] < 1e-3
    notes = {t["name"]: t["note"] for t in result["terms"]}
    # no point is launch-bound, and the fit starts from the uncalibrated counts: the per-launch cost has no effect
    assert "not separable" in notes["memory"] and notes["kernel_overhead_s"] == "no effect at the measured points"


def test_the_models_fixed_cost_is_measured_by_its_shell_and_taken_out():
    """A fixed cost per single-block model (30 us a decode step, 0.4 ms+ a prefill) would be charged to the
    block, and so 52 times to a 52-block model; measured by the shell, it is taken out and the terms come back."""
    truth = _truth()
    micro = with_shell(synthetic_micro(truth), truth)
    result = fit(micro, "h200", "torch")
    for name, value in truth.items():
        assert result["overrides"][name] == pytest.approx(value, rel=0.02), name
    assert all(r["shell_s"] > 0 and r["target_s"] < r["measured_s"] for r in result["residuals"])
    # without the shell points the same times give biased terms
    blind = {**micro, "points": [p for p in micro["points"] if not p["block"].endswith(":shell")]}
    biased = fit(blind, "h200", "torch")["overrides"]
    assert any(abs(biased[n] / truth[n] - 1) > 0.1 for n in truth if truth[n])


@pytest.mark.parametrize("shell", [False, True])
def test_fit_recovers_the_terms_from_repeated_decode_blocks(shell):
    """Decode points whose model repeats its block 8 times (run_micro's steady state) are matched against 8
    blocks of the roofline (R(9) - R(1) beside a shell, R(8) without): the terms come back within 2%."""
    truth = _truth()
    micro = synthetic_micro(truth, repeat=8)
    assert {p.get("repeat") for p in micro["points"] if p["metric"] == "decode"} == {8}
    if shell:
        micro = with_shell(micro, truth)
    result = fit(micro, "h200", "torch")
    for name, value in truth.items():
        assert result["overrides"][name] == pytest.approx(value, rel=0.02), (name, result["terms"])
    assert result["max_abs_error"] < 1e-3
    assert {r.get("repeat") for r in result["residuals"] if r["metric"] == "decode"} == {8}
    # read as one block each, the same times give other terms: the repeat is what they are compared with
    flat = {**micro, "points": [{k: v for k, v in p.items() if k != "repeat"} for p in micro["points"]]}
    wrong = fit(flat, "h200", "torch")["overrides"]
    assert any(abs(wrong[n] / truth[n] - 1) > 0.1 for n in truth if truth[n])


# the torch terms fitted from bench/results/calibration_h200_micro_torch_one_block.json (one-block decode points, no
# "repeat"), a file from before decode points could repeat their block;
# the fit of that file, re-pinned on 2026-12-03 when a prefill's host launches began to overlap its GPU work and
# decode got per-kind node counts; started from these values the fit must end on them (a fixed point), and a
# file without "repeat" must fit like one with "repeat": 1 written out
H200_TORCH_ONE_BLOCK = {"attention": 0.3738, "scan": 0.02388, "mamba_elementwise_passes": 57.5,
                        "attention_elementwise_passes": 16.01, "mlp_elementwise_passes": 2.727, "mamba_kernels": 431.3,
                        "attention_kernels": 153.0, "mlp_kernels": 0.0, "decode_gemm_memory": 0.4762,
                        "attention_decode_memory": 0.3538, "state_update_passes": 11.94,
                        "mamba_decode_kernels": 95.02, "attention_decode_kernels": 254.7,
                        "decode_kernel_overhead_s": 9.043e-07, "gemm": 0.7553, "memory": 0.8506,
                        "kernel_overhead_s": 7.549e-06}


def test_a_run_without_repeat_fits_as_it_did_before():
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "bench" / "results" / "calibration_h200_micro_torch_one_block.json"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    micro = load_micro_file(path)["torch"]
    assert not any("repeat" in p for p in micro["points"])
    # the profile as it was when those terms were fitted (a later --write must not change this check)
    hw = load_hardware("h200")
    expected = {k: v for k, v in H200_TORCH_ONE_BLOCK.items() if k in efficiency_fields()}
    pinned = dataclasses.replace(hw, efficiency=dataclasses.replace(hw.efficiency_for("torch"), **expected), kernels={})
    result = fit(micro, pinned, "torch")
    for name, value in expected.items():
        assert result["overrides"][name] == pytest.approx(value, rel=1e-6, abs=1e-12), name
    # "repeat": 1 written out is the same as no repeat
    explicit = {**micro, "points": [{**p, "repeat": 1} if p["metric"] == "decode" else p for p in micro["points"]]}
    assert fit(explicit, pinned, "torch")["overrides"] == result["overrides"]


def test_with_noisy_times_the_components_hold_the_nearly_degenerate_split():
    """scan and the Mamba elementwise passes both grow with the tokens (only the SSD's inter-chunk term tells
    them apart): 2% noise moves their split a lot, not the predictions; the SSD component as a weak prior
    keeps scan near what it measures."""
    import numpy as np
    truth = _truth()
    micro = with_shell(synthetic_micro(truth), truth)
    rng = np.random.default_rng(1)
    for p in micro["points"]:
        p["measured_s"] *= float(np.exp(rng.normal(0.0, 0.02)))
    free = fit(micro, "h200", "torch")
    peak = load_hardware("h200").peak("bf16")
    micro["components"].append({"name": "ssd_scan", "block": "nemotron-h-8b:M", "tokens": 16384, "flops": 1e12,
                                "measured_s": 1e12 / (truth["scan"] * peak)})
    anchored = fit(micro, "h200", "torch")
    for result in (free, anchored):
        assert result["median_abs_error"] < 0.02
    off = {name: abs(r["overrides"]["scan"] / truth["scan"] - 1)
           for name, r in (("free", free), ("anchored", anchored))}
    assert off["anchored"] < 0.3 and off["anchored"] < off["free"]
    assert {t["name"]: t["note"] for t in anchored["terms"]}["scan"] == "its component as a weak prior"


def test_points_left_out_of_the_fit_are_still_predicted_even_for_a_block_with_none_fitted():
    truth = _truth()
    micro = with_shell(synthetic_micro(truth), truth)
    for p in micro["points"]:                  # the MLP block lost in its model's fixed cost everywhere
        if p["block"] == "llama-3.1-8b:-":
            p["measured_s"] = 1e-6 + next(s["measured_s"] for s in micro["points"] if s["block"] == "llama-3.1-8b:shell"
                                          and s["metric"] == p["metric"] and s["batch"] == p["batch"]
                                          and s.get("prompt") == p.get("prompt") and s.get("mode") == p.get("mode"))
    result = fit(micro, "h200", "torch")
    left = [r for r in result["unfitted"] if r["block"] == "llama-3.1-8b:-"]
    assert left and all("quarter" in r["note"] and r["predicted_s"] > 0 for r in left)
    assert not [r for r in result["residuals"] if r["block"] == "llama-3.1-8b:-"]


def test_terms_the_points_cannot_see_are_not_fitted():
    micro = synthetic_micro(_truth(), presets=["llama-3.1-8b"])       # attention and MLP blocks only
    result = fit(micro, "h200", "torch")
    terms = {t["name"]: t for t in result["terms"]}
    for name in ("scan", "mamba_elementwise_passes", "state_update_passes"):
        if name in terms:
            assert terms[name]["source"] == "profile" and "no effect" in terms[name]["note"]
            assert name not in result["overrides"]


def test_fit_refuses_data_it_cannot_use():
    micro = synthetic_micro(_truth())
    with pytest.raises(CalibrationError, match="not 'triton'"):
        fit(micro, "h200", "triton")
    for p in micro["points"]:
        p.pop("measured_s")
        p["error"] = "RuntimeError: boom"
    with pytest.raises(CalibrationError, match="no measured single-block point"):
        fit(micro, "h200", "torch")
    with pytest.raises(CalibrationError):
        fit({"kernels": "torch"}, "h200", "torch")


def test_a_cpu_run_fits_its_eager_decode_points(quick_runs):
    result = fit(quick_runs["torch"], "h200", "torch")
    assert result["decode"] == "eager" and result["precision"] == "fp32"
    assert {"overrides", "residuals", "median_abs_error", "max_abs_error"} <= set(result)


# ---- the profile file ------------------------------------------------------------------------------


@pytest.fixture
def profile_dir(tmp_path):
    """A copy of h200.yaml without its calibrated `kernels:`/`calibration:` blocks (the committed fit)."""
    text = (HARDWARE_DIR / "h200.yaml").read_text()
    for marker in ("\n# per-kernel-backend", "\nkernels:", "\ncalibration:"):
        if (cut := text.find(marker)) >= 0:
            text = text[:cut + 1]
    assert "kernels" not in yaml.safe_load(text) and "calibration" not in yaml.safe_load(text)
    (tmp_path / "h200.yaml").write_text(text)
    return tmp_path


def test_write_profile_round_trips_and_keeps_the_rest_of_the_file(profile_dir):
    path = profile_dir / "h200.yaml"
    before = path.read_text()
    overrides = {"scan": 0.21, "mamba_elementwise_passes": 5.5, "kernel_overhead_s": 6.1e-6, "calibrated": True}
    overrides = {k: v for k, v in overrides.items() if k in efficiency_fields()}
    prov = {"gpu": "NVIDIA H200", "date": "2026-01-01T00:00:00Z", "command": "designer calibrate"}
    write_profile("h200", "torch", overrides, prov, directory=profile_dir)
    write_profile("h200", "triton", {"scan": 0.4}, {**prov, "backend": "triton"}, directory=profile_dir)
    text = path.read_text()
    for line in before.splitlines():                 # every line kept, comments included
        assert line in text
    hw = load_hardware(str(path))
    assert hw.efficiency == load_hardware("h200").efficiency
    torch_eff = hw.efficiency_for("torch")
    for k, v in overrides.items():
        assert getattr(torch_eff, k) == v
    assert hw.efficiency_for("triton").scan == 0.4
    assert hw.calibration["torch"]["gpu"] == "NVIDIA H200" and hw.calibration["triton"]["backend"] == "triton"
    # a second torch calibration replaces its values in place and keeps the other backend
    write_profile("h200", "torch", {"scan": 0.25}, prov, directory=profile_dir)
    again = path.read_text()
    tops = [line.split(":")[0] for line in again.splitlines() if line[:1].isalpha()]
    assert tops.count("kernels") == 1 and tops.count("calibration") == 1
    hw = load_hardware(str(profile_dir / "." / "h200.yaml"))     # another path: not the cached profile
    assert hw.efficiency_for("torch").scan == 0.25 and hw.efficiency_for("triton").scan == 0.4


def test_write_profile_never_writes_a_profile_that_does_not_load(profile_dir):
    path = profile_dir / "h200.yaml"
    before = path.read_text()
    with pytest.raises(HardwareError):
        write_profile("h200", "torch", {"gemm": 2.0}, {}, directory=profile_dir)
    assert path.read_text() == before
    with pytest.raises(HardwareError):
        write_profile("no-such-gpu", "torch", {}, {}, directory=profile_dir)


def test_profile_text_replaces_blocks_in_place():
    text = "# header\nname: x\nkernels: {torch: {scan: 0.1}}\ncalibration:\n  torch: {gpu: a}\nnotes: keep\n"
    out = profile_text(text, {"torch": {"scan": 0.2}}, {"torch": {"gpu": "b"}})
    assert out.splitlines()[0] == "# header" and out.splitlines()[-1] == "notes: keep"
    import yaml
    assert yaml.safe_load(out) == {"name": "x", "kernels": {"torch": {"scan": 0.2}},
                                   "calibration": {"torch": {"gpu": "b"}}, "notes": "keep"}


def test_provenance_names_the_machine_and_the_command():
    micro = synthetic_micro(_truth())
    p = provenance(micro, fit(micro, "h200", "torch"), command="designer calibrate --hardware h200", source="m.json")
    assert {"gpu", "driver", "torch", "packages", "date", "backend", "command", "source", "fitted"} <= set(p)
    assert p["backend"] == "torch" and p["source"] == "m.json"


# ---- the command -------------------------------------------------------------------------------------


def _fail(capsys, argv) -> dict:
    with pytest.raises(SystemExit) as e:
        main(["calibrate", *argv, "--json"])
    assert e.value.code == 2
    return json.loads(capsys.readouterr().out)["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_no_gpu_and_no_from_exits_2_with_one_clear_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--hardware", "h200"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA" in err[0] and "--from" in err[0]
    assert "no CUDA" in _fail(capsys, ["--hardware", "h200"])["message"]


@pytest.mark.parametrize("argv,needle", [
    (["--kernels", "cutlass"], "unknown backend"),
    (["--device", "tpu"], "unknown device"),
    (["--decode", "lazy"], "unknown mode"),
    (["--hardware", "no-such-gpu"], "unknown hardware"),
    (["--device", "cpu", "--quick", "--write"], "--write"),
    (["--from", "a.json", "--out", "b.json"], "--out"),
    (["--budget-s", "0"], "positive"),
])
def test_bad_options_exit_2(capsys, argv, needle):
    assert needle in _fail(capsys, argv)["message"]


def test_from_a_bad_file_exits_2(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not JSON" in _fail(capsys, ["--from", str(bad)])["message"]
    bad.write_text(json.dumps({"points": []}))
    assert "micro-benchmark" in _fail(capsys, ["--from", str(bad)])["message"]
    broken = synthetic_micro(_truth())
    broken["points"][0]["batch"] = "one"
    bad.write_text(json.dumps(broken))
    assert "points[0].batch" in _fail(capsys, ["--from", str(bad)])["message"]
    assert "cannot read" in _fail(capsys, ["--from", str(tmp_path / "missing.json")])["message"]
    good = tmp_path / "torch.json"
    good.write_text(json.dumps(synthetic_micro(_truth())))
    assert "no triton" in _fail(capsys, ["--from", str(good), "--kernels", "triton"])["message"]


def test_quick_cpu_run_prints_one_json_document_and_saves_what_from_reads(capsys, tmp_path):
    out = tmp_path / "m" / "micro.json"
    code = main(["calibrate", "--device", "cpu", "--quick", "--kernels", "torch", "--layouts", "llama-3.1-8b",
                 "--out", str(out), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)          # exactly one document
    assert doc["kernels"] == ["torch"] and doc["out"] == str(out) and "micro" not in doc
    fitted = doc["results"]["torch"]
    assert {"overrides", "terms", "residuals", "median_abs_error", "max_abs_error", "before"} <= set(fitted)
    saved = json.loads(out.read_text())
    assert saved["format"] == "designer.calibrate/1" and saved["micro"]["torch"]["kernels"] == "torch"
    decode = [p for p in saved["micro"]["torch"]["points"] if p["metric"] == "decode" and "shell" not in p["block"]]
    assert decode and all(p["repeat"] > 1 and p["replays"] > 1 for p in decode)
    assert {r.get("repeat") for r in fitted["residuals"] + fitted["unfitted"] if r["metric"] == "decode"} == {2}
    assert saved["micro"]["torch"]["complete"] is True
    assert set(load_micro_file(out)) == {"torch"}
    code = main(["calibrate", "--from", str(out), "--kernels", "torch", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["results"]["torch"]["overrides"] == fitted["overrides"]
    # CPU measurements never go into a GPU profile
    assert "measured on cpu" in _fail(capsys, ["--from", str(out), "--write"])["message"]


def test_a_backend_that_fails_midway_keeps_and_fits_what_it_measured(capsys, tmp_path, monkeypatch):
    real = micro_mod._run_block
    calls = []

    def dies_on_the_third_block(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise RuntimeError("CUDA error: an illegal memory access was encountered (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(micro_mod, "_run_block", dies_on_the_third_block)
    out = tmp_path / "micro.json"
    code = main(["calibrate", "--device", "cpu", "--quick", "--kernels", "torch", "--layouts", "llama-3.1-8b",
                 "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and "overrides" in doc["results"]["torch"]
    saved = json.loads(out.read_text())["micro"]["torch"]
    assert "illegal memory access" in saved["error"] and saved["complete"] is False
    assert [b["kind"] for b in saved["blocks"]] == ["shell", "attention"]


def test_from_gpu_measurements_writes_the_profile(capsys, tmp_path, profile_dir):
    src = tmp_path / "gpu.json"
    src.write_text(json.dumps({"format": "designer.calibrate/1", "micro": {
        "torch": synthetic_micro(_truth()), "triton": {"error": "--kernels triton needs fla-core"}}}))
    target = profile_dir / "h200.yaml"
    code = main(["calibrate", "--hardware", str(target), "--from", str(src), "--write"])
    text = capsys.readouterr().out
    assert code == 0 and "efficiency terms" in text and "wrote kernels.torch" in text
    hw = load_hardware(str(target))
    assert hw.efficiency_for("torch").scan == pytest.approx(TRUTH["scan"], rel=0.02)
    assert hw.calibration["torch"]["source"] == str(src) and "triton" not in hw.kernels


def test_calibrate_command_module_imports_no_torch():
    code = "import sys, designer.cli, designer.commands.calibrate; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("context", [1, 4096, 16384, 65536, 65537])
def test_micro_decode_cache_lengths_are_multiples_of_8_and_hold_every_step(context):
    # a cache of context + 42 positions (2 mod 8) leaves the static-cache attention's bf16 rows misaligned for
    # cuBLAS; the micro-benchmark and the whole-model measurement now both round up (model.aligned_cache_len)
    for grid in (micro_mod.QUICK, FULL):
        n = micro_mod._decode_cache_len(context, grid)
        steps = micro_mod._decode_steps(grid)
        assert n % 8 == 0 and context + steps <= n < context + steps + 8
    assert micro_mod._decode_cache_len(65536, FULL) == 65536 + 48   # FULL runs (1 + 3) x 10 replays + 2 = 42 steps


def test_aligned_cache_len_rounds_up_to_a_multiple_of_8():
    from designer.export.templates.model import aligned_cache_len
    assert [aligned_cache_len(n) for n in (1, 8, 9, 4096 + 16, 4096 + 20, 65536 + 42)] == \
        [8, 8, 16, 4112, 4120, 65584]


def test_eager_decode_prices_a_node_at_the_eager_launch():
    """Fitted to eager decode, a decode node costs what an eager launch costs (the launch component), not a
    CUDA-graph replay's."""
    truth = _truth()
    result = fit(synthetic_micro(truth), "h200", "torch", decode="eager")
    terms = {t["name"]: t for t in result["terms"]}
    assert result["decode"] == "eager"
    assert terms["decode_kernel_overhead_s"]["value"] == truth["kernel_overhead_s"] != truth["decode_kernel_overhead_s"]
    assert terms["decode_kernel_overhead_s"]["source"] == "component"


@pytest.mark.parametrize("kernels", ["torch", "triton"])
def test_the_committed_fit_is_what_its_committed_data_gives_from_any_earlier_fit(kernels):
    """`designer calibrate --from bench/results/calibration_h200_micro_<backend>.json --write` reproduces
    profiles/hardware/h200.yaml's kernels.<backend> (4 significant digits), and so does a profile that held another
    fit before: every term starts where the uncalibrated profile has it (the triton fit of 2026-12-03 16:10 UTC,
    started from the 13:00 one, differed from a fresh start by up to 2x: mlp_kernels 9.58 vs 18.73). Both starts
    give the same fit exactly; the committed values within 1e-3 (their 4th digit may round the other way under
    another scipy; the old start missed by 0.36% or more)."""
    pytest.importorskip("scipy")     # the numpy fallback ends elsewhere on these nearly degenerate terms
    micro = json.loads((HARDWARE_DIR.parent.parent / f"bench/results/calibration_h200_micro_{kernels}.json")
                       .read_text())["micro"][kernels]
    hw = load_hardware("h200")
    committed = hw.kernels[kernels]
    other = {name: value * 0.7 for name, value in committed.items() if name != "calibrated"}
    got, from_other = (fit(micro, start, kernels)["overrides"]
                       for start in (hw, dataclasses.replace(hw, kernels={**hw.kernels, kernels: other})))
    assert got == from_other
    assert got == pytest.approx(committed, rel=1e-3)
