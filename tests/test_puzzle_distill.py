"""MiniPuzzle part B: distillation (KL, resume), the selection under a memory budget (MIP vs greedy), and the
`distill` / `minipuzzle` commands end to end on tiny CPU models."""
from __future__ import annotations

import copy
import itertools
import json

import numpy as np
import pytest
import torch

from designer.cli import main
from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import load_layout, save_layout
from designer.measure.proxy import proxy_layout
from designer.search.assumptions import Assumptions
from designer.search.puzzle.distill import distill, mean_kl
from designer.search.puzzle.pipeline import (Costs, greedy_select, mip_select, rules_that_hold, selection_ok,
                                             train_parent)
from designer.search.puzzle.student import init_student

TINY = dict(batch_size=4, seq_len=32, lr=3e-3, eval_batches=1, eval_batch_size=4)


def tiny_layout(pattern: str = "M-*-M-"):
    return proxy_layout(load_layout("nemotron-h-8b"), hidden=32, layers=6, seq_len=32).replace(pattern=pattern)


def tiny_model(layout, seed: int = 0):
    torch.manual_seed(seed)
    return load_template("model.py").build_model(args=model_args(layout))


def test_kl_is_zero_for_an_identity_student_and_stays_near_zero():
    lay = tiny_layout()
    teacher = tiny_model(lay)
    _, student = init_student(teacher, lay, list(range(lay.num_layers)))
    assert mean_kl(teacher, student, seq_len=32) == 0.0
    distill(teacher, student, steps=5, out_dir=None, **TINY)
    assert mean_kl(teacher, student, seq_len=32) < 5e-3   # AdamW's first steps move it a little, no more


def test_distillation_lowers_the_kl_of_a_pruned_student():
    lay = tiny_layout("M-*-M-M-")
    teacher = tiny_model(lay)
    with torch.no_grad():                   # a teacher with large, distinct layers: pruning one costs
        for p in teacher.parameters():
            if p.dim() >= 2:
                p.mul_(8.0)
    _, student = init_student(teacher, lay, [0, 1, 2, 3, 6, 7])
    before = mean_kl(teacher, student, seq_len=32)
    r = distill(teacher, student, steps=30, out_dir=None, **TINY)
    after = mean_kl(teacher, student, seq_len=32)
    assert before > 1e-3
    assert after < 0.8 * before, (before, after)
    assert r["steps"] == 30 and len(r["loss_curve"]) == 30 and r["tokens"] == 30 * 4 * 32


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    lay = tiny_layout()
    teacher = tiny_model(lay)
    start = tiny_model(lay, seed=1)
    one = copy.deepcopy(start)
    r1 = distill(teacher, one, steps=20, out_dir=tmp_path / "one", resume=False, checkpoint_every=5, **TINY)
    two = copy.deepcopy(start)
    half = distill(teacher, two, steps=20, out_dir=tmp_path / "two", resume=True, checkpoint_every=5, stop_at=10,
                   **TINY)
    assert half["finished"] is False and half["steps"] == 10
    resumed = copy.deepcopy(start)          # a fresh process: the weights come from the checkpoint
    r2 = distill(teacher, resumed, steps=20, out_dir=tmp_path / "two", resume=True, checkpoint_every=5, **TINY)
    assert r2["steps"] == 20 and len(r2["loss_curve"]) == 20
    for (name, a), b in zip(one.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    assert r1["loss_curve"] == pytest.approx(r2["loss_curve"], abs=1e-6)


# ---- selection under a budget


def test_mip_beats_greedy_when_the_cheap_layers_are_the_unimportant_ones():
    parent = tiny_layout("M-M*-M-M*-M-")
    a = Assumptions()
    costs = Costs(parent, a)
    full = costs.of_keep(range(parent.num_layers)).memory_bytes
    one_attention_less = costs.of_counts({"M": 5, "-": 5, "*": 1}).memory_bytes
    budget = full - 0.6 * (full - one_attention_less)          # dropping one attention layer is enough
    # attention matters a bit more than any other single layer, but dropping many cheap layers frees little
    scores = np.array([0.2 if c != "*" else 0.3 for c in parent.pattern])
    rules = rules_that_hold(parent.pattern)
    assert rules == ("NH001", "NH002", "NH003")
    mip, _ = mip_select(parent, scores, budget, costs, rules)
    greedy = greedy_select(parent, scores, budget, costs, rules)
    assert mip.memory_bytes <= budget and greedy.memory_bytes <= budget
    assert mip.counts == {"M": 5, "-": 5, "*": 1}
    assert mip.retained_importance == pytest.approx((2.6 - 0.3) / 2.6)
    assert mip.retained_importance > greedy.retained_importance + 0.1
    assert selection_ok(parent.pattern, mip.keep, rules) and selection_ok(parent.pattern, greedy.keep, rules)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mip_never_retains_less_than_greedy(seed):
    parent = tiny_layout("M-M*-M-M*-M-M-")
    costs = Costs(parent, Assumptions())
    full = costs.of_keep(range(parent.num_layers)).memory_bytes
    scores = np.random.default_rng(seed).uniform(0.01, 1.0, parent.num_layers)
    rules = rules_that_hold(parent.pattern)
    for frac in (0.99, 0.97):
        mip, _ = mip_select(parent, scores, frac * full, costs, rules)
        greedy = greedy_select(parent, scores, frac * full, costs, rules)
        if greedy is not None:
            assert mip.retained_importance >= greedy.retained_importance - 1e-12


# ---- commands


def test_minipuzzle_missing_teacher_is_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["minipuzzle", "--teacher", "missing", "--keep-fraction", "0.8"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
    with pytest.raises(SystemExit) as e:
        main(["minipuzzle", "--teacher", "missing", "--keep-fraction", "0.8", "--json"])
    assert e.value.code == 2
    doc = json.loads(capsys.readouterr().out)
    assert "missing" in doc["error"]["message"]


@pytest.fixture(scope="module")
def parent_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("parent")
    train_parent(load_layout("nemotron-h-56b"), out, hidden=32, layers=12, steps=8, batch_size=4, seq_len=32)
    return out


def test_minipuzzle_end_to_end_on_the_cpu(parent_dir, tmp_path, capsys):
    html = tmp_path / "report.html"
    code = main(["minipuzzle", "--teacher", str(parent_dir), "--keep-fraction", "0.95", "--context", "2048",
                 "--samples", "4", "--candidates", "2", "--short-steps", "2", "--distill-steps", "4",
                 "--batch-size", "4", "--seq-len", "32", "--out", str(tmp_path / "out"), "--html", str(html),
                 "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"command", "parent", "student", "mip_vs_greedy", "candidates"} <= set(doc)
    assert {"layout", "params", "heldout_loss"} <= set(doc["parent"])
    s = doc["student"]
    assert {"layout", "params", "loss_before_distill", "loss_after_distill", "loss_from_scratch",
            "memory_bytes_saved", "predicted_speedup"} <= set(s)
    assert s["params"] < doc["parent"]["params"] and s["memory_bytes_saved"] > 0 and s["predicted_speedup"] > 1
    mg = doc["mip_vs_greedy"]
    assert mg["mip"]["retained_importance"] >= mg["greedy"]["retained_importance"] - 1e-12
    assert mg["mip"]["memory_bytes"] <= doc["budget"]["memory_bytes"]
    assert 1 <= len(doc["candidates"]) <= 2 and sum(bool(r.get("winner")) for r in doc["candidates"]) == 1
    assert all(np.isfinite([s["loss_before_distill"], s["loss_after_distill"], s["loss_from_scratch"]]))
    assert (tmp_path / "out" / "minipuzzle.json").is_file() and (tmp_path / "out" / "student.pt").is_file()
    text = html.read_text()
    assert "plotly" in text
    assert '<script src="https://cdn' not in text          # the report opens offline: plotly.js is embedded
    assert text.count("Plotly.newPlot") == 3                # importance by depth, candidates, learning curves


def test_distill_command_from_keep_and_from_a_layout(parent_dir, tmp_path, capsys):
    code = main(["distill", "--teacher", str(parent_dir), "--keep", "0,1,2,3,4,5,6", "--steps", "2",
                 "--batch-size", "4", "--seq-len", "32", "--out", str(tmp_path / "a"), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["student"]["keep"] == [0, 1, 2, 3, 4, 5, 6] and doc["steps"] == 2
    assert (tmp_path / "a" / "student.pt").is_file() and (tmp_path / "a" / "distill.json").is_file()
    lay = tmp_path / "s.yaml"
    save_layout(load_layout(parent_dir / "proxy_layout.json").replace(pattern="M-*-"), lay)
    code = main(["distill", "--teacher", str(parent_dir), "--student", str(lay), "--steps", "1", "--batch-size", "4",
                 "--seq-len", "32", "--out", str(tmp_path / "b"), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["student"]["pattern"] == "M-*-" and doc["student"]["keep"] is not None


# ---- issue 15 review: resume identity, exact MIP, dense families, checks before the expensive stages


def test_resume_refuses_a_checkpoint_of_another_student_or_teacher(tmp_path):
    from designer.search.puzzle.distill import DistillError
    lay = tiny_layout()
    teacher = tiny_model(lay)
    start = tiny_model(lay, seed=1)
    distill(teacher, copy.deepcopy(start), steps=4, out_dir=tmp_path, resume=True, checkpoint_every=1, stop_at=2,
            run_id={"student": "M-*-M-", "keep": [0, 1, 2, 3, 4, 5]}, **TINY)
    with pytest.raises(DistillError, match=r"differs in keep\)"):
        distill(teacher, copy.deepcopy(start), steps=4, out_dir=tmp_path, resume=True,
                run_id={"student": "M-*-M-", "keep": [0, 1, 2, 3, 6, 7]}, **TINY)
    with pytest.raises(DistillError, match=r"differs in student_init\)"):     # another student's weights
        distill(teacher, tiny_model(lay, seed=2), steps=4, out_dir=tmp_path, resume=True,
                run_id={"student": "M-*-M-", "keep": [0, 1, 2, 3, 4, 5]}, **TINY)
    with pytest.raises(DistillError, match=r"differs in teacher_weights\)"):  # another teacher
        distill(tiny_model(lay, seed=3), copy.deepcopy(start), steps=4, out_dir=tmp_path, resume=True,
                run_id={"student": "M-*-M-", "keep": [0, 1, 2, 3, 4, 5]}, **TINY)
    r = distill(teacher, copy.deepcopy(start), steps=4, out_dir=tmp_path, resume=True,
                run_id={"student": "M-*-M-", "keep": [0, 1, 2, 3, 4, 5]}, **TINY)
    assert r["steps"] == 4 and len(r["loss_curve"]) == 4          # the same run resumes from step 2


def _brute_force_best(pattern, counts, scores, rules):
    kinds = {s: [i for i, c in enumerate(pattern) if c == s] for s in counts}
    best = -1.0
    for parts in itertools.product(*(itertools.combinations(kinds[s], counts[s]) for s in counts)):
        keep = sorted(i for p in parts for i in p)
        if selection_ok(pattern, keep, rules):
            best = max(best, float(scores[keep].sum()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_keep_layers_keeps_the_brute_force_best_importance_with_log_uniform_scores(seed):
    from designer.search.place import keep_layers
    pattern = "M-M-M*-M-M*-M-"
    rules = ("NH001", "NH002", "NH003")
    rng = np.random.default_rng(seed)
    scores = 10 ** rng.uniform(-6, 0, len(pattern))          # six orders of magnitude
    n = {s: pattern.count(s) for s in "M-*"}
    checked = 0
    for _ in range(6):
        counts = {s: int(rng.integers(1, n[s] + 1)) for s in "M-*"}
        best = _brute_force_best(pattern, counts, scores, rules)
        keep = keep_layers(pattern, counts, scores, rule_ids=set(rules))
        if best < 0:
            assert keep is None
            continue
        checked += 1
        assert selection_ok(pattern, keep, rules)
        assert {s: sum(pattern[i] == s for i in keep) for s in "M-*"} == counts
        assert scores[keep].sum() / scores.sum() >= best / scores.sum() - 1e-9, (counts, keep)
    assert checked >= 3


def test_dense_parent_keeps_attention_mlp_pairs():
    from designer.search.puzzle.pipeline import select_stage
    parent = tiny_layout("*-*-*-*-").replace(family="llama")
    costs = Costs(parent, Assumptions())
    full = costs.of_keep(range(parent.num_layers)).memory_bytes
    # an unpaired drop (one attention layer, keep its MLP) would retain the most importance: not allowed
    scores = np.array([0.1, 0.9, 0.5, 0.6, 0.5, 0.6, 0.5, 0.6])
    sel = select_stage(parent, scores, 0.9 * full, Assumptions(), candidates=3)
    assert "PAIRS" in sel["rules"]
    for s in [sel["mip"], sel["greedy"], *sel["candidates"]]:
        assert s.pattern == "*-" * (len(s.pattern) // 2), s.pattern
    assert sel["mip"].keep == [2, 3, 4, 5, 6, 7]                   # the least important pair (0, 1) dropped
    assert sel["greedy"].keep == [2, 3, 4, 5, 6, 7]


def _exit_2(capsys, argv, *needles):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for n in needles:
        assert n in err[0], err[0]


def test_commands_check_device_settings_and_budget_first(parent_dir, tmp_path, capsys):
    base = ["--teacher", str(parent_dir)]
    _exit_2(capsys, ["distill", *base, "--keep", "0,1", "--device", "tpu", "--out", str(tmp_path / "a")], "--device")
    _exit_2(capsys, ["minipuzzle", *base, "--keep-fraction", "0.9", "--device", "tpu"], "--device")
    if not torch.cuda.is_available():
        _exit_2(capsys, ["distill", *base, "--keep", "0,1", "--device", "cuda", "--out", str(tmp_path / "a")],
                "no CUDA")
        _exit_2(capsys, ["minipuzzle", *base, "--keep-fraction", "0.9", "--device", "cuda"], "no CUDA")
    _exit_2(capsys, ["minipuzzle", *base, "--keep-fraction", "0.9", "--temperature", "0"], "--temperature")
    _exit_2(capsys, ["minipuzzle", *base, "--keep-fraction", "0.9", "--lr", "-1"], "--lr")
    _exit_2(capsys, ["minipuzzle", *base, "--keep-fraction", "0.9", "--hidden-mse", "-0.5"], "--hidden-mse")
    _exit_2(capsys, ["minipuzzle", *base, "--budget-gib", "1e-9", "--context", "2048"], "no selection")
    lay = tmp_path / "wide.yaml"
    save_layout(load_layout(parent_dir / "proxy_layout.json").replace(pattern="M-", hidden_size=64), lay)
    _exit_2(capsys, ["distill", *base, "--student", str(lay), "--out", str(tmp_path / "b")], "hidden_size")


def test_distill_resume_with_another_keep_of_the_same_pattern_is_exit_2(parent_dir, tmp_path, capsys):
    run = ["distill", "--teacher", str(parent_dir), "--steps", "2", "--batch-size", "4", "--seq-len", "32",
           "--out", str(tmp_path / "d2"), "--json"]
    assert main([*run, "--keep", "0,1,2,3"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([*run, "--keep", "0,1,4,6", "--resume"])          # M-M- as well: another student
    assert e.value.code == 2
    assert "keep" in json.loads(capsys.readouterr().out)["error"]["message"]
