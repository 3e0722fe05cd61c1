"""`designer profile` and `designer compare`: JSON schema, text tables, HTML report, exit codes."""
from __future__ import annotations

import json

import pytest

REQUIRED = {
    "params": {"total", "active", "embedding", "by_kind"},
    "flops": {"prefill", "decode_per_token", "train_per_token"},
    "memory": {"weights_bytes", "kv_cache_bytes_per_token", "ssm_state_bytes_per_sequence", "total_bytes"},
    "latency": {"ttft_s", "tpot_s", "e2e_s"},
    "throughput": {"output_tokens_per_s", "max_batch"},
}


def test_profile_json_keeps_the_documented_keys(run_cli):
    r = run_cli("profile", "nemotron-h-8b", "--json", "--batch", "2", "--prompt", "4096", "--gen", "128")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["layout"] == "nemotron-h-8b" and d["hardware"] == "h100-sxm"
    for section, keys in REQUIRED.items():
        assert keys <= set(d[section]), section
    assert d["params"]["total"] == 8_100_852_736
    assert d["memory"]["kv_cache_bytes_per_token"] == 16 * 1024
    assert d["memory"]["ssm_state_bytes_per_sequence"] == 96 * 2 ** 20
    assert d["setup"]["batch"] == 2 and d["setup"]["prompt"] == 4096
    assert d["latency"]["e2e_s"] == pytest.approx(d["latency"]["ttft_s"] + 127 * d["latency"]["tpot_s"])


def test_profile_options_change_the_numbers(run_cli):
    base = json.loads(run_cli("profile", "nemotron-h-8b", "--json").stdout)
    fp8 = json.loads(run_cli("profile", "nemotron-h-8b", "--json", "--precision", "fp8", "--tp", "2",
                             "--hardware", "h200").stdout)
    assert fp8["hardware"] == "h200" and fp8["setup"]["tp"] == 2
    assert fp8["memory"]["weights_bytes"] < base["memory"]["weights_bytes"] / 3
    assert fp8["throughput"]["max_batch"] > base["throughput"]["max_batch"]


def test_profile_text_form_is_a_table(run_cli):
    r = run_cli("profile", "falcon-mamba-7b", "--hardware", "a10", "--prompt", "1000", "--gen", "10")
    assert r.returncode == 0, r.stderr
    assert "KV cache / token" in r.stdout and "0 B" in r.stdout and "mamba" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--hardware", "h100"], "did you mean 'h100-sxm'"),
    (["--batch", "-1"], "positive integer"),
    (["--batch", "0"], "positive integer"),
    (["--precision", "int3"], "invalid choice"),
    (["--memory-utilization", "1.5"], "(0, 1]"),
    (["--pp", "100"], "pipeline stages"),
])
def test_bad_options_exit_2_with_a_clear_message(run_cli, args, message):
    r = run_cli("profile", "nemotron-h-8b", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_compare_defaults_to_the_nemotron_h_family_with_ratios(run_cli):
    r = run_cli("compare", "--json", "--tp", "8")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    # the app's Compare page default too (one default: present.format.COMPARE_LAYOUTS, fp8 weights)
    assert d["layouts"] == ["nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b", "llama-3.1-8b"]
    assert d["setup"]["precision"] == "fp8"
    assert d["ratios"]["params.total"][0] == 1.0
    assert d["ratios"]["params.total"][2] == pytest.approx(56_324_350_464 / 8_100_852_736)
    for section, keys in REQUIRED.items():
        assert keys <= set(d["profiles"][1][section])


def test_compare_text_and_html_report(run_cli, tmp_path):
    out = tmp_path / "report.html"
    r = run_cli("compare", "nemotron-h-8b", "llama-3.1-8b", "--prompt", "8192", "--gen", "256", "--html", out)
    assert r.returncode == 0, r.stderr
    assert "(x" in r.stdout
    html = out.read_text()
    assert html.count("Plotly.newPlot") == 4
    for title in ("Memory vs context", "Latency vs context", "Throughput vs batch", "Max batch vs prompt length"):
        assert title in html


def test_compare_rejects_unknown_layout(run_cli):
    r = run_cli("compare", "nemotron-h-8b", "nemotron-h-9b")
    assert r.returncode == 2 and "no such file or preset" in r.stderr


def test_analytic_core_imports_no_torch_networkx_or_plotly():
    import subprocess
    import sys
    code = ("import sys, designer.profile.analytic, designer.profile.claims, designer.commands.profile, "
            "designer.commands.compare; print([m for m in ('torch', 'networkx', 'plotly') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
