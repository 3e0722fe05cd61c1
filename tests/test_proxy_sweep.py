"""MQAR as in Zoology, the standard-library text task, and seed/learning-rate sweeps with a significance test."""
from __future__ import annotations

import json
import math

import pytest
import torch

from designer.measure.proxy import load_trainer
from designer.measure.runs import mean_std, student_t_two_sided_p, welch_t_test
from designer.present.report import write_proxy_report

tasks = load_trainer().tasks


def mqar(batch=64, seed=0, **params):
    return tasks.make_batch("mqar", batch, vocab_size=256, seq_len=128, gen=torch.Generator().manual_seed(seed),
                            **{"num_kv_pairs": 16, **params})


def test_mqar_values_are_distinct_within_a_sequence_like_zoology():
    x, _ = mqar()
    values = x[:, 1:32:2]
    assert all(len(set(row.tolist())) == 16 for row in values)
    assert bool(((values >= 128) & (values < 256)).all())


def test_mqar_filler_never_repeats_one_of_the_sequence_keys():
    x, y = mqar()
    keys = x[:, 0:32:2]
    for row, key_row, target in zip(x, keys, y):
        seen = [t for i, t in enumerate(row.tolist()[32:], start=32) if t in set(key_row.tolist())]
        assert len(seen) == 16      # each key exactly once after the pairs: as its query, nowhere else
        assert int((target != tasks.IGNORE).sum()) == 16


def test_mqar_power_law_puts_the_queries_closer_to_the_pairs_than_uniform():
    def mean_query_position(power_a):
        _, y = mqar(batch=256, power_a=power_a)
        return (y != tasks.IGNORE).nonzero()[:, 1].float().mean().item()
    assert mean_query_position(0.01) < mean_query_position(1.0) - 5


@pytest.mark.parametrize("value", [0, 1.5, "x", True])
def test_mqar_rejects_a_power_outside_zero_to_one(value):
    with pytest.raises(ValueError, match="power_a must be a number in"):
        tasks.check_task("mqar", 256, 128, {"power_a": value})


def test_text_task_predicts_the_next_byte_of_real_standard_library_source():
    x, y = tasks.make_batch("text", 8, vocab_size=256, seq_len=64, gen=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 64) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])                  # every position is an answer: the next byte
    assert int(x.max()) < 256 and (y != tasks.IGNORE).all()
    info = tasks.stdlib_corpus()["info"]
    assert info["files"] > 100 and info["heldout_files"] > 0 and info["python"].count(".") == 2
    assert info["train_bytes"] > 5 * info["heldout_bytes"] > 0


def test_text_heldout_split_is_by_file_and_the_same_on_every_call():
    a, b = tasks.stdlib_corpus(10), tasks.stdlib_corpus(20)
    assert a["info"]["heldout_files"] < b["info"]["heldout_files"]
    x1, _ = tasks.make_batch("text", 4, vocab_size=256, seq_len=32, gen=torch.Generator().manual_seed(5), train=False)
    x2, _ = tasks.make_batch("text", 4, vocab_size=256, seq_len=32, gen=torch.Generator().manual_seed(5), train=False)
    assert torch.equal(x1, x2)


def test_text_task_needs_a_byte_vocabulary():
    with pytest.raises(ValueError, match="vocab_size must be >= 256"):
        tasks.check_task("text", 128, 64)


def test_student_t_tail_matches_tables():
    assert student_t_two_sided_p(12.706, 1) == pytest.approx(0.05, abs=1e-4)
    assert student_t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=1e-3)
    assert student_t_two_sided_p(2.0, 10) == pytest.approx(0.0734, abs=1e-4)
    assert student_t_two_sided_p(0.0, 5) == pytest.approx(1.0)


def test_welch_t_test_separates_clear_differences_and_not_noise():
    clear = welch_t_test([1.00, 1.01, 0.99, 1.00], [1.20, 1.21, 1.19, 1.22])
    noise = welch_t_test([1.0, 1.2, 0.9], [1.05, 1.15, 0.95])
    assert clear["p"] < 1e-4 and noise["p"] > 0.5
    assert welch_t_test([1.0], [2.0, 3.0])["p"] is None
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_sweep_report_lists_mean_spread_and_pairwise_tests(tmp_path):
    rows = [{"name": n, "loss": [3.0, 2.0], "accuracy": {"text": 0.3}, "sweep": {
        "lr": 1e-3, "mean": m, "std": 0.01, "values": [m, m], "curves": [[3.0, 2.0], [3.1, 2.1]],
        "accuracy_std": {"text": 0.01}}} for n, m in (("a", 1.5), ("b", 1.7))]
    pairs = [{"better": "a", "worse": "b", "p": 0.004, "significant": True, "alpha": 0.05}]
    path = tmp_path / "r.html"
    write_proxy_report(path, rows, ["text"], "test", pairs=pairs)
    html = path.read_text()
    assert "Welch" in html and "1.5000 ± 0.0100" in html and "0.004" in html


@pytest.mark.slow
def test_proxy_cli_sweep_keeps_the_best_lr_and_tests_each_pair(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    r = run_cli("proxy", "nemotron-h-8b", "llama-3.1-8b", "--steps", "2", "--proxy-hidden", "32",
                "--proxy-layers", "4", "--device", "cpu", "--seq-len", "32", "--task", "text", "--seeds", "2",
                "--lr-grid", "1e-3,3e-3", "--json", "--report", tmp_path / "r.html", "--out", tmp_path / "jobs")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["sweep"]["seeds"] == 2 and doc["sweep"]["lr_grid"] == [1e-3, 3e-3]
    means = [e["sweep"]["mean"] for e in doc["ranking"]]
    assert means == sorted(means)
    for e in doc["ranking"]:
        sw = e["sweep"]
        assert sw["seeds"] == [0, 1] and len(sw["values"]) == 2 and len(sw["curves"]) == 2
        assert \
            sw["per_lr"][f"{sw['lr']:g}"]["mean"] == min(v["mean"] for v in sw["per_lr"].values())
        assert sw["corpus"]["files"] > 100
    (pair,) = doc["sweep"]["pairs"]
    assert 0.0 <= pair["p"] <= 1.0 and pair["test"] == "welch_t"
    assert "Welch" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("args,fragment", [
    (["--lr-grid", "a,b"], "--lr-grid: expected comma-separated numbers"),
    (["--lr-grid", "0,1e-3"], "--lr-grid: expected positive learning rates"),
    (["--lr-grid", "1e-3", "--lr", "1e-3"], "--lr and --lr-grid"),
])
def test_proxy_cli_bad_sweep_options_exit_2(run_cli, args, fragment):
    r = run_cli("proxy", "nemotron-h-8b", *args)
    assert r.returncode == 2 and fragment in r.stderr
