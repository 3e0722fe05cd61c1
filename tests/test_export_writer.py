"""`designer export`: the directory it writes, atomicity, --force, refusals, megatron.sh, CLI exit codes."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from designer.cli import main
from designer.export import megatron
from designer.layout import tensor_parallel_divides
from designer.export.model_export import ExportError, ExportRefused, export_layout
from designer.layout import layout_from_dict, load_layout

REPO = Path(__file__).resolve().parent.parent

TINY_HYBRID = dict(name="tiny-hybrid", hidden_size=64, vocab_size=128, pattern="M-M*-M-",
                   mamba=dict(num_heads=8, head_dim=16, n_groups=2, state_size=16, chunk_size=8),
                   attention=dict(num_heads=4, num_kv_heads=2, head_dim=16), mlp=dict(intermediate_size=96))


def tiny(**changes):
    return layout_from_dict({**TINY_HYBRID, **changes})


def run_cli(*argv, cwd=None):
    """designer's main() in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as e:
                code = e.code
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------------------------------
# What an export holds


def test_export_writes_every_file_and_the_layout_reads_back(tmp_path):
    result = export_layout(tiny(), tmp_path / "out")
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert {"layout.yaml", "model.py", "config.json", "megatron.sh", "README.md"} <= names
    assert set(result.files) == names
    # layout.yaml is JSON (model.py reads it with json) and designer reads it back as the same layout
    data = json.loads((out / "layout.yaml").read_text())
    assert data["pattern"] == "M-M*-M-" and data["mamba"]["chunk_size"] == 8
    assert load_layout(out / "layout.yaml") == tiny()
    assert (out / "model.py").read_text() == (REPO / "designer/export/templates/model.py").read_text()
    assert json.loads((out / "config.json").read_text())["model_type"] == "nemotron_h"
    assert os.access(out / "megatron.sh", os.X_OK)
    readme = (out / "README.md").read_text()
    for f in names:
        assert f"`{f}`" in readme
    assert f"{result.params:,} parameters" in readme


def test_export_calls_the_proxy_writer_when_it_is_installed(tmp_path):
    result = export_layout(tiny(), tmp_path / "out")
    assert {"train_proxy.py", "proxy.yaml"} <= set(result.files)
    assert "train_proxy.py" in (tmp_path / "out" / "README.md").read_text()


def test_exported_model_py_runs_from_its_directory_and_matches_transformers(tmp_path):
    """The export round trip: model.py + config.json from disk, strict load, same logits."""
    transformers = pytest.importorskip("transformers")
    export_layout(tiny(), tmp_path / "out")
    script = f"""
import json, sys, torch, transformers
sys.path.insert(0, {str(tmp_path / 'out')!r})
from model import build_model
torch.manual_seed(0)
model = build_model().eval()
cfg = transformers.AutoConfig.for_model(**json.load(open({str(tmp_path / 'out' / 'config.json')!r})))
hf = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
hf.load_state_dict(model.state_dict(), strict=True)
ids = torch.randint(0, 128, (2, 23))
with torch.no_grad():
    print(float((model(ids) - hf(ids).logits).abs().max()))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip().splitlines()[-1]) < 1e-4
    assert transformers


def test_layout_without_an_hf_family_still_exports_with_a_note(tmp_path):
    layout = tiny(attention=dict(num_heads=4, num_kv_heads=2, head_dim=16, rope_theta=10000.0))
    result = export_layout(layout, tmp_path / "out")
    assert "config.json" not in result.files and not (tmp_path / "out" / "config.json").exists()
    assert any("config.json not written" in n and "rope_theta" in n for n in result.notes)
    assert "config.json not written" in (tmp_path / "out" / "README.md").read_text()


def test_mamba1_layout_gets_no_megatron_script(tmp_path):
    result = export_layout(load_layout("falcon-mamba-7b"), tmp_path / "fm")
    assert "megatron.sh" not in result.files
    assert any("Mamba-2 mixers only" in n for n in result.notes)
    assert "config.json" in result.files


# --------------------------------------------------------------------------------------------------
# Atomicity, --force, refusals


def test_existing_directory_is_not_overwritten_without_force(tmp_path):
    export_layout(tiny(), tmp_path / "out")
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="already exists; pass --force"):
        export_layout(tiny(), tmp_path / "out")
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep"


def test_force_replaces_an_export_and_leaves_no_temporaries(tmp_path):
    export_layout(tiny(), tmp_path / "out")
    (tmp_path / "out" / "stale.txt").write_text("old")
    export_layout(tiny(hidden_size=32), tmp_path / "out", force=True)
    assert not (tmp_path / "out" / "stale.txt").exists()
    assert json.loads((tmp_path / "out" / "layout.yaml").read_text())["hidden_size"] == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_never_replaces_a_directory_that_is_not_an_export(tmp_path):
    target = tmp_path / "project"
    target.mkdir()
    (target / "precious.py").write_text("x")
    with pytest.raises(ExportError, match="not an export directory"):
        export_layout(tiny(), target, force=True)
    assert (target / "precious.py").exists()


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    from designer.export import megatron as meg

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(meg, "megatron_script", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_layout(tiny(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_forced_export_keeps_the_old_directory(tmp_path, monkeypatch):
    from designer.export import megatron as meg
    export_layout(tiny(), tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(meg, "megatron_script", boom)
    with pytest.raises(RuntimeError):
        export_layout(tiny(hidden_size=32), tmp_path / "out", force=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_rule_errors_refuse_the_export_unless_allowed(tmp_path):
    from designer.rules import check
    bad = tiny(pattern="*-M-M-M-", rules=["nemotron-h"])
    errors = [v for v in check(bad) if v.severity == "error"]
    assert errors, "NH001 reports an attention-first layout"
    with pytest.raises(ExportRefused) as info:
        export_layout(bad, tmp_path / "out")
    assert errors[0].rule in str(info.value) and not (tmp_path / "out").exists()
    result = export_layout(bad, tmp_path / "out", allow_violations=True)
    assert any(v["severity"] == "error" for v in result.violations)
    assert errors[0].rule in (tmp_path / "out" / "README.md").read_text()


# --------------------------------------------------------------------------------------------------
# CLI


def test_cli_json_reports_paths_params_and_violations(tmp_path):
    code, out, err = run_cli("export", "nemotron-h-47b", "-o", str(tmp_path / "x"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["params"] == 46_791_554_816 and doc["family"] == "nemotron_h"
    assert all(Path(f).is_file() for f in doc["files"])
    assert {v["rule"] for v in doc["violations"]} >= {"NH005"}   # the released 47B breaks a pattern rule


def test_cli_default_directory_is_exported_name(tmp_path):
    code, out, _ = run_cli("export", "mamba2-2.7b", cwd=tmp_path)
    assert code == 0
    assert (tmp_path / "exported" / "mamba2-2.7b" / "model.py").is_file()
    code, _, err = run_cli("export", "mamba2-2.7b", cwd=tmp_path)
    assert code == 2 and "already exists; pass --force" in err and err.count("\n") == 1
    code, _, _ = run_cli("export", "mamba2-2.7b", "--force", cwd=tmp_path)
    assert code == 0


@pytest.mark.parametrize("argv, message", [
    (["export", "no-such-preset"], "no such file or preset"),
    (["export"], "the following arguments are required"),
])
def test_cli_bad_input_is_one_message_and_exit_2(argv, message):
    code, _, err = run_cli(*argv)
    assert code == 2 and message in err


def test_cli_refusal_exits_1(tmp_path):
    from designer.layout import save_layout
    from designer.rules import check
    bad = tiny(pattern="*-M-M-M-", rules=["nemotron-h"])
    assert any(v.severity == "error" for v in check(bad)), "NH001 reports an attention-first layout"
    save_layout(bad, tmp_path / "bad.yaml")
    code, out, _ = run_cli("export", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "o"), "--json")
    assert code == 1 and json.loads(out)["ok"] is False and not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------------
# megatron.sh


def test_megatron_script_dry_run_prints_the_layouts_arguments(tmp_path):
    export_layout(load_layout("nemotron-3-nano-30b-a3b"), tmp_path / "n3")
    proc = subprocess.run(["bash", "megatron.sh", "--extra-flag"], cwd=tmp_path / "n3", capture_output=True,
                          text=True, env={**os.environ, "DRY_RUN": "1"}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    argv = shlex.split(proc.stdout)
    opt = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
    assert opt["--hybrid-layer-pattern"] == "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME"
    assert opt["--hidden-size"] == "2688" and opt["--num-query-groups"] == "2" and opt["--mamba-num-heads"] == "64"
    assert opt["--num-experts"] == "128" and opt["--moe-router-topk"] == "6"
    assert opt["--moe-shared-expert-intermediate-size"] == "3712" and opt["--moe-ffn-hidden-size"] == "1856"
    assert "--moe-router-enable-expert-bias" in argv and "--squared-relu" in argv and argv[-1] == "--extra-flag"
    assert opt["--position-embedding-type"] == "none" and argv[5].endswith("pretrain_hybrid.py")


def test_megatron_script_needs_megatron_lm_path(tmp_path):
    export_layout(tiny(), tmp_path / "t")
    env = {k: v for k, v in os.environ.items() if k not in ("MEGATRON_LM", "DRY_RUN")}
    proc = subprocess.run(["bash", "megatron.sh"], cwd=tmp_path / "t", capture_output=True, text=True, env=env,
                          timeout=30)
    assert proc.returncode != 0 and "set MEGATRON_LM" in proc.stderr


def test_fp8_layout_gets_the_nemotron_h_fp8_recipe():
    args = megatron.precision_args(load_layout("nemotron-h-56b"))
    assert args == ["--bf16", "--fp8-format", "hybrid", "--fp8-recipe", "tensorwise", "--first-last-layers-bf16",
                    "--num-layers-at-start-in-bf16", "4", "--num-layers-at-end-in-bf16", "4"]


def test_dense_rope_layout_maps_to_rope_and_integer_rotary_base():
    args = megatron.megatron_args(load_layout("qwen2.5-7b"))
    i = args.index("--rotary-base")
    assert args[i + 1] == "1000000" and "--swiglu" in args and "--add-qkv-bias" in args


@pytest.mark.parametrize("name", ["nemotron-h-8b", "nemotron-h-56b", "mamba2-2.7b", "nemotron-3-nano-30b-a3b"])
def test_parallelism_suggestion_is_the_smallest_split_that_fits(name):
    layout = load_layout(name)
    plan = megatron.suggest_parallelism(layout)
    assert plan.fits and plan.bytes_per_gpu <= plan.budget_bytes <= megatron.GPU_MEMORY_GB * 1e9
    for tp in megatron.TP_CHOICES:
        for pp in megatron.PP_CHOICES:
            if tp * pp < plan.tp * plan.pp and tensor_parallel_divides(layout, tp):
                smaller = megatron.plan_memory(layout, tp, pp, max(plan.ep, 1))
                assert smaller.bytes_per_gpu > megatron._budget(megatron.GPU_MEMORY_GB)


def test_parallelism_uses_the_profilers_training_memory_and_the_hardware_profile():
    from designer.profile.analytic import training_memory_per_gpu
    from designer.profile.hardware import load_hardware
    layout = load_layout("nemotron-h-8b")
    profiled = megatron.plan_memory(layout, 2, 1)
    assert "profiler" in profiled.source
    assert profiled.bytes_per_gpu == training_memory_per_gpu(layout, tp=2, pp=1, dp=8).total_bytes
    assert megatron.GPU_MEMORY_GB * 1e9 == load_hardware("h100-sxm").memory_bytes
    assert megatron.suggest_parallelism(layout).tp >= 1


def test_parallelism_suggestion_divides_what_st007_checks():
    """The suggestion asks the same helper as ST007: Mamba-1 d_inner and MoE sizes count too."""
    from designer.rules.structural import tensor_parallel_sizes
    layout = load_layout("nemotron-3-nano-30b-a3b")
    plan = megatron.suggest_parallelism(layout, gpu_memory_gb=16)
    assert all(value % plan.tp == 0 for _, _, value in tensor_parallel_sizes(layout))


def test_parallelism_suggestion_divides_the_head_counts():
    layout = load_layout("nemotron-h-4b")     # 112 Mamba heads, 8 groups, 8 KV heads
    plan = megatron.suggest_parallelism(layout, gpu_memory_gb=16)
    assert layout.mamba.num_heads % plan.tp == 0 and layout.attention.num_kv_heads % plan.tp == 0


@pytest.mark.parametrize("name", ["qwen2.5-7b", "nemotron-h-8b", "falcon-mamba-7b"])
def test_layout_json_is_also_yaml_with_the_same_values(name):
    """PyYAML reads JSON's 1e-05 as a string; the export writes 1.0e-05 so both parsers agree."""
    import yaml

    from designer.export.model_export import layout_json
    text = layout_json(load_layout(name))
    assert yaml.safe_load(text) == json.loads(text)
    assert isinstance(yaml.safe_load(text)["norm_eps"], float)


@pytest.mark.parametrize("changes, reason", [
    (dict(tie_word_embeddings=True), "never ties"),
    (dict(pattern="MEM*E", moe=dict(num_experts=4, top_k=2, intermediate_size=32)), "always builds a shared expert"),
    (dict(pattern="M-MEM*", moe=dict(num_experts=4, top_k=2, intermediate_size=32, shared_intermediate_size=32),
          mlp=dict(intermediate_size=96, activation="gelu")), "one activation for MLP and MoE"),
])
def test_no_config_json_when_transformers_would_build_another_model(tmp_path, changes, reason):
    """designer.hf refuses layouts transformers would build differently; the export says why and leaves config.json
    out rather than write a wrong one."""
    result = export_layout(tiny(**changes), tmp_path / "o")
    assert "config.json" not in result.files and any(reason in n for n in result.notes), result.notes


def test_mamba1_without_bcdt_norm_exports_as_transformers_mamba(tmp_path):
    result = export_layout(tiny(pattern="MMM", mamba=dict(version=1, state_size=8)), tmp_path / "o")
    cfg = json.loads((tmp_path / "o" / "config.json").read_text())
    assert cfg["model_type"] == "mamba" and cfg["architectures"] == ["MambaForCausalLM"]
