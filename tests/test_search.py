"""`designer search`: emitted layouts validate and meet every budget by the profiler's own numbers; the JSON
document; bad budgets and spaces exit 2 with clear messages; the integer program and the fresh generator;
the 56B -> 47B memory story under the documented assumptions."""
import json

import numpy as np
import pytest
import yaml

from designer.cli import main
from designer.layout import ATTENTION, load_layout
from designer.profile.analytic import profile
from designer.rules import check, has_errors
from designer.search import search
from designer.search.assumptions import Assumptions, evaluate
from designer.search.place import interleave, keep_layers, kept_pattern
from designer.search.units import parse_bytes, parse_count, parse_seconds

GIB = 2 ** 30
# The 47B story (docs/search.md): everything NVFP4 (weights incl. embedding and LM head, KV cache), fp32 SSM
# state, chunked prefill of 2048 tokens, 1M-token context on one RTX 5090, budget 31.7 GiB.
STORY = dict(hardware="rtx-5090", precision="fp4", kv_dtype="fp4", embeddings="quantized", context=1 << 20,
             prefill_chunk=2048)
STORY_ARGS = ["--hardware", "rtx-5090", "--precision", "fp4", "--kv-dtype", "fp4", "--embeddings", "quantized",
              "--context", "1048576", "--prefill-chunk", "2048", "--max-memory", "31.7GiB"]


def cli(capsys, *args):
    try:
        code = main(["search", *map(str, args)])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- budgets and units ------------------------------------------------------------------------------


def test_budget_units_are_read_as_written():
    assert parse_bytes("31.7GiB") == pytest.approx(31.7 * GIB)
    assert parse_bytes("32GB") == 32e9 and parse_bytes("1024") == 1024
    assert parse_count("46.8B") == pytest.approx(46.8e9) and parse_count("1.5k") == 1500
    assert parse_seconds("40ms") == pytest.approx(0.04) and parse_seconds("2s") == 2


# ---- what is emitted --------------------------------------------------------------------------------


def test_every_emitted_layout_validates_and_meets_every_budget_by_the_profilers_numbers(capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "--base", "nemotron-h-8b", "--hardware", "h100-sxm", "--precision", "fp8",
                            "--batch", "8", "--max-memory", "30GiB", "--max-params", "7.5B", "--min-throughput",
                            "40", "--max-ttft", "60s", "--max-tpot", "50ms", "--top", "6", "--json", "-o", out)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["front"], doc["rejected"]
    for row in doc["front"]:
        lay = load_layout(row["file"])
        assert main(["validate", row["file"], "--json"]) == 0
        capsys.readouterr()
        assert not has_errors(check(lay, ["nemotron-h"]))
        p = profile(lay, "h100-sxm", precision="fp8", batch=8, prompt=65536, gen=1024).to_dict()
        assert p["memory"]["total_bytes"] <= 30 * GIB
        assert p["params"]["total"] <= 7.5e9
        assert p["throughput"]["output_tokens_per_s"] >= 40
        assert p["latency"]["ttft_s"] <= 60 and p["latency"]["tpot_s"] <= 0.05
        assert row["params"] == p["params"]["total"]
        assert row["memory_bytes"] == pytest.approx(p["memory"]["total_bytes"], rel=1e-12)
        assert row["throughput_tokens_per_s"] == pytest.approx(p["throughput"]["output_tokens_per_s"], rel=1e-12)


def test_json_document_has_the_documented_keys_and_files(capsys, tmp_path):
    code, stdout, err = cli(capsys, "--base", "nemotron-h-56b", *STORY_ARGS, "--top", "3", "--json",
                            "-o", tmp_path, "--html", tmp_path / "r.html", "--reference", "nemotron-h-47b")
    assert code == 0, err
    doc = json.loads(stdout)
    assert {"base", "assumptions", "budgets", "evaluated", "candidates_per_s", "front"} <= set(doc)
    assert doc["base"] == "nemotron-h-56b" and doc["evaluated"] > 0 and doc["candidates_per_s"] > 0
    assert doc["budgets"]["max_memory_bytes"] == pytest.approx(31.7 * GIB)
    assert len(doc["front"]) == 3
    for row in doc["front"]:
        assert {"file", "layers", "attention_layers", "params", "memory_bytes", "throughput_tokens_per_s"} <= set(row)
        lay = load_layout(row["file"])
        assert lay.num_layers == row["layers"] and lay.count(ATTENTION) == row["attention_layers"]
        m = evaluate(lay, Assumptions(**STORY))
        assert m.memory_bytes <= 31.7 * GIB and m.memory_bytes == pytest.approx(row["memory_bytes"], rel=1e-12)
    assert (tmp_path / "search.json").is_file()
    html = (tmp_path / "r.html").read_text()
    assert "Pareto front" in html and "nemotron-h-47b" in html


def test_importance_steers_which_layers_are_kept_and_is_reported(tmp_path):
    base = load_layout("nemotron-h-8b")
    scores = np.ones(base.num_layers)
    scores[base.indices(ATTENTION)[0]] = 50.0      # the first attention layer matters most
    (tmp_path / "imp.json").write_text(json.dumps({"base": base.name, "scores": scores.tolist()}))
    r = search(base, hardware="h100-sxm", importance=tmp_path / "imp.json", objectives="importance,throughput",
               space={"keep": {"*": [1, 1]}}, top=3)
    assert r.front
    best = max(r.front, key=lambda c: c.importance)
    first_attention = base.indices(ATTENTION)[0]
    assert first_attention in best.kept
    for cand in r.front:
        assert cand.layout.count(ATTENTION) == 1
        assert cand.importance == pytest.approx(scores[cand.kept].sum() / scores.sum())
        assert cand.layout.pattern == "".join(base.pattern[i] for i in cand.kept)


def test_importance_search_reports_the_greedy_choice_of_the_same_counts(tmp_path, capsys):
    base = load_layout("nemotron-h-8b")
    scores = np.random.default_rng(3).lognormal(0.0, 1.5, base.num_layers)
    (tmp_path / "imp.json").write_text(json.dumps({"base": base.name, "scores": scores.tolist()}))
    r = search(base, hardware="h100-sxm", importance=tmp_path / "imp.json", objectives="importance,throughput",
               space={"keep": {"*": [2, 3], "M": [20, 24], "-": [20, 24]}}, top=6)
    assert r.front
    for cand in r.front:
        g = cand.greedy
        assert g is not None and g["keep"] is not None
        assert sorted(g["pattern"]) == sorted(cand.layout.pattern)          # the same counts of each kind
        assert g["importance"] == pytest.approx(scores[g["keep"]].sum() / scores.sum())
        assert g["importance"] <= cand.importance + 1e-12                    # the integer program is exact
    code, out, _ = cli(capsys, "--base", "nemotron-h-8b", "--importance", str(tmp_path / "imp.json"),
                       "--objective", "importance,throughput", "--hardware", "h100-sxm", "--top", "3")
    assert code == 0 and "greedy" in out, out


@pytest.mark.parametrize("method,trials", [("nsga2", 1200), ("optuna", 300)])
def test_evolutionary_methods_run_and_their_layouts_still_check_out(method, trials):
    r = search("nemotron-h-8b", hardware="h100-sxm", precision="fp8",
               space={"method": method, "trials": trials, "population": 60, "seed": 1}, max_memory="20GiB", top=4)
    assert r.method == method and r.evaluated >= trials - 60
    assert r.front
    for cand in r.front:
        assert not has_errors(check(cand.layout, ["nemotron-h"]))
        p = profile(cand.layout, "h100-sxm", precision="fp8").to_dict()
        assert p["memory"]["total_bytes"] <= 20 * GIB


def test_auto_method_enumerates_small_spaces_and_evolves_large_ones():
    from designer.search.space import load_space
    base = load_layout("nemotron-h-56b")
    assert load_space(base).chosen_method() == "enumerate"
    assert load_space(base, {"max_enumerate": 1000}).chosen_method() == "nsga2"


def test_fresh_space_builds_nemotron_style_stacks():
    r = search("nemotron-h-8b", hardware="h100-sxm",
               space={"mode": "fresh", "counts": {"M": [10, 30], "*": [2, 4], "-": [10, 30]},
                      "widths": {"mlp.intermediate_size": [8192, 16384]}}, top=5, strict=True)
    assert r.front and r.space.mode == "fresh"
    for cand in r.front:
        assert [v for v in check(cand.layout, ["nemotron-h"]) if v.severity in ("error", "warning")] == []


@pytest.mark.parametrize("m,a,f", [(24, 4, 24), (10, 1, 11), (5, 3, 3), (40, 2, 41), (1, 0, 1)])
def test_interleave_obeys_the_nemotron_rules(m, a, f):
    pattern = interleave({"M": m, "*": a, "-": f})
    assert (pattern.count("M"), pattern.count("*"), pattern.count("-")) == (m, a, f)
    lay = load_layout("nemotron-h-8b").with_pattern(pattern)
    assert not has_errors(check(lay, ["nemotron-h"])), pattern


# ---- the integer program --------------------------------------------------------------------------


def test_keep_layers_meets_counts_and_rules_and_prefers_important_layers():
    base = load_layout("nemotron-h-56b")
    imp = np.zeros(base.num_layers)
    att = base.indices(ATTENTION)
    imp[att[-1]] = 10.0
    imp[att[3]] = 9.0
    keep = keep_layers(base.pattern, {"M": 40, "*": 2, "-": 45}, imp, rule_ids={"NH001", "NH002", "NH003"})
    pattern = kept_pattern(base, keep)
    assert (pattern.count("M"), pattern.count("*"), pattern.count("-")) == (40, 2, 45)
    assert att[-1] in keep and att[3] in keep
    assert not has_errors(check(base.with_pattern(pattern), ["nemotron-h"]))


def test_keep_layers_honours_max_consecutive_and_reports_infeasible():
    base = load_layout("nemotron-h-8b")
    keep = keep_layers(base.pattern, {"M": 24, "*": 4, "-": 10}, max_consecutive={"M": 3},
                       rule_ids={"NH001", "NH002", "NH003"})
    pattern = kept_pattern(base, keep)
    assert "MMMM" not in pattern and pattern.count("-") == 10
    assert keep_layers(base.pattern, {"M": 24, "*": 4, "-": 0}, rule_ids={"NH003"}) is None
    assert keep_layers(base.pattern, {"M": 25}) is None          # more than the base has


# ---- the 47B story --------------------------------------------------------------------------------


def test_under_the_documented_assumptions_the_56b_does_not_fit_and_the_47b_does():
    a = Assumptions(**STORY)
    m56, m47 = evaluate(load_layout("nemotron-h-56b"), a), evaluate(load_layout("nemotron-h-47b"), a)
    assert m56.memory_bytes > 31.7 * GIB >= m47.memory_bytes
    # and under the profiler's own defaults (bf16 embeddings, fp8 KV) neither fits: the accounting matters
    plain = Assumptions(hardware="rtx-5090", precision="fp4", kv_dtype="fp8", context=1 << 20, prefill_chunk=2048)
    assert evaluate(load_layout("nemotron-h-47b"), plain).memory_bytes > 31.7 * GIB


def test_the_search_from_56b_finds_47b_class_candidates_and_places_the_released_47b():
    r = search("nemotron-h-56b", max_memory="31.7GiB", references=["nemotron-h-47b"], top=20, strict=True, **STORY)
    klass = [c for c in r.front if c.layout.count(ATTENTION) <= 5 and abs(c.metrics["params"] / 46.8e9 - 1) <= 0.10]
    assert klass, [(c.layout.count(ATTENTION), c.metrics["params"]) for c in r.front]
    ref = r.references[0]
    assert ref["meets_budgets"] and ref["speedup_vs_base"] > 1
    assert ref["dominated_by_front_points"] >= 1


# ---- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,fragment", [
    (["--max-memory", "12XB"], "cannot read '12XB' as a memory size"),
    (["--max-memory=-3GiB"], "cannot read '-3GiB' as a memory size"),
    (["--max-memory", "100GiB", "--hardware", "rtx-5090"], "more than the rtx-5090's"),
    (["--max-params", "lots"], "cannot read 'lots' as a count"),
    (["--max-ttft", "0s"], "must be a positive finite number"),
    (["--min-params", "9B", "--max-params", "8B"], "min-params 9.00B is above max-params 8.00B"),
    (["--objective", "speed"], "unknown objective 'speed'"),
    (["--objective", "importance"], "needs --importance FILE"),
    (["--rules", "nh-typo"], "unknown rule set or rule id"),
    (["--hardware", "gtx-480"], "gtx-480"),
    (["--context", "1000", "--gen", "1000"], "must be smaller than the context"),
    (["--importance", "/no/such.json"], "no such importance file"),
    (["--top", "0"], "key 'top': expected a positive integer, got 0"),
    (["--precision", "int3"], "unknown precision 'int3'"),
    (["--kv-dtype", "int8"], "unknown KV-cache dtype 'int8'"),
    (["--prefill-mode", "eager"], "unknown prefill mode 'eager'"),
])
def test_bad_options_exit_2_with_one_clear_message(capsys, args, fragment):
    code, out, err = cli(capsys, "--base", "nemotron-h-8b", "--quiet", *args)
    assert code == 2
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("space,key,fragment", [
    ({"keep": {"M": [10, 99]}}, "keep.M", "the base nemotron-h-8b has 24"),
    ({"keep": {"Q": [1, 2]}}, "keep.Q", "unknown layer kind"),
    ({"widths": {"mlp.intermediate_sise": [1024]}}, "widths.mlp.intermediate_sise", "did you mean 'mlp.intermediate_size'"),
    ({"widths": {"mlp.intermediate_size": {"min": 9000, "max": 100}}}, "widths.mlp.intermediate_size", "larger than"),
    ({"method": "grid"}, "method", "unknown method"),
    ({"mode": "fresh"}, "counts", "fresh mode needs 'counts'"),
    ({"keep": {"M": [30, 20]}}, "keep.M", "min 30 is larger than max 20"),
    ({"sapce": 1}, "sapce", "unknown key"),
])
def test_bad_spaces_exit_2_naming_the_key(capsys, tmp_path, space, key, fragment):
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(space))
    code, out, err = cli(capsys, "--base", "nemotron-h-8b", "--quiet", "--space", p)
    assert code == 2 and f"key '{key}'" in err and fragment in err and str(p) in err, err
    code, out, err = cli(capsys, "--base", "nemotron-h-8b", "--space", p, "--json")
    assert code == 2
    doc = json.loads(out)["error"]
    assert set(doc) == {"message", "file", "key", "layer"}
    assert doc["key"] == key and doc["file"] == str(p) and fragment in doc["message"]


def test_json_errors_for_bad_budgets_are_a_json_document(capsys):
    code, out, err = cli(capsys, "--base", "nemotron-h-8b", "--max-memory", "12XB", "--json")
    assert code == 2
    doc = json.loads(out)["error"]
    assert doc["key"] == "max-memory" and "12XB" in doc["message"] and doc["layer"] is None


def test_bad_importance_file_names_the_layer(capsys, tmp_path):
    p = tmp_path / "imp.json"
    scores = [1.0] * 52
    scores[7] = -1
    p.write_text(json.dumps({"scores": scores}))
    code, out, err = cli(capsys, "--base", "nemotron-h-8b", "--importance", p, "--objective", "importance", "--json")
    assert code == 2
    doc = json.loads(out)["error"]
    assert doc["layer"] == 7 and doc["key"] == "scores" and ">= 0" in doc["message"]


def test_no_feasible_candidate_is_a_result_not_an_error(capsys):
    code, out, err = cli(capsys, "--base", "nemotron-h-56b", "--hardware", "rtx-5090", "--max-memory", "1GiB", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["front"] == [] and doc["feasible"] == 0 and doc["evaluated"] > 0


@pytest.mark.parametrize("seed", range(5))
def test_greedy_respects_max_consecutive_like_the_integer_program(seed):
    from designer.search import place
    base = "M-MM-M-M-MM*-M-M-M-M-M*-M-"
    scores = np.random.default_rng(seed).lognormal(0.0, 1.5, len(base))
    want = {"M": 10, "-": 8, "*": 1}
    limit = {"-": 1}
    rules = ("NH001", "NH002", "NH003")
    exact = place.keep_layers(base, want, scores, rule_ids=set(rules), max_consecutive=limit)
    greedy = place.greedy_drop(base, scores, rules, max_consecutive=limit,
                               done=lambda k: place.counts_of(base, k) == want,
                               may_drop=lambda kind, left: left[kind] > want[kind])
    assert exact is not None
    if greedy is not None:
        assert place.longest_run(base, greedy, "-") <= 1
        assert scores[greedy].sum() <= scores[exact].sum() + 1e-9
