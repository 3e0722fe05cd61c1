"""Reliability: every command answers every bad input with one clear line (exit 2), never a traceback.

Each case runs the real CLI entry (`designer.cli.main`) in-process, with and without `--json`, over
hand-made bad files (YAML layouts, Hugging Face configs, paths that are directories or unwritable) and bad
option values. The contract checked for every case:
- the exit code is 0, 1 or 2 (3 means an internal error: a bug) and, for bad input, exactly 2;
- stderr holds no traceback; a bad input is one line starting "designer: error:";
- with --json, stdout is exactly one JSON document, an error document `{"error": {...}}` on exit 2.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from designer.cli import main

NH8 = Path(__file__).resolve().parent.parent / "profiles" / "models" / "nemotron-h-8b.yaml"
GOOD_YAML = NH8.read_text()


def _bomb() -> str:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(9):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _yaml_with(**changes: str) -> str:
    """The 8B preset with some top-level lines replaced (key: raw YAML value)."""
    out = []
    for line in GOOD_YAML.splitlines():
        key = line.split(":", 1)[0]
        if key in changes:
            out.append(f"{key}: {changes.pop(key)}")
        else:
            out.append(line)
    out += [f"{k}: {v}" for k, v in changes.items()]
    return "\n".join(out) + "\n"


HF_NH = {"model_type": "nemotron_h", "hidden_size": 256, "vocab_size": 1000, "num_hidden_layers": 4,
         "hybrid_override_pattern": "M-M*", "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
         "intermediate_size": 512, "mamba_num_heads": 8, "mamba_head_dim": 64, "n_groups": 2,
         "ssm_state_size": 16, "conv_kernel": 4, "layer_norm_epsilon": 1e-5}
HF_LLAMA = {"model_type": "llama", "hidden_size": 256, "vocab_size": 1000, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 512, "rope_theta": 10000.0}

BAD_YAML: dict[str, str | bytes] = {
    "empty": "",
    "null": "null\n",
    "list": "- a\n- b\n",
    "scalar": "42\n",
    "malformed": "name: [unclosed\n",
    "tab_indent": "name: x\n\tpattern: M\n",
    "binary": b"\x00\x01\x02\xff\xfe",
    "latin1": "name: caf\xe9\n".encode("latin-1"),
    "duplicate_key": GOOD_YAML + "hidden_size: 2048\n",
    "duplicate_nested": _yaml_with(attention="{num_heads: 32, num_heads: 16, num_kv_heads: 8, head_dim: 128}"),
    "billion_laughs": _bomb(),
    "deep_nesting": "x: " + "[" * 3000 + "]" * 3000 + "\n",
    "unknown_key": GOOD_YAML + "hiden: 3\n",
    "unknown_nested_key": _yaml_with(mlp="{intermediate_size: 21504, activaton: relu2}"),
    "bad_symbol": _yaml_with(pattern='"M-M-X*"'),
    "empty_pattern": _yaml_with(pattern='""'),
    "pattern_number": _yaml_with(pattern="12"),
    "huge_pattern": _yaml_with(pattern='"' + "M-" * 600_000 + '"'),
    "string_number": _yaml_with(hidden_size='"4096"'),
    "float_size": _yaml_with(hidden_size="4096.5"),
    "bool_size": _yaml_with(hidden_size="true"),
    "zero_size": _yaml_with(hidden_size="0"),
    "negative_size": _yaml_with(hidden_size="-4096"),
    "huge_size": _yaml_with(hidden_size="1000000000000000000000000"),
    "nan_eps": _yaml_with(norm_eps=".nan"),
    "inf_eps": _yaml_with(norm_eps=".inf"),
    "zero_heads": _yaml_with(attention="{num_heads: 0, num_kv_heads: 8, head_dim: 128}"),
    "kv_not_dividing": _yaml_with(attention="{num_heads: 32, num_kv_heads: 7, head_dim: 128}"),
    "mamba_missing": _yaml_with(mamba="null"),
    "mamba_string": _yaml_with(mamba="fast"),
    "mamba_bad_version": _yaml_with(mamba="{version: 3, num_heads: 128, head_dim: 64, n_groups: 8, state_size: 128}"),
    "mamba_groups": _yaml_with(mamba="{version: 2, num_heads: 128, head_dim: 64, n_groups: 7, state_size: 128}"),
    "mlp_bad_activation": _yaml_with(mlp="{intermediate_size: 21504, activation: tanh}"),
    "name_bad": _yaml_with(name='"Bad Name!"'),
    "rules_unknown": _yaml_with(rules="[nemotron-x]"),
    "rules_number": _yaml_with(rules="3"),
    "parallel_tp3": GOOD_YAML + "parallel: {tensor: 3}\n",
    "parallel_pp_too_large": GOOD_YAML + "parallel: {pipeline: 100000}\n",
    "parallel_zero": GOOD_YAML + "parallel: {tensor: 0}\n",
    "constraints_bad": GOOD_YAML + "constraints: {max_layers: -1}\n",
    "constraints_unknown": GOOD_YAML + "constraints: {max_layer: 3}\n",
    "constraints_consecutive_bad": GOOD_YAML + "constraints: {max_consecutive: {X: 2}}\n",
    "training_bad": GOOD_YAML + "training: {precision: fp3}\n",
    "moe_topk_gt_experts": GOOD_YAML.replace('pattern: M-', 'pattern: ME') + "moe: {num_experts: 8, top_k: 9, intermediate_size: 64}\n",
    "moe_topk_zero": GOOD_YAML.replace('pattern: M-', 'pattern: ME') + "moe: {num_experts: 8, top_k: 0, intermediate_size: 64}\n",
    "moe_huge": GOOD_YAML.replace('pattern: M-', 'pattern: ME')
    + "moe: {num_experts: 1000000, top_k: 999999, intermediate_size: 64}\n",
    "moe_missing": GOOD_YAML.replace('pattern: M-', 'pattern: ME'),
}

BAD_HF: dict[str, dict] = {
    "string_number": {**HF_NH, "hidden_size": "256"},
    "zero_heads": {**HF_NH, "num_attention_heads": 0},
    "zero_mamba_heads": {**HF_NH, "mamba_num_heads": 0},
    "fractional_layers": {**HF_LLAMA, "num_hidden_layers": 2.5},
    "rope_theta_text": {**{k: v for k, v in HF_LLAMA.items() if k != "rope_theta"},
                        "rope_scaling": {"rope_type": "default", "rope_theta": "fast"}},
    "rope_theta_text_top": {**HF_LLAMA, "rope_theta": "fast"},
    "absurd_layers": {**HF_LLAMA, "num_hidden_layers": 10 ** 9},
    "absurd_layers_nh": {**HF_NH, "num_hidden_layers": 10 ** 9, "hybrid_override_pattern": None},
    "unsupported_type": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12},
    "model_type_number": {**HF_LLAMA, "model_type": 3},
    "bad_pattern": {**HF_NH, "hybrid_override_pattern": "M-Q*"},
    "pattern_length_mismatch": {**HF_NH, "num_hidden_layers": 7},
    "bad_block_types": {**{k: v for k, v in HF_NH.items() if k != "hybrid_override_pattern"},
                        "layers_block_type": ["mamba", "warp", "attention", "mlp"]},
    "negative_vocab": {**HF_LLAMA, "vocab_size": -5},
    "null_hidden": {**HF_LLAMA, "hidden_size": None},
    "list_hidden": {**HF_LLAMA, "hidden_size": [256]},
    "nan_eps": {**HF_LLAMA, "rms_norm_eps": float("nan")},
    "heads_not_dividing": {**HF_LLAMA, "num_attention_heads": 3},
    "missing_key": {k: v for k, v in HF_LLAMA.items() if k != "hidden_size"},
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    out: dict[str, Path] = {}
    for name, text in BAD_YAML.items():
        p = root / f"{name}.yaml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        out[f"yaml:{name}"] = p
    for name, cfg in BAD_HF.items():
        p = root / f"hf_{name}" / "config.json"
        p.parent.mkdir()
        p.write_text(json.dumps(cfg))
        out[f"hf:{name}"] = p
    (root / "a_dir").mkdir()
    out["path:directory"] = root / "a_dir"
    out["path:missing"] = root / "missing.yaml"
    return out


@pytest.fixture(autouse=True)
def _no_exec(monkeypatch):
    """`designer app` replaces its process with Streamlit; here that would replace pytest."""
    def refuse(*args):
        raise AssertionError(f"exec {args}")
    monkeypatch.setattr(os, "execv", refuse)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    captured = capsys.readouterr()
    return int(code or 0), captured.out, captured.err


def check_contract(argv: list[str], code: int, out: str, err: str, *, bad: bool) -> None:
    where = " ".join(argv)
    assert "Traceback" not in err and "Traceback" not in out, f"{where}: traceback\n{err[-2000:]}"
    assert code != 3, f"{where}: internal error: {err}"
    assert code in (0, 1, 2), f"{where}: exit {code}"
    if bad:
        assert code == 2, f"{where}: expected exit 2 for bad input, got {code}\n{err[-500:]}"
        lines = [ln for ln in err.splitlines() if ln.startswith("designer: error:")]
        assert len(lines) == 1, f"{where}: expected one error line, got\n{err}"
        assert len(lines[0]) > len("designer: error: ") + 10
    if "--json" in argv:
        doc = json.loads(out)   # exactly one JSON document
        assert isinstance(doc, dict)
        if code == 2:
            assert set(doc) == {"error"} and doc["error"]["message"], f"{where}: {doc}"


YAML_COMMANDS = [
    ["validate", "{f}"],
    ["show", "{f}"],
    ["profile", "{f}"],
    ["fix", "{f}", "-o", "{tmp}/fixed.yaml"],
    ["export", "{f}", "-o", "{tmp}/exp", "--force"],
    ["compare", "{f}", "nemotron-h-8b"],
]


def _cases():
    keys = [f"yaml:{k}" for k in BAD_YAML] + [f"hf:{k}" for k in BAD_HF] + ["path:directory", "path:missing"]
    for key in keys:
        for argv in YAML_COMMANDS:
            yield pytest.param(key, argv, id=f"{argv[0]}-{key}")
        if key.startswith("hf:"):
            yield pytest.param(key, ["import", "{f}", "-o", "{tmp}/imported.yaml"], id=f"import-{key}")


# Inputs that are valid layouts whose rule checks fail (exit 1 from validate) rather than bad input.
RULE_ONLY = {"yaml:kv_not_dividing", "yaml:moe_huge", "yaml:mamba_groups", "yaml:parallel_tp3", "yaml:parallel_pp_too_large",
             "hf:heads_not_dividing"}
# Inputs whose only fault is a rule set name: bad input wherever rules are read (validate, fix, export);
# commands that read no rules (show, profile, compare) answer normally.
RULES_ONLY_BAD = {"yaml:rules_unknown"}
RULE_COMMANDS = {"validate", "fix", "export"}


@pytest.mark.parametrize("json_flag", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("key,template", list(_cases()))
def test_bad_file_is_answered_with_one_line(inputs, tmp_path, capsys, key, template, json_flag):
    argv = [a.format(f=inputs[key], tmp=tmp_path) for a in template] + (["--json"] if json_flag else [])
    code, out, err = run_cli(argv, capsys)
    bad = key not in RULE_ONLY and (key not in RULES_ONLY_BAD or template[0] in RULE_COMMANDS)
    if not bad:
        # a rule violation: validate says 1, fix repairs or says why not, profile/show may answer
        check_contract(argv, code, out, err, bad=False)
        return
    check_contract(argv, code, out, err, bad=True)


BAD_OPTIONS = [
    ["profile", "nemotron-h-8b", "--tp", "3"],
    ["profile", "nemotron-h-8b", "--tp", "0"],
    ["profile", "nemotron-h-8b", "--hardware", "h9000"],
    ["profile", "nemotron-h-8b", "--precision", "fp3"],
    ["profile", "nemotron-h-8b", "--batch", "-1"],
    ["profile", "nemotron-h-8b", "--prompt", "abc"],
    ["profile", "nemotron-h-8b", "--memory-utilization", "1.5"],
    ["profile", "nemotron-h-8b", "--pp", "1000"],
    ["validate", "nemotron-h-8b", "--rules", "nemotron-x"],
    ["validate", "nemotron-h-8b", "--rules", "NH999"],
    ["compare"] + ["nemotron-h-8b"] * 9,
    ["compare", "nemotron-h-8b", "--html", "{tmp}"],
    ["compare", "nemotron-h-8b", "--html", "{tmp}/a_file/report.html"],
    ["fix", "nemotron-h-8b", "-o", "{tmp}"],
    ["fix", "nemotron-h-8b", "-o", "{tmp}/a_file/x.yaml"],
    ["import", "{hf}", "-o", "{tmp}"],
    ["import", "{hf}", "-o", "{tmp}/a_file/x.yaml"],
    ["export", "nemotron-h-8b", "-o", "{tmp}/a_file"],
    ["export", "nemotron-h-8b", "-o", "{tmp}/a_file/sub"],
    ["export", "nemotron-h-8b", "--proxy-hidden", "0"],
    ["export", "nemotron-h-8b", "--proxy-scale", "-1"],
    ["export", "nemotron-h-8b", "--proxy-task", "nope"],
    ["proxy", "nemotron-h-8b", "--steps", "0"],
    ["proxy", "nemotron-h-8b", "--task", "nope"],
    ["proxy", "nemotron-h-8b", "--device", "tpu"],
    ["proxy", "nemotron-h-8b", "--lr", "-1"],
    ["proxy", "nemotron-h-8b", "--out", "{tmp}/a_file"],
    ["proxy", "nemotron-h-8b", "--report", "{tmp}"],
    ["proxy", "nemotron-h-8b", "--report", "{tmp}/a_file/r.html"],
    ["proxy", "nemotron-h-8b", "--task-param", "mqar.pairs=x"],
    ["app", "no-such-layout"],
    ["nonsense-command"],
    ["validate"],
    ["validate", "nemotron-h-8b", "--no-such-flag"],
]


@pytest.mark.parametrize("json_flag", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("template", BAD_OPTIONS, ids=lambda t: "-".join(t)[:60])
def test_bad_option_is_answered_with_one_line(inputs, tmp_path, capsys, template, json_flag):
    (tmp_path / "a_file").write_text("x")
    argv = [a.format(tmp=tmp_path, hf=inputs["hf:string_number"].parent.parent / "hf_zero_heads" / "config.json")
            for a in template]
    if template[0] == "import":
        good = tmp_path / "hf" / "config.json"
        good.parent.mkdir()
        good.write_text(json.dumps(HF_LLAMA))
        argv[1] = str(good)
    argv += ["--json"] if json_flag else []
    code, out, err = run_cli(argv, capsys)
    check_contract(argv, code, out, err, bad=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_directory(tmp_path, capsys):  # pragma: no cover - CI runs as root
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    code, out, err = run_cli(["fix", "nemotron-h-8b", "-o", str(locked / "x.yaml")], capsys)
    check_contract([], code, out, err, bad=True)


def test_output_under_a_missing_folder_is_created(tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "fixed.yaml"
    code, _, err = run_cli(["fix", "nemotron-h-47b", "-o", str(out)], capsys)
    assert code in (0, 1) and out.is_file(), err
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_rule_violation_exits_1_with_json(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(_yaml_with(pattern='"*-M-M-M-M*-M-M-"'))
    code, out, err = run_cli(["validate", str(p), "--json"], capsys)
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and any(v["rule"] == "NH001" for v in doc["violations"])


def test_internal_error_has_its_own_exit_code(monkeypatch, capsys):
    from designer.commands import show

    def boom(args):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(show, "run", boom)
    code, out, err = run_cli(["show", "nemotron-h-8b", "--json"], capsys)
    assert code == 3
    assert "Traceback" not in err and "internal error: ZeroDivisionError" in err
    assert json.loads(out)["error"]["message"].startswith("internal error: ZeroDivisionError")
    code, out, err = run_cli(["show", "nemotron-h-8b", "--debug"], capsys)
    assert code == 3 and "Traceback" in err


def test_yaml_messages_name_the_problem(inputs, capsys):
    cases = {"yaml:duplicate_key": "duplicate key 'hidden_size' on lines",
             "yaml:billion_laughs": "aliases", "yaml:deep_nesting": "nested deeper than",
             "hf:unsupported_type": "model_type gpt2 is not supported"}
    for key, text in cases.items():
        code, out, err = run_cli(["validate", str(inputs[key])], capsys)
        assert code == 2 and text in err, (key, err)


def test_fix_says_why_a_fix_was_not_applied(tmp_path, capsys):
    out = tmp_path / "fixed.yaml"
    code, stdout, err = run_cli(["fix", "llama-3.1-8b", "--rules", "nemotron-h", "-o", str(out), "--json"], capsys)
    doc = json.loads(stdout)
    assert code == 1 and not doc["ok"]
    assert [n["rule"] for n in doc["not_applied"]] == ["NH001"]
    assert "no 'mamba:' block" in doc["not_applied"][0]["reason"]
    assert main(["validate", str(out)]) == 0          # what was written loads (its own rules: none)


@pytest.mark.parametrize("limit,ok", [([0.0, float("inf")], True), ([0.001, float("inf")], False),
                                      ([0.0, 0.1], False), ("auto", False)])
def test_a_mamba2_time_step_limit_other_than_unclamped_is_refused_by_name(tmp_path, capsys, limit, ok):
    """The exported model leaves dt unclamped, as the published Nemotron-H does (time_step_limit (0, inf)); a
    config.json asking for another limit is bad input that names the key, not a silently different model."""
    from designer.hf import hf_config_from_layout
    from designer.layout import load_layout

    config = dict(hf_config_from_layout(load_layout("nemotron-h-8b")), time_step_limit=limit)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, out, err = run_cli(["validate", str(path)], capsys)
    if ok:
        assert code == 0, err
    else:
        assert code == 2 and "key 'time_step_limit'" in err and "only [0.0, Infinity]" in err and "Traceback" not in err


def test_a_config_json_is_read_as_json(tmp_path, capsys):
    """The exporter's config.json (json.dumps: layer_norm_epsilon 1e-05, which YAML 1.1 reads as a string) validates;
    a JSON duplicate key is named, as in YAML."""
    from designer.hf import hf_config_from_layout
    from designer.layout import load_layout

    path = tmp_path / "config.json"
    path.write_text(json.dumps(hf_config_from_layout(load_layout("nemotron-h-8b")), indent=2))
    assert '"layer_norm_epsilon": 1e-05' in path.read_text()
    code, out, err = run_cli(["validate", str(path)], capsys)
    assert code == 0, err
    path.write_text('{"model_type": "nemotron_h", "hidden_size": 64, "hidden_size": 128}')
    code, out, err = run_cli(["validate", str(path)], capsys)
    assert code == 2 and "duplicate key 'hidden_size'" in err and "Traceback" not in err
