"""designer measure: the exported model's FLOPs and cache bytes against the analytic profiler, and the
timing pipeline (structure only; speed numbers live in bench/)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from designer.cli import main  # noqa: E402
from designer.layout import layout_from_text, load_layout, preset_names  # noqa: E402
from designer.measure.flops import (KINDS, analytic_by_kind, einsum_macs, flop_counter_by_kind,  # noqa: E402
                                    fvcore_by_kind, measure_flops, reduced)
from designer.measure.memory import measure_memory  # noqa: E402

TINY = """
name: tiny-hybrid
hidden_size: 64
vocab_size: 256
pattern: "M*-ME-"
mamba: {version: 2, num_heads: 4, head_dim: 16, n_groups: 2, state_size: 16, conv_kernel: 4, chunk_size: 16}
attention: {num_heads: 4, num_kv_heads: 2, head_dim: 16}
mlp: {intermediate_size: 128, activation: relu2}
moe: {num_experts: 8, top_k: 2, intermediate_size: 64, shared_intermediate_size: 64, activation: relu2}
"""


def _close(analytic: dict, measured: dict, tol: float = 0.02) -> None:
    for kind in KINDS:
        a, m = analytic[kind], measured[kind]
        assert (a == m == 0) or abs(a - m) <= tol * m, f"{kind}: analytic {a:g}, measured {m:g}"


def _tiny_layouts():
    return {"hybrid-m2-attn-mlp-moe": layout_from_text(TINY),
            "mamba1-falcon": reduced(load_layout("falcon-mamba-7b")).with_pattern("MM"),
            "mamba2-pure": reduced(load_layout("mamba2-2.7b")).with_pattern("MM"),
            "llama-swiglu-rope": reduced(load_layout("llama-3.1-8b")).with_pattern("*-*-"),
            "qwen-qkv-bias": reduced(load_layout("qwen2.5-7b")).with_pattern("*-")}


@pytest.mark.parametrize("name", list(_tiny_layouts()))
def test_fvcore_and_flop_counter_match_the_analytic_split_on_tiny_models(name):
    layout = _tiny_layouts()[name]
    prompt = 40   # not a multiple of the SSD chunk (16): the padded chunk is counted on both sides
    analytic = analytic_by_kind(layout, prompt)
    fv = fvcore_by_kind(layout, prompt)
    fc = flop_counter_by_kind(layout, prompt)
    _close(analytic, fv)
    _close(analytic, fc)
    assert fv == pytest.approx(fc, rel=1e-12)   # the two counters agree to the FLOP


FULL_WIDTH_BLOCKS = [("nemotron-h-8b", "M"), ("mamba2-2.7b", "M"), ("falcon-mamba-7b", "M"),
                     ("nemotron-h-8b", "*"), ("qwen2.5-7b", "*"), ("nemotron-h-8b", "-"), ("llama-3.1-8b", "-"),
                     ("nemotron-3-nano-30b-a3b", "E")]


@pytest.mark.parametrize("preset,symbol", FULL_WIDTH_BLOCKS)
@pytest.mark.parametrize("prompt", [256, 200])
def test_full_width_single_block_flops_match_on_the_meta_device(preset, symbol, prompt):
    layout = load_layout(preset).replace(pattern=symbol, family=None)   # one block: no llama/qwen2 pair
    d = measure_flops(layout, prompt, full=True)
    assert d["widths"] == "full"
    for kind, v in d["by_kind"].items():
        assert abs(v["error"]) <= 0.02, (kind, v)
    assert abs(d["total"]["error"]) <= 0.02


@pytest.mark.parametrize("preset", ["nemotron-h-8b", "nemotron-3-nano-30b-a3b"])
def test_whole_presets_at_full_width_match_on_the_meta_device(preset):
    d = measure_flops(load_layout(preset), 256, full=True)
    assert {k: v["error"] for k, v in d["by_kind"].items()} == dict.fromkeys(KINDS, 0.0)


def test_measure_flops_document_has_the_issue_keys():
    d = measure_flops(layout_from_text(TINY), 24)
    assert set(d["total"]) >= {"analytic", "measured"}
    assert set(d["by_kind"]) == set(KINDS)
    for v in d["by_kind"].values():
        assert set(v) >= {"analytic", "measured"}
    assert set(d["cross_check"]) >= set(KINDS)


def test_einsum_macs_counts_contractions_only_for_the_ssd_diagonal_block():
    b, c, l, h, n, p = 1, 3, 8, 2, 5, 7
    shapes = [(b, c, l, h, n), (b, c, l, h, n), (b, h, c, l, l), (b, c, l, h, p)]
    # C·Bᵀ (c·l·l·h·n) then (masked)·X (c·l·l·h·p); the decay mask is an elementwise product
    assert einsum_macs("bclhn,bcshn,bhcls,bcshp->bclhp", shapes) == c * l * l * h * (n + p)


def test_counted_recurrence_scan_equals_the_exported_log_depth_scan_and_a_step_loop():
    from designer.measure.flops import _recurrence_scan, counting_patches
    a, b = torch.rand(2, 13, 3, 4), torch.randn(2, 13, 3, 4)
    s, loop = torch.zeros_like(b[:, 0]), []
    for t in range(13):
        s = a[:, t] * s + b[:, t]
        loop.append(s)
    with counting_patches() as mod:
        assert mod.linear_scan is _recurrence_scan
        torch.testing.assert_close(mod.linear_scan(a, b), torch.stack(loop, dim=1))
    torch.testing.assert_close(mod.linear_scan(a, b), torch.stack(loop, dim=1))


def test_counting_leaves_the_exported_module_as_it_was():
    from designer.export.template import load_template
    mod = load_template("model.py")
    before = (mod.linear_scan, mod.Experts.forward, mod.F, mod.KERNELS)
    measure_flops(reduced(load_layout("nemotron-3-nano-30b-a3b")).with_pattern("ME"), 8, full=True)
    fvcore_by_kind(reduced(load_layout("falcon-mamba-7b")).with_pattern("M"), 8)
    assert (mod.linear_scan, mod.Experts.forward, mod.F, mod.KERNELS) == before


@pytest.mark.parametrize("preset", preset_names())
def test_cache_bytes_of_the_exported_model_equal_the_analytic_ones(preset):
    d = measure_memory(load_layout(preset))["memory"]
    assert set(d) == {"kv_cache_bytes_per_token", "ssm_state_bytes_per_sequence", "conv_state_bytes_per_sequence"}
    for key, v in d.items():
        assert v["analytic"] == v["measured"], (key, v)


# ---- the command ---------------------------------------------------------------------------------


def _run_json(capsys, argv):
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


def test_measure_flops_json(capsys, tiny_file):
    code, d = _run_json(capsys, ["measure", tiny_file, "--flops", "--prompt", "24", "--json"])
    assert code == 0
    assert d["layout"] == "tiny-hybrid" and "memory" not in d
    assert set(d["flops"]["by_kind"]) == set(KINDS)
    assert set(d["flops"]["total"]) >= {"analytic", "measured"}


def test_measure_memory_json(capsys):
    code, d = _run_json(capsys, ["measure", "nemotron-h-8b", "--memory", "--json"])
    assert code == 0 and "flops" not in d
    assert d["memory"]["kv_cache_bytes_per_token"] == {"analytic": 16384, "measured": 16384}
    assert d["memory"]["ssm_state_bytes_per_sequence"]["measured"] == 24 * 128 * 64 * 128 * 4


def test_measure_timing_on_cpu_writes_json_html_and_saved_file(capsys, tiny_file, tmp_path):
    html, saved = tmp_path / "r.html", tmp_path / "m" / "t.json"
    code, d = _run_json(capsys, ["measure", tiny_file, "--device", "cpu", "--prompts", "8", "--contexts", "8",
                                 "--batches", "1,2", "--iters", "1", "--html", str(html), "--save", str(saved),
                                 "--json"])
    assert code == 0
    t = d["timing"]
    assert t["device"] == "cpu" and t["kernels_in_use"] == "torch" and t["dtype"] == "float32"
    assert {(p["metric"], p["batch"]) for p in t["points"]} == {("ttft", 1), ("ttft", 2), ("tpot", 1), ("tpot", 2)}
    for p in t["points"]:
        assert {"predicted_s", "measured_s", "error"} <= set(p)
        assert p["predicted_s"] > 0 and p["measured_s"] > 0
    assert set(t["summary"]) == {"median_abs_error", "max_abs_error"}
    assert "plotly" in html.read_text()
    assert json.loads(saved.read_text())["points"] == t["points"]
    from designer.layout import layout_from_dict, load_layout
    assert layout_from_dict(json.loads(saved.read_text())["layout_spec"]) == load_layout(tiny_file)


def test_timing_figure_draws_predicted_and_measured():
    from designer.present.measure import timing_figure
    result = {"layout": "x", "hardware": "h200", "device": "cpu", "kernels_in_use": "torch", "dtype": "float32",
              "points": [{"metric": "ttft", "batch": 1, "prompt": 8, "predicted_s": 1e-3, "measured_s": 2e-3},
                         {"metric": "tpot", "batch": 1, "context": 8, "predicted_s": 1e-4, "measured_s": 3e-4}]}
    names = {t.name for t in timing_figure(result).data}
    assert names == {"batch 1 predicted", "batch 1 measured"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_exits_2(capsys, tiny_file):
    with pytest.raises(SystemExit) as e:
        main(["measure", tiny_file, "--device", "cuda", "--json"])
    assert e.value.code == 2
    assert "no CUDA" in json.loads(capsys.readouterr().out)["error"]["message"]


@pytest.mark.parametrize("argv", [["--device", "cpu", "--kernels", "cutlass"], ["--device", "tpu"],
                                  ["--html", "x.html"], ["--device", "cpu", "--hardware", "no-such-gpu"]])
def test_bad_options_exit_2(capsys, tiny_file, argv):
    with pytest.raises(SystemExit) as e:
        main(["measure", tiny_file, *argv, "--json"])
    assert e.value.code == 2
    assert set(json.loads(capsys.readouterr().out)["error"]) == {"message", "file", "key", "layer"}


def test_measure_command_module_imports_no_torch():
    code = "import sys, designer.cli, designer.commands.measure; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
