"""MiniPuzzle part B: distillation (KL, resume), the selection under a memory budget (MIP vs greedy), and the
`distill` / `minipuzzle` commands end to end on tiny CPU models."""
from __future__ import annotations

import copy
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
    assert "plotly" in html.read_text()


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
