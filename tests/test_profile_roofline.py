"""Roofline: closed forms against step-by-step sums, capacity answers against the memory model,
parallelism, and the shapes the articles describe (flat for SSMs, growing for Transformers)."""
from __future__ import annotations

import dataclasses

import pytest

from designer.layout import load_layout
from designer.profile.analytic import prepare
from designer.profile.blocks import expected_experts_hit
from designer.profile.flops import prefill_flops
from designer.profile.hardware import load_hardware

NH8 = load_layout("nemotron-h-8b")


def test_generation_time_closed_form_equals_step_by_step_sum():
    r = prepare(NH8, "h100-sxm")
    batch, prompt, gen = 3, 1000, 200
    t = r.request(batch, prompt, gen)
    steps = sum(r.tpot_s(batch, prompt + i) for i in range(1, gen))
    assert t.e2e_s == pytest.approx(t.ttft_s + steps, rel=1e-12)
    assert t.tpot_s == pytest.approx(steps / (gen - 1), rel=1e-12)
    assert t.output_tokens_per_s == pytest.approx(batch * gen / t.e2e_s)


def test_decode_context_slope_is_the_kv_read_by_hand():
    r = prepare(NH8, "h100-sxm")
    a, k = r.decode_coefficients(1)
    # 4 attention layers read 2 x 8 x 128 x 2 bytes per cached token at the measured decode-attention
    # fraction (0.905) of 3.35 TB/s
    assert k == pytest.approx(4 * (2 * 8 * 128 * 2) / (0.905 * 3.35e12), rel=1e-12)
    # batch 1 is memory-bound: at least the weights streamed once by the decode GEMMs (0.646 x 3.35 TB/s)
    assert a > r.stages[0].weights_bytes / (0.646 * 3.35e12)


def test_long_prefill_is_compute_bound():
    r = prepare(NH8, "h100-sxm")
    flops = prefill_flops(NH8, 65536)
    ideal = flops / (989.4e12 * 0.770)
    assert ideal < r.prefill_s(1, 65536) < 1.3 * ideal


def test_pure_ssm_decode_time_and_memory_flat_transformer_grows():
    ssm = prepare("falcon-mamba-7b", "h100-sxm")
    dense = prepare("llama-3.1-8b", "h100-sxm")
    for r, flat in ((ssm, True), (dense, False)):
        tpot = [r.tpot_s(1, c) for c in (1, 1000, 130_000)]
        mem = [r.memory(1, c, prompt=1).total_bytes for c in (1, 1000, 130_000)]
        if flat:
            assert tpot[0] == tpot[1] == tpot[2] and mem[0] == mem[1] == mem[2]
        else:
            assert tpot[0] < tpot[1] < tpot[2] and mem[0] < mem[1] < mem[2]


@pytest.mark.parametrize("mode", ["parallel", "chunked", "sequential"])
@pytest.mark.parametrize("name", ["nemotron-h-8b", "llama-3.1-8b", "nemotron-3-nano-30b-a3b"])
def test_max_batch_is_the_largest_that_fits(name, mode):
    r = prepare(name, "h100-sxm", prefill_mode=mode, prefill_chunk=4096)
    prompt, gen = 16384, 1024
    b = r.max_batch(prompt, gen)
    assert b >= 1
    assert r.memory(b, prompt + gen, prompt=prompt).fits
    assert not r.memory(b + 1, prompt + gen, prompt=prompt).fits


@pytest.mark.parametrize("mode", ["parallel", "chunked"])
def test_max_context_is_the_longest_that_fits(mode):
    r = prepare(NH8, "h100-sxm", prefill_mode=mode)
    c = r.max_context(1)
    assert r.memory(1, c).fits and not r.memory(1, c + 1).fits


def test_max_context_unbounded_only_without_growing_memory():
    assert prepare("falcon-mamba-7b", "a10", prefill_mode="sequential").max_context(1) is None
    assert prepare("falcon-mamba-7b", "a10", prefill_mode="parallel").max_context(1) > 0
    assert prepare("falcon-mamba-7b", "a10", precision="fp32").max_context(1) == 0    # weights alone overflow


def test_tensor_parallel_adds_all_reduce_time():
    one = prepare("llama-3.1-70b", "h100-sxm", tp=4)
    a4, _ = one.decode_coefficients(8)
    # one all-reduce per block: 160 blocks x (latency + 2 (tp-1)/tp x 8 tokens x 8192 x 2 B / 450 GB/s)
    per_block = 1e-5 + 2 * 3 / 4 * 8 * 8192 * 2 / 4.5e11
    free_link = dataclasses.replace(load_hardware("h100-sxm"), interconnect_latency_s=0.0,
                                    interconnect_bandwidth_bytes_per_s=float("inf"))
    a4_free, _ = prepare("llama-3.1-70b", free_link, tp=4).decode_coefficients(8)
    assert a4 - a4_free == pytest.approx(160 * per_block, rel=1e-9)


def test_tensor_parallel_splits_weights_and_speeds_decode():
    r1, r2 = prepare(NH8, "h100-sxm", tp=1), prepare(NH8, "h100-sxm", tp=2)
    assert r2.stages[0].weights_bytes < 0.51 * r1.stages[0].weights_bytes
    assert r1.tpot_s(1, 4096) / 2 < r2.tpot_s(1, 4096) < r1.tpot_s(1, 4096)


def test_pipeline_stages_split_the_layers():
    r = prepare(NH8, "h100-sxm", pp=2)
    assert [sum(s.counts.values()) for s in r.stages] == [26, 26]
    assert r.stages[0].embedding and not r.stages[0].head and r.stages[1].head
    r1 = prepare(NH8, "h100-sxm")
    assert max(s.weights_bytes for s in r.stages) < 0.55 * r1.stages[0].weights_bytes
    assert r.tpot_s(1, 1000) > r1.tpot_s(1, 1000)          # stages run one after another, plus the hand-off


def test_moe_decode_reads_only_the_experts_hit():
    assert expected_experts_hit(128, 6, 1) == pytest.approx(6)
    assert expected_experts_hit(128, 6, 10_000) == pytest.approx(128)
    r = prepare("nemotron-3-nano-30b-a3b", "h100-sxm")
    assert r.tpot_s(1, 1000) < r.tpot_s(64, 1000) < 64 * r.tpot_s(1, 1000)
    full = r.stages[0].weights_bytes / r.weights_rate
    assert r.tpot_s(1, 1) < 0.5 * full                      # 6 of 128 experts read at batch 1


def test_fp8_weights_use_the_fp8_peak_and_fewer_bytes():
    bf, f8 = prepare(NH8, "h100-sxm"), prepare(NH8, "h100-sxm", precision="fp8")
    assert f8.gemm_rate == pytest.approx(1978.9e12 * 0.681) and bf.gemm_rate == pytest.approx(989.4e12 * 0.770)
    assert f8.prefill_s(1, 32768) < bf.prefill_s(1, 32768)
    assert f8.tpot_s(1, 1) < bf.tpot_s(1, 1)
    a100 = prepare(NH8, "a100-80gb", precision="fp8")       # no fp8 tensor cores: bf16 rate, fp8 bytes
    assert a100.gemm_rate == pytest.approx(312e12 * 0.770)         # the bf16 GEMM fraction, not the fp8 one
