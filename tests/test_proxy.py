"""Proxy training: shrinking a layout, the synthetic tasks, the trainer on the CPU, `designer proxy`, and the
proxy job that `designer export` writes.

The trainer runs in-process with one torch thread (the `one_thread` fixture): these models are tiny, and two
threads on a 2-core machine shared with other work spend their time waiting on each other, not computing.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from designer.measure.proxy import (TEMPLATES, load_trainer, pattern_units, proxy_layout, proxy_sizes,
                                   shrink_pattern, write_proxy_files)
from designer.layout import LayoutError, load_layout, preset_names
from designer.profile.params import count_params
from designer.rules import check, has_errors

trainer = load_trainer()
tasks = trainer.tasks
IGNORE = tasks.IGNORE


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mixers(pattern: str) -> tuple[int, int]:
    """(Mamba layers, attention layers)."""
    return pattern.count("M"), pattern.count("*")


def is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(u == v for v in it) for u in short)


# --------------------------------------------------------------------------------------------------
# Shrinking a layout


def test_nemotron_h_8b_at_12_layers_keeps_one_attention_layer_in_thirteen():
    big = load_layout("nemotron-h-8b")
    assert mixers(big.pattern) == (24, 4) and big.num_layers == 52   # one attention layer in 13
    proxy = proxy_layout(big, hidden=256, layers=12)
    # whole motifs: 5 of the 22 `M-` and 1 of the 4 `M*-` (the Mamba layer feeding attention stays with it)
    assert proxy.pattern == "M-M-M-M*-M-M-"
    assert proxy.num_layers == 13 and mixers(proxy.pattern) == (6, 1)
    # starts with Mamba, attention in the middle and followed by an FFN, ends with an FFN: the Nemotron-H
    # design rules the original satisfies hold for the proxy too
    assert [v.rule for v in check(proxy, ["nemotron-h"]) if v.severity == "error"] == []
    assert proxy.name == "nemotron-h-8b-proxy" and proxy.vocab_size == 256 and proxy.rules == ()


def test_nemotron_h_8b_proxy_widths_scale_with_hidden():
    big = load_layout("nemotron-h-8b")   # attention 32 x 128 = hidden, Mamba 128 x 64 = 2 x hidden, MLP 21504
    proxy = proxy_layout(big, hidden=256, layers=12, seq_len=64)
    a, m = proxy.attention, proxy.mamba
    assert proxy.hidden_size == 256
    assert (a.num_heads, a.num_kv_heads, a.head_dim) == (4, 1, 64)   # 4 q heads per kv head, as 32 / 8
    assert a.num_heads * a.head_dim == 256
    assert (m.num_heads, m.head_dim, m.n_groups) == (8, 64, 1) and m.num_heads * m.head_dim == 512
    assert (m.state_size, m.conv_kernel) == (big.mamba.state_size, big.mamba.conv_kernel)   # not widths: kept
    assert m.chunk_size == 64                      # cut to the sequence length
    assert proxy.max_position_embeddings == 64
    assert proxy.mlp.intermediate_size == 1344     # 21504 * 256 / 4096


@pytest.mark.parametrize("layers", [12, 24, 48])
def test_nemotron_h_56b_proxy_keeps_the_attention_share(layers):
    big = load_layout("nemotron-h-56b")
    share = big.count("*") / (big.count("*") + big.count("M"))   # 10 / 64
    proxy = proxy_layout(big, hidden=256, layers=layers)
    n_mamba, n_attn = mixers(proxy.pattern)
    # the attention count is the share of the proxy's mixers, rounded (10 of 64 mixers: 1 in 6.4)
    assert abs(n_attn - share * (n_mamba + n_attn)) <= 0.5
    assert n_attn >= 1 and abs(proxy.num_layers - layers) <= max(2, 0.1 * layers)   # whole units
    # whole units of the original, in their original order
    assert is_subsequence(pattern_units(proxy.pattern), pattern_units(big.pattern))


def test_nemotron_h_56b_at_12_layers():
    proxy = proxy_layout(load_layout("nemotron-h-56b"), hidden=256, layers=12)
    assert proxy.pattern == "M-M-M*-M-M-"        # 11 layers: whole motifs; 1 of 6 mixers is attention (10 of 64)


@pytest.mark.parametrize("name,layers,expected", [
    ("falcon-mamba-7b", 12, "M" * 12),
    ("mamba2-2.7b", 12, "M" * 12),
    ("mamba2-2.7b", 5, "M" * 5),
    ("llama-3.1-8b", 12, "*-" * 6),
    ("llama-3.1-70b", 12, "*-" * 6),
    ("llama-3.1-8b", 3, "*-" * 2),               # whole `*-` units: 3 layers round to 2 units
])
def test_pure_layouts_stay_pure(name, layers, expected):
    proxy = proxy_layout(load_layout(name), hidden=128, layers=layers)
    assert proxy.pattern == expected


def test_shrink_pattern_keeps_short_patterns_and_at_least_one_of_each_mixer():
    assert shrink_pattern("M-M*-", 5) == "M-M*-"
    assert shrink_pattern("M-M*-", 50) == "M-M*-"
    assert shrink_pattern("M-M-M-M-M-M-M-M-M*-", 2) == "M-M*-"     # both motifs survive a deep cut
    assert pattern_units("M-M*-E") == ["M-", "M*-", "E"]
    assert pattern_units("---") == ["-", "-", "-"]
    assert pattern_units("MMM") == ["M", "M", "M"]
    assert pattern_units("M-MM") == ["M-", "MM"]


@pytest.mark.parametrize("name", ["nemotron-h-4b", "nemotron-h-8b", "nemotron-h-56b", "nemotron-nano-12b-v2"])
@pytest.mark.parametrize("layers", [4, 6, 8, 10, 12, 16, 24])
def test_nemotron_proxies_keep_the_nemotron_h_rules_at_any_depth(name, layers):
    """Attention keeps its Mamba layer before and its FFN after; the proxy starts with Mamba, ends with an FFN."""
    proxy = proxy_layout(load_layout(name), hidden=128, layers=layers)
    assert "MM" not in proxy.pattern and "*" in proxy.pattern
    assert [v.rule for v in check(proxy, ["nemotron-h"]) if v.severity == "error"] == []


@pytest.mark.parametrize("name", preset_names())
@pytest.mark.parametrize("hidden,layers", [(32, 4), (96, 6), (256, 12), (512, 24)])
def test_proxy_head_counts_divide_and_structural_rules_pass(name, hidden, layers):
    big = load_layout(name)
    proxy = proxy_layout(big, hidden=hidden, layers=layers)
    if proxy.attention is not None:
        assert proxy.attention.num_heads % proxy.attention.num_kv_heads == 0
    if proxy.mamba is not None and proxy.mamba.version == 2:
        assert proxy.mamba.num_heads % proxy.mamba.n_groups == 0
    if proxy.moe is not None:
        assert 1 <= proxy.moe.top_k <= proxy.moe.num_experts <= 8
    # the rules `designer validate` runs on the proxy (structural + constraints; the proxy carries no rule sets)
    errors = [(v.rule, v.message) for v in check(proxy) if v.severity == "error"]
    assert errors == [] and not has_errors(check(proxy))
    for symbol in "M*-E":      # every layer kind of the original survives, and no other appears
        assert (symbol in proxy.pattern) == (symbol in big.pattern)


@pytest.mark.parametrize("name", ["nemotron-h-8b", "nemotron-h-56b", "mamba2-2.7b", "falcon-mamba-7b",
                                  "llama-3.1-8b", "qwen2.5-7b"])
@pytest.mark.parametrize("scale", [0.1, 0.01, 0.001])
def test_scale_keeps_about_that_fraction_of_the_non_embedding_parameters(name, scale):
    big = load_layout(name)
    proxy = proxy_layout(big, scale=scale)
    fraction = count_params(proxy).non_embedding / count_params(big).non_embedding
    assert 0.7 * scale <= fraction <= 1.4 * scale, (proxy.hidden_size, proxy.num_layers, fraction)


def test_scale_one_is_the_original_size_and_explicit_sizes_win_over_scale():
    big = load_layout("nemotron-h-8b")
    same = proxy_layout(big, scale=1)
    assert (same.hidden_size, same.pattern) == (big.hidden_size, big.pattern)
    assert same.attention == big.attention and same.mlp == big.mlp
    assert proxy_sizes(big, scale=1e-3) == (384, 5)
    assert proxy_sizes(big, hidden=64, layers=3, scale=1e-3) == (64, 3)
    assert proxy_sizes(big) == (256, 12)
    assert proxy_sizes(big, hidden=10**6, layers=10**6) == (4096, 52)    # never larger than the original


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(hidden=0), "proxy hidden must be a positive integer"),
    (dict(hidden=-64), "proxy hidden must be a positive integer"),
    (dict(hidden=64.0), "proxy hidden must be a positive integer"),
    (dict(hidden=True), "proxy hidden must be a positive integer"),
    (dict(layers=0), "proxy layers must be a positive integer"),
    (dict(layers="12"), "proxy layers must be a positive integer"),
    (dict(scale=0), "proxy scale must be in (0, 1]"),
    (dict(scale=-0.5), "proxy scale must be in (0, 1]"),
    (dict(scale=2), "proxy scale must be in (0, 1]"),
    (dict(scale=math.nan), "proxy scale must be in (0, 1]"),
])
def test_bad_proxy_sizes_raise_layout_error(kwargs, fragment):
    with pytest.raises(LayoutError, match=fragment.replace("(", r"\(").replace("]", r"\]")):
        proxy_layout(load_layout("nemotron-h-8b"), **kwargs)


def test_write_proxy_files_rejects_bad_trainer_options(tmp_path):
    big = load_layout("nemotron-h-8b")
    with pytest.raises(LayoutError, match="unknown task 'nosuch'"):
        write_proxy_files(big, tmp_path / "a", tasks={"nosuch": {}})
    with pytest.raises(LayoutError, match="unknown key 'stepz'"):
        write_proxy_files(big, tmp_path / "b", stepz=3)
    with pytest.raises(LayoutError, match="seq_len must be >= 4 \\* num_kv_pairs = 32"):
        write_proxy_files(big, tmp_path / "c", seq_len=16)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()   # checked before writing


# --------------------------------------------------------------------------------------------------
# Synthetic tasks

V, L, B = 256, 128, 16


def batch(name, seed=0, batch_size=B, **params):
    gen = torch.Generator().manual_seed(seed)
    return tasks.make_batch(name, batch_size, vocab_size=V, seq_len=L, gen=gen, seed=0, **params)


@pytest.mark.parametrize("name", [t for t in tasks.TASKS if t != "text"])   # text: every byte is an answer
def test_every_task_gives_int64_batches_whose_answers_are_the_next_input_token(name):
    x, y = batch(name)
    assert x.dtype == y.dtype == torch.int64
    assert x.shape == y.shape == (B, L)
    assert 0 <= int(x.min()) and int(x.max()) < V
    answers = y != IGNORE
    assert bool(((y[answers] >= 0) & (y[answers] < V)).all())
    assert bool(answers.any(dim=1).all())                 # every sequence has something to score
    assert int(answers.sum()) <= answers.numel() // 2     # ... and at most half the positions are
    # the target at an answer position is the token that follows it in the input (teacher forcing)
    inner = answers[:, :-1]
    assert torch.equal(y[:, :-1][inner], x[:, 1:][inner])


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_task_is_a_function_of_the_generator_seed(name):
    x0, y0 = batch(name, seed=7)
    x1, y1 = batch(name, seed=7)
    x2, _ = batch(name, seed=8)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert not torch.equal(x0, x2)
    # a generator that has drawn one batch gives a different second one
    gen = torch.Generator().manual_seed(7)
    a = tasks.make_batch(name, B, vocab_size=V, seq_len=L, gen=gen)[0]
    b = tasks.make_batch(name, B, vocab_size=V, seq_len=L, gen=gen)[0]
    assert torch.equal(a, x0) and not torch.equal(a, b)


def test_mqar_targets_are_the_values_paired_with_the_queried_keys():
    n = 8
    x, y = batch("mqar", num_kv_pairs=n)
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        keys, values = row_x[0:2 * n:2], row_x[1:2 * n:2]
        assert len(set(keys)) == n                                   # distinct keys
        assert all(1 <= k < V // 2 for k in keys) and all(V // 2 <= v < V for v in values)
        pairs = dict(zip(keys, values))
        queried = [t for t, target in enumerate(row_y) if target != IGNORE]
        assert len(queried) == n and all(t >= 2 * n for t in queried)
        assert sorted(row_x[t] for t in queried) == sorted(keys)     # every key asked once
        assert all(row_y[t] == pairs[row_x[t]] for t in queried)


def test_mqar_curriculum_mixes_pair_counts_in_training_only():
    x, y = batch("mqar", batch_size=12, num_kv_pairs=8, min_kv_pairs=2)
    assert (y != IGNORE).sum(dim=1).tolist() == [8] * 4 + [4] * 4 + [2] * 4
    gen = torch.Generator().manual_seed(0)
    _, y_eval = tasks.make_batch("mqar", 12, vocab_size=V, seq_len=L, gen=gen, train=False, num_kv_pairs=8,
                                 min_kv_pairs=2)
    assert (y_eval != IGNORE).sum(dim=1).tolist() == [8] * 12


def test_mqar_tokens_per_pair_shortens_the_curriculum_sequences_and_pads_them():
    # 8 pairs in L = 128 tokens, tokens_per_pair 8: the task's own 8 pairs keep all 128 tokens, the curriculum's
    # 4 pairs fill 32 and 2 pairs 16 (>= 4 * n); the rest is padding (token 0, never a key or value), no targets
    x, y = batch("mqar", batch_size=12, num_kv_pairs=8, min_kv_pairs=2, tokens_per_pair=8)
    for row_x, row_y, (n, length) in zip(x.tolist(), y.tolist(), [(8, 128)] * 4 + [(4, 32)] * 4 + [(2, 16)] * 4):
        assert all(t == 0 for t in row_x[length:]) and all(t == IGNORE for t in row_y[length:])
        assert 0 not in row_x[:length]
        asked = [t for t, target in enumerate(row_y) if target != IGNORE]
        assert len(asked) == n and max(asked) < length
    # the evaluation form keeps every sequence at num_kv_pairs and full length
    gen = torch.Generator().manual_seed(0)
    x_eval, y_eval = tasks.make_batch("mqar", 4, vocab_size=V, seq_len=L, gen=gen, train=False, num_kv_pairs=8,
                                      min_kv_pairs=2, tokens_per_pair=8)
    assert (x_eval != 0).all() and (y_eval != IGNORE).sum(dim=1).tolist() == [8] * 4


def test_mqar_default_tokens_per_pair_passes_the_trainer_config():
    cfg = trainer.config_from_dict({"name": "t", "tasks": {"mqar": {"num_kv_pairs": 4}}, "vocab_size": 64,
                                    "seq_len": 32, "steps": 1, "batch_size": 2, "device": "cpu"})
    assert cfg.tasks["mqar"]["tokens_per_pair"] == 0


def test_selective_copy_answers_are_the_scattered_tokens_in_order():
    x, y = batch("selective_copy", num_tokens=16)
    region = L - 16
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        data = [t for t in row_x[:region] if t != 0]
        assert len(data) == 16 and row_x[region] == 1
        assert row_y[region:] == data and set(row_y[:region]) == {IGNORE}


def test_noisy_recall_asks_only_keys_seen_before_and_answers_their_value():
    x, y = batch("noisy_recall")
    third = V // 3
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        seen = {}
        for t in range(0, L - 1, 2):
            k, v = row_x[t], row_x[t + 1]
            if not third <= k < 2 * third:          # a noise item: never an answer
                assert row_y[t] == IGNORE
                continue
            assert row_y[t] == (seen[k] if k in seen else IGNORE)
            assert seen.setdefault(k, v) == v       # a key keeps its value within a sequence


def test_compression_answers_the_token_at_the_asked_position():
    x, y = batch("compression", num_tokens=16, num_queries=8)
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        asked = [t for t, target in enumerate(row_y) if target != IGNORE]
        assert len(asked) == 8
        assert all(row_y[t] == row_x[row_x[t] - 2] for t in asked)   # position token 2 + i -> data token i


def test_memorization_uses_one_table_per_seed():
    def table(x, y):
        keep = y[:, 0::2] != IGNORE
        return dict(zip(x[:, 0::2][keep].tolist(), y[:, 0::2][keep].tolist()))
    t0 = table(*batch("memorization", seed=1))
    t1 = table(*batch("memorization", seed=2))                   # other data, same table
    common = t0.keys() & t1.keys()
    assert len(common) > 32 and all(t0[k] == t1[k] for k in common)
    gen = torch.Generator().manual_seed(1)
    x, y = tasks.make_batch("memorization", B, vocab_size=V, seq_len=L, gen=gen, seed=99)
    other = table(x, y)
    assert any(other[k] != t0[k] for k in other.keys() & t0.keys())


@pytest.mark.parametrize("name,size,params,fragment", [
    ("mqar", (16, 128), {}, "vocab_size must be >= 2 * (num_kv_pairs + 1) = 18"),
    ("mqar", (256, 31), {}, "seq_len must be >= 4 * num_kv_pairs = 32"),
    ("mqar", (256, 128), {"min_kv_pairs": 9}, "min_kv_pairs must be <= num_kv_pairs"),
    ("mqar", (256, 128), {"tokens_per_pair": 2}, "tokens_per_pair must be 0 (every sequence seq_len long) or"),
    ("mqar", (256, 128), {"tokens_per_pair": -1}, "tokens_per_pair must be 0 (every sequence seq_len long) or"),
    ("mqar", (256, 128), {"tokens_per_pair": 2.5}, "tokens_per_pair must be 0 (every sequence seq_len long) or"),
    ("selective_copy", (256, 32), {}, "seq_len must be >= 2 * num_tokens + 1 = 33"),
    ("noisy_recall", (26, 128), {}, "vocab_size must be >= 3 * (num_keys + 1) = 27"),
    ("noisy_recall", (256, 128), {"noise_prob": 1.0}, "noise_prob must be a number in [0, 1)"),
    ("noisy_recall", (256, 128), {"noise_prob": None}, "noise_prob must be a number in [0, 1)"),
    ("noisy_recall", (256, 128), {"noise_prob": [0.1]}, "noise_prob must be a number in [0, 1)"),
    ("noisy_recall", (256, 128), {"noise_prob": "0.1"}, "noise_prob must be a number in [0, 1)"),
    ("fuzzy_recall", (33, 128), {}, "vocab_size must be >= 4 * num_keys + 2 = 34"),
    ("fuzzy_recall", (256, 11), {}, "seq_len must hold two key-value items"),
    ("compression", (256, 32), {}, "seq_len must be >= num_tokens + 1 + 2 * num_queries = 33"),
    ("compression", (19, 128), {}, "vocab_size must be >= num_tokens + 4 = 20"),
    ("memorization", (129, 128), {}, "vocab_size must be >= 2 * (num_facts + 1) = 130"),
    ("mqar", (256, 128), {"num_kv_pairs": 0}, "num_kv_pairs must be an integer >= 1, got 0"),
    ("mqar", (256, 128), {"num_kv_pairs": 2.5}, "num_kv_pairs must be an integer >= 1, got 2.5"),
    ("mqar", (256, 128), {"keys": 2}, "unknown parameter 'keys'; allowed: num_kv_pairs, min_kv_pairs"),
    ("recall", (256, 128), {}, "unknown task 'recall'; tasks: mqar, selective_copy"),
])
def test_check_task_rejects_too_small_sizes_with_what_they_need(name, size, params, fragment):
    with pytest.raises(ValueError) as e:
        tasks.check_task(name, *size, params)
    assert fragment in str(e.value)


@pytest.mark.parametrize("name,size", [
    ("mqar", (18, 32)), ("selective_copy", (4, 33)), ("noisy_recall", (27, 4)), ("fuzzy_recall", (34, 12)),
    ("compression", (20, 33)), ("memorization", (130, 2)),
])
def test_the_smallest_sizes_check_task_accepts_are_enough_for_a_batch(name, size):
    vocab, seq = size
    tasks.check_task(name, vocab, seq)
    x, y = tasks.make_batch(name, 8, vocab_size=vocab, seq_len=seq, gen=torch.Generator().manual_seed(0))
    assert x.shape == (8, seq) and int(x.max()) < vocab and int(y.max()) < vocab
    if name in ("mqar", "selective_copy", "compression", "memorization"):   # the recall tasks may not
        assert bool((y != IGNORE).all(dim=0).any() or (y != IGNORE).any(dim=1).all())   # repeat a key


# --------------------------------------------------------------------------------------------------
# The trainer

# MQAR small enough to learn on a CPU in seconds: 2 key-value pairs in 16 tokens, 16-token vocabulary (keys
# 1..7, values 8..15: predicting any value gives ln 8 = 2.08, half the initial loss ln 16 = 2.77 needs recall)
LEARN = dict(tasks={"mqar": {"num_kv_pairs": 2}}, vocab_size=16, seq_len=16, steps=200, batch_size=32,
             lr=3e-3, warmup_steps=10, eval_batches=1, eval_batch_size=32, seed=0, device="cpu")


def write_job(path, layers=4, **options):
    return write_proxy_files(load_layout("nemotron-h-8b"), path, hidden=64, layers=layers, copy_model=True,
                             **{**LEARN, **options})


def test_write_proxy_files_writes_a_job_the_trainer_reads(tmp_path):
    config = write_job(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"train_proxy.py", "proxy_tasks.py", "model.py",
                                                   "proxy_layout.json", "proxy.yaml"}
    for f in ("train_proxy.py", "proxy_tasks.py", "model.py"):
        assert (tmp_path / f).read_text() == (TEMPLATES / f).read_text()
    layout = json.loads((tmp_path / "proxy_layout.json").read_text())
    assert layout["pattern"] == "M-M*-" and layout["hidden_size"] == 64 and layout["vocab_size"] == 16
    assert layout["mamba"]["chunk_size"] == 16
    assert json.loads((tmp_path / "proxy.yaml").read_text()) == config
    cfg = trainer.load_config(tmp_path / "proxy.yaml")
    assert cfg.tasks == {"mqar": {"num_kv_pairs": 2, "min_kv_pairs": 0, "power_a": 0.01,
                                   "tokens_per_pair": 0}} and cfg.steps == 200
    assert config["name"] == "nemotron-h-8b-proxy" and config["layout"] == "proxy_layout.json"


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = trainer.config_from_dict({"lr": 1e-2, "warmup_steps": 10, "steps": 110, "min_lr_ratio": 0.1})
    lrs = [trainer.lr_at(s, cfg) for s in range(cfg.steps)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2) and lrs[10] == pytest.approx(1e-2)
    assert lrs[-1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


@pytest.mark.slow
def test_tiny_proxy_loss_falls_by_half_on_the_cpu(tmp_path, one_thread):
    # how long this takes is measured by bench/bench_proxy_cpu.py, not asserted here
    write_job(tmp_path)
    metrics = trainer.train(trainer.load_config(tmp_path / "proxy.yaml"), root=tmp_path, quiet=True)
    assert metrics["initial_loss"] == pytest.approx(math.log(16), abs=0.15)   # uniform over the vocabulary
    assert metrics["final_loss"] <= 0.5 * metrics["initial_loss"], metrics["loss"][::20]
    # the loss fell by recalling: answer accuracy well above guessing among the 8 values
    assert metrics["accuracy"]["mqar"] >= 2 / 8
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert {"loss", "accuracy", "tokens_per_s", "peak_memory_bytes"} <= on_disk.keys()
    assert on_disk["loss"] == metrics["loss"] and len(on_disk["loss"]) == 200
    assert on_disk["accuracy"] == metrics["accuracy"] and on_disk["world_size"] == 1
    assert on_disk["tokens_per_s"] > 0 and on_disk["peak_memory_bytes"] > 0
    assert on_disk["eval"]["mqar"]["answers"] == 32 * 2       # eval_batches x eval_batch_size x pairs


def test_same_seed_gives_the_same_loss_curve(tmp_path, one_thread):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_job(tmp_path / name, steps=6, seed=seed)
        runs[name] = trainer.train(trainer.load_config(tmp_path / name / "proxy.yaml"), root=tmp_path / name,
                                   quiet=True)
    assert runs["a"]["loss"] == runs["b"]["loss"] and len(runs["a"]["loss"]) == 6
    assert runs["a"]["eval"] == runs["b"]["eval"] and runs["a"]["params"] == runs["b"]["params"]
    assert runs["a"]["loss"] != runs["c"]["loss"]              # the seed matters: the check can fail


@pytest.mark.parametrize("data,fragment", [
    ({"stepz": 3}, "unknown key 'stepz'"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"steps": 2.5}, "steps must be an integer >= 0"),
    ({"lr": -1}, "lr must be a number >= 0"),
    ({"deterministic": "yes"}, "deterministic must be true or false"),
    ({"dtype": "fp16"}, "dtype must be bf16 or fp32"),
    ({"tasks": {}}, "tasks must map task names to parameters"),
    ({"tasks": {"mqar": 3}}, "tasks must map each task name to a mapping"),
    ({"device": 5}, "device must be a string, got 5"),
    ({"eval_batches": 0}, "eval_batches must be >= 1"),
    ({"min_lr_ratio": 5}, "min_lr_ratio must be in"),
])
def test_bad_config_values_are_config_errors(data, fragment):
    with pytest.raises(trainer.ConfigError, match=fragment):
        trainer.config_from_dict(data)


def test_a_short_run_still_reaches_the_peak_learning_rate_and_decays():
    cfg = trainer.config_from_dict({"lr": 1e-2, "warmup_steps": 30, "steps": 20, "min_lr_ratio": 0.1})
    lrs = [trainer.lr_at(i, cfg) for i in range(cfg.steps)]
    assert trainer.warmup_steps(cfg) == 2 and lrs[1] == pytest.approx(1e-2)   # warm-up: a tenth of the run
    assert lrs[-1] == pytest.approx(1e-3) and max(lrs) == pytest.approx(1e-2)


def test_train_proxy_main_reports_an_unreadable_config_in_one_line(tmp_path, capsys):
    assert trainer.main(["--config", str(tmp_path)]) == 2          # a directory, not a file
    err = capsys.readouterr().err
    assert err.startswith("train_proxy.py: error:") and "cannot read it" in err and len(err.splitlines()) == 1


def test_write_proxy_files_cuts_the_mamba_chunk_to_the_job_sequence_length(tmp_path):
    config = write_proxy_files(load_layout("mamba2-2.7b"), tmp_path, steps=1)   # chunk 256, default seq_len 128
    proxy = json.loads((tmp_path / "proxy_layout.json").read_text())
    assert config["seq_len"] == 128 and proxy["mamba"]["chunk_size"] == 128
    assert proxy["max_position_embeddings"] == 128


def test_ranking_puts_a_diverged_run_last():
    from designer.measure.runs import rank
    runs = [{"name": "nan", "mean_accuracy": 0.5, "final_loss": math.nan},
            {"name": "ok", "mean_accuracy": 0.5, "final_loss": 2.0},
            {"name": "best", "mean_accuracy": 0.9, "final_loss": 3.0}]
    assert [r["name"] for r in rank(runs)] == ["best", "ok", "nan"]


def test_json_output_writes_nan_as_null(capsys):
    from designer.cliutil import emit_json
    emit_json({"final_loss": math.nan, "loss": [1.0, math.inf]})
    assert json.loads(capsys.readouterr().out) == {"final_loss": None, "loss": [1.0, None]}


def test_train_proxy_main_reports_a_missing_config_in_one_line(tmp_path, capsys):
    assert trainer.main(["--config", str(tmp_path / "proxy.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train_proxy.py: error:") and "no such file" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------------------------------
# `designer proxy`


@pytest.mark.slow
def test_proxy_cli_ranks_the_layouts_in_one_json_document(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    report, out = tmp_path / "report.html", tmp_path / "jobs"
    r = run_cli("proxy", "nemotron-h-8b", "llama-3.1-8b", "--steps", "3", "--proxy-hidden", "32",
                "--proxy-layers", "4", "--device", "cpu", "--json", "--report", report, "--out", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)                              # one JSON document, nothing else on stdout
    assert doc["settings"]["steps"] == 3 and doc["nproc"] == 1
    ranking = doc["ranking"]
    assert [e["rank"] for e in ranking] == [1, 2]
    assert {e["name"]: e["proxy_pattern"] for e in ranking} == {"nemotron-h-8b": "M-M*-", "llama-3.1-8b": "*-*-"}
    key = [(-e["mean_accuracy"], e["final_loss"]) for e in ranking]
    assert key == sorted(key)                               # best first
    for e in ranking:
        assert len(e["loss"]) == 3 and e["world_size"] == 1 and e["device"] == "cpu"
        assert all(math.isfinite(v) for v in e["loss"])
        assert e["initial_loss"] == pytest.approx(math.log(256), abs=0.3)
        saved = json.loads((out / e["name"] / "metrics.json").read_text())
        assert saved["loss"] == e["loss"] and saved["params"] == e["params"]
    html = report.read_text()
    assert "nemotron-h-8b" in html and "llama-3.1-8b" in html and "plotly" in html.lower()


@pytest.mark.parametrize("args,fragment", [
    (["--task", "nosuch"], "unknown task 'nosuch'"),
    (["--task-param", "mqar.num_kv_pairs"], "expected TASK.KEY=VALUE"),
    (["--task-param", "num_kv_pairs=4"], "expected TASK.KEY=VALUE"),
    (["--task-param", "mqar.num_kv_pairs=four"], "the value must be a number"),
    (["--task", "noisy_recall", "--task-param", "noisy_recall.noise_prob=null"],
     "noise_prob must be a number in [0, 1)"),
    (["--proxy-scale", "2"], "--proxy-scale must be in (0, 1], got 2.0"),
    (["--batch-size", "3", "--nproc", "2"], "--batch-size 3 must be divisible by --nproc 2"),
    (["--nproc", "3"], "--batch-size 32 must be divisible by --nproc 3"),     # the default global batch
    (["--proxy-scale", "0.01", "--proxy-hidden", "64"], "give it, or --proxy-hidden/--proxy-layers, not both"),
])
def test_proxy_cli_bad_input_exits_2_with_a_clear_message(run_cli, args, fragment):
    r = run_cli("proxy", "nemotron-h-8b", "--steps", "1", "--device", "cpu", "--report", "", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert fragment in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


def test_proxy_cli_unknown_preset_exits_2(run_cli):
    r = run_cli("proxy", "nemotron-h-8b", "no-such-preset", "--steps", "1", "--report", "")
    assert r.returncode == 2
    assert "no-such-preset: no such file or preset" in r.stderr and "Traceback" not in r.stderr


# --------------------------------------------------------------------------------------------------
# The proxy job in an export directory


@pytest.mark.slow
def test_export_writes_a_proxy_job_that_runs_with_torch_alone(tmp_path, capsys):
    from designer.cli import main
    out = tmp_path / "exp"
    assert main(["export", "nemotron-h-8b", "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = {Path(f).name for f in doc["files"]}
    assert {"train_proxy.py", "proxy_tasks.py", "proxy.yaml", "proxy_layout.json", "model.py"} <= names
    for f in ("train_proxy.py", "proxy_tasks.py"):
        assert (out / f).read_text() == (TEMPLATES / f).read_text()
    proxy = json.loads((out / "proxy_layout.json").read_text())
    assert proxy["pattern"] == "M-M-M-M*-M-M-" and proxy["hidden_size"] == 256 and proxy["vocab_size"] == 256
    config = json.loads((out / "proxy.yaml").read_text())
    assert config["layout"] == "proxy_layout.json" and config["model"] == "model.py"
    assert config["tasks"] == {"mqar": {"num_kv_pairs": 8, "min_kv_pairs": 0, "power_a": 0.01,
                                         "tokens_per_pair": 0}}
    # run it from its directory with designer unimportable: the job needs torch and its own files only
    code = ("import runpy, sys; sys.modules['designer'] = None; "
            "sys.argv = ['train_proxy.py', '--steps', '2', '--device', 'cpu', '--quiet']; "
            "runpy.run_path('train_proxy.py', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and len(metrics["loss"]) == 2 and metrics["world_size"] == 1
    assert metrics["name"] == "nemotron-h-8b-proxy" and metrics["device"] == "cpu"
    assert all(math.isfinite(v) for v in metrics["loss"])
    assert metrics["params"] > 1_000_000 and 0 <= metrics["accuracy"]["mqar"] <= 1


@pytest.mark.parametrize("workers", [2, 3])
def test_prefetched_batches_do_not_depend_on_the_number_of_threads(workers):
    cfg = trainer.config_from_dict({"name": "t", "tasks": {"mqar": {"num_kv_pairs": 8}}, "vocab_size": 64,
                                    "seq_len": 32, "steps": 10, "batch_size": 4, "seed": 5})

    def make(step):
        return trainer.global_batch(cfg, cfg.batch_size, trainer.step_generator(cfg.seed, step))

    def draw(n_workers):
        p = trainer.Prefetcher(make, workers=n_workers)
        try:
            return [p.next() for _ in range(7)]
        finally:
            p.close()
    one, many = draw(1), draw(workers)
    for (x1, y1), (x2, y2) in zip(one, many):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(one[0][0], one[1][0])                 # steps draw different batches
    assert torch.equal(make(3)[0], one[3][0])                    # step s's batch is a function of (seed, s)


def test_mqar_drawn_by_a_cpu_generator_keeps_every_tensor_where_the_generator_is():
    # the same seed gives the same batch, every tensor sits on gen.device (bench/mqar_batch_speed.py draws on
    # the GPU too), and the answers are the values that follow their queries
    tasks = trainer.tasks
    gen = trainer.step_generator(3, 7)
    x, y = tasks.make_batch("mqar", 8, vocab_size=512, seq_len=128, gen=gen, num_kv_pairs=16, min_kv_pairs=4,
                            tokens_per_pair=8)
    x2, y2 = tasks.make_batch("mqar", 8, vocab_size=512, seq_len=128, gen=trainer.step_generator(3, 7),
                              num_kv_pairs=16, min_kv_pairs=4, tokens_per_pair=8)
    assert torch.equal(x, x2) and torch.equal(y, y2) and x.device == gen.device == y.device
    answered = y != tasks.IGNORE
    assert bool(((y[answered] >= 256) & (y[answered] < 512)).all())          # answers are values
    assert bool((x[:, 1:][answered[:, :-1]] == y[:, :-1][answered[:, :-1]]).all())   # value follows its query


def test_distinct_draws_a_uniform_random_subset_in_a_uniform_random_order():
    gen = torch.Generator().manual_seed(0)
    d = trainer.tasks._distinct(20_000, 3, 10, 16, gen)                 # 3 of the 6 integers 10..15
    assert d.min() >= 10 and d.max() <= 15
    assert bool((d[:, 0] != d[:, 1]).all() and (d[:, 0] != d[:, 2]).all() and (d[:, 1] != d[:, 2]).all())
    for col in range(3):                                                 # every place: each integer 1/6 of the time
        share = torch.bincount(d[:, col] - 10, minlength=6).double() / d.size(0)
        assert torch.allclose(share, torch.full((6,), 1 / 6, dtype=torch.float64), atol=0.01), share
    # the order is random too: the first of the three is the smallest a third of the time, not always
    first_smallest = (d[:, 0] == d.min(dim=1).values).double().mean().item()
    assert abs(first_smallest - 1 / 3) < 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mqar_drawn_by_a_cuda_generator_stays_on_the_gpu():
    gen = torch.Generator(device="cuda").manual_seed(0)
    x, y = trainer.tasks.make_batch("mqar", 8, vocab_size=512, seq_len=128, gen=gen, num_kv_pairs=16,
                                    min_kv_pairs=4, tokens_per_pair=8)
    assert x.is_cuda and y.is_cuda
    answered = y != trainer.tasks.IGNORE
    assert bool((x[:, 1:][answered[:, :-1]] == y[:, :-1][answered[:, :-1]]).all())


def test_data_wait_share_says_when_drawing_batches_bounds_the_step(tmp_path, one_thread, monkeypatch):
    import time
    write_job(tmp_path)
    cfg = trainer.load_config(tmp_path / "proxy.yaml", steps=20, eval_every=0, batch_size=2)
    quick = trainer.train(cfg, root=tmp_path, quiet=True)
    real = trainer.global_batch

    def slow_batch(*args, **kwargs):   # 0.25 s a batch: far longer than a step of 2 sequences of this small model
        time.sleep(0.25)
        return real(*args, **kwargs)
    monkeypatch.setattr(trainer, "global_batch", slow_batch)
    slow = trainer.train(cfg, root=tmp_path, quiet=True)
    assert 0.6 < slow["data_wait_share"] <= 1.0
    assert 0 <= quick["data_wait_share"] < slow["data_wait_share"]
    assert slow["loss"] == quick["loss"]          # the same batches either way: only the time changed
