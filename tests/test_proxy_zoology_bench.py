"""bench/proxy_zoology.py's bookkeeping (no training): run keys with file fallbacks, and --merge of lane files."""
from __future__ import annotations

import json

import pytest


@pytest.fixture
def z(bench_script):
    return bench_script("proxy_zoology")


def row(**kw):
    base = {"family": "attention", "width": 64, "state_size": None, "num_kv_pairs": 64, "seq_len": 512,
            "vocab": 8192, "batch": 64, "lr": 1e-3, "seed": 0, "steps": 4000, "min_kv_pairs": 4,
            "tokens_per_pair": 16, "power_a": 0.01, "rope_theta": 10000.0, "heads": 1, "accuracy": 0.5,
            "accuracy_history": [{"step": 4000, "mqar": 0.5}]}
    return {**base, **kw}


def test_merge_keeps_each_run_once_and_old_files_read_as_untied(z, tmp_path):
    old = {"command": "old", "gpu": "H200", "runs": [row(width=64), row(width=128, accuracy=0.9)],   # before tying
           "skipped": [row(width=256), row(width=64, tie_embeddings=True)]}
    new = {"command": "new", "gpu": "H200", "tie_embeddings": True,
           "runs": [row(width=64, tie_embeddings=True, accuracy=0.1), row(width=128, tie_embeddings=False)]}
    (tmp_path / "a.json").write_text(json.dumps(old))
    (tmp_path / "b.json").write_text(json.dumps(new))
    out = tmp_path / "m.json"
    assert z.merge([str(tmp_path / "a.json"), str(tmp_path / "b.json")], out) == 0
    merged = json.loads(out.read_text())
    got = [(r["width"], r["tie_embeddings"], r["accuracy"]) for r in merged["runs"]]
    # b's untied width-128 run is a's width-128 run (same whole setting): kept once, from the first file
    assert got == [(64, False, 0.5), (128, False, 0.9), (64, True, 0.1)]
    assert merged["command"] == "old ; new" and merged["merged_from"] == ["a.json", "b.json"]
    # a's skipped width-256 run is still missing; its skipped tied width-64 run came from b
    assert [(r["width"], r.get("tie_embeddings")) for r in merged["skipped"]] == [(256, None)]
    assert z.series_name(merged["runs"][0]) == "attention, 4000 steps"
    assert z.series_name(row(family="mamba2", state_size=16, tie_embeddings=True)) == \
        "mamba2, state 16, tied head, 4000 steps"
    # the best run per family and width over every set-up, with the setting that reached it
    assert [(b["width"], b["accuracy"], b["tie_embeddings"]) for b in merged["best"]] == [(64, 0.5, False),
                                                                                           (128, 0.9, False)]


def test_merge_refuses_a_file_that_is_not_a_result_file_with_exit_2(z, tmp_path, capsys):
    (tmp_path / "x.json").write_text(json.dumps({"runs": "no"}))
    assert z.merge([str(tmp_path / "x.json")], tmp_path / "m.json") == 2
    assert z.merge([str(tmp_path / "missing.json")], tmp_path / "m.json") == 2
    err = capsys.readouterr().err
    assert "x.json: not a proxy_zoology result file" in err and "missing.json: cannot read it" in err
    assert not (tmp_path / "m.json").exists()


def test_a_bad_grid_is_refused_with_one_line_and_exit_2(z, capsys):
    assert z.grid_problem(z.FULL, "attention,mamba2") is None and z.grid_problem(z.TINY, None) is None
    assert z.main(["--only", "attention,transformer"]) == 2
    assert z.main(["--widths", "64,wide"]) == 2
    assert z.main(["--lrs", "1e-3,0"]) == 2
    assert z.main(["--widths", "64,96", "--heads", "64"]) == 2
    assert z.main(["--learned-positions"]) == 2      # with RoPE still on
    err = capsys.readouterr().err.splitlines()
    assert err == ["proxy_zoology: --only: unknown family 'transformer' (allowed: attention, hybrid, mamba2)",
                   "proxy_zoology: --widths: '64,wide' is not a comma-separated list of ints",
                   "proxy_zoology: --lrs: '1e-3,0' has a value that is not positive",
                   "proxy_zoology: --heads 64: must be at least 1 and divide every width (96 does not split evenly)",
                   "proxy_zoology: --learned-positions replaces RoPE: add --rope-theta 0"]


def test_learned_positions_add_one_trained_table_and_make_attention_see_order(z):
    """Without RoPE, causal attention over token embeddings alone cannot tell where a token sits; the learned
    table (Zoology's) gives each position its own vector, trained with the rest (seq_len x width parameters)."""
    import torch
    model_py = z.load_template_file("zoology_train_proxy", "train_proxy.py").load_module(z.TEMPLATES / "model.py")
    d = z.layout("attention", 64, 16, vocab=256, seq_len=32, rope_theta=None)
    torch.manual_seed(0)
    plain = model_py.build_model(args=model_py.ModelArgs.from_dict(d))
    torch.manual_seed(0)
    learned = model_py.build_model(args=model_py.ModelArgs.from_dict(d))
    z.add_learned_positions(learned, 32)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(learned) - n(plain) == 32 * 64
    ids = torch.tensor([[9, 9, 9, 9]])   # one token everywhere: without positions every prefix looks alike
    with torch.no_grad():
        same = plain(ids)[0]
        moved = learned(ids)[0]
    # causal attention averages equal values: every position's output is the same unless positions are added
    assert torch.allclose(same[0], same[3], atol=1e-5)
    assert not torch.allclose(moved[0], moved[3], atol=1e-3)
    learned(ids).sum().backward()
    assert learned.position_embedding.weight.grad[:4].abs().sum() > 0
    assert learned.position_embedding.weight.grad[4:].abs().sum() == 0
    assert z.series_name(row(learned_positions=True)) == "attention, learned positions, 4000 steps"
