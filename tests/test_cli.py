"""The `designer` command: exit codes, JSON shape, clear errors without tracebacks."""
import json

import pytest


def test_validate_ok_preset_exits_0(run_cli):
    r = run_cli("validate", "nemotron-h-8b", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc == {"layout": "nemotron-h-8b", "ok": True, "violations": []}


def test_validate_violations_exit_1_with_the_documented_json(run_cli, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\nhidden_size: 256\nvocab_size: 1024\npattern: '*-M'\nrules: [nemotron-h]\n"
                 "mamba: {num_heads: 8, head_dim: 64, n_groups: 2, state_size: 16}\n"
                 "attention: {num_heads: 4, num_kv_heads: 2, head_dim: 64}\nmlp: {intermediate_size: 512}\n")
    r = run_cli("validate", p, "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    v = doc["violations"][0]
    assert set(v) >= {"rule", "severity", "layer", "message", "fix"}
    assert {(v["rule"], v["layer"]) for v in doc["violations"]} >= {("NH001", 0), ("NH002", 2)}


@pytest.mark.parametrize("args,fragment", [
    (["validate", "no-such-preset"], "no such file or preset"),
    (["validate", "nemotron-h-8b", "--rules", "nh-typo"], "unknown rule set or rule id"),
    (["frobnicate"], "unknown command"),
    (["validate"], "the following arguments are required"),
])
def test_bad_input_exits_2_with_one_clear_line(run_cli, args, fragment):
    r = run_cli(*args)
    assert r.returncode == 2
    assert fragment in r.stderr and "Traceback" not in r.stderr


def test_malformed_and_unknown_keys_exit_2(run_cli, tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("name: x\npattern: [M,\n")
    r = run_cli("validate", bad)
    assert r.returncode == 2 and "malformed YAML at line" in r.stderr and "Traceback" not in r.stderr
    typo = tmp_path / "t.yaml"
    typo.write_text("name: x\nhidden_size: 64\nvocab_size: 64\npattern: M\nmamba: {stat_size: 4}\n")
    r = run_cli("validate", typo)
    assert r.returncode == 2 and "did you mean 'state_size'" in r.stderr


def test_fix_writes_a_passing_layout_and_reports_changes(run_cli, tmp_path):
    src = tmp_path / "in.yaml"
    src.write_text((__import__("designer.layout", fromlist=["x"]).load_layout("nemotron-h-56b")
                    .with_pattern("M-M-M-M*-M*").to_yaml()))
    out = tmp_path / "out.yaml"
    r = run_cli("fix", src, "-o", out, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["pattern_after"] == "M-M-M-M*-M*-" and len(doc["changes"]) == 1 and doc["changes"][0][:5] in ("NH002", "NH003")
    assert run_cli("validate", out).returncode == 0


def test_show_and_presets_json(run_cli):
    doc = json.loads(run_cli("show", "nemotron-h-8b", "--json").stdout)
    assert doc["attention_layers"] == [7, 18, 29, 40] and doc["counts"]["mamba"] == 24
    names = [p["name"] for p in json.loads(run_cli("presets", "--json").stdout)["presets"]]
    assert "nemotron-h-56b" in names and "qwen2.5-72b" in names


def test_import_hf_config(run_cli, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "nemotron_h", "hidden_size": 4096, "vocab_size": 131072,
                               "hybrid_override_pattern": "M-M*-", "mamba_num_heads": 128, "mamba_head_dim": 64,
                               "n_groups": 8, "ssm_state_size": 128, "num_attention_heads": 32,
                               "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 21504,
                               "_name_or_path": "nvidia/Some-Model"}))
    out = tmp_path / "l.yaml"
    r = run_cli("import", cfg, "-o", out)
    assert r.returncode == 0, r.stderr
    r = run_cli("validate", out, "--json")
    assert json.loads(r.stdout)["layout"] == "some-model"
    # and a config.json is accepted anywhere a layout file is
    assert run_cli("show", cfg, "--json").returncode == 0
