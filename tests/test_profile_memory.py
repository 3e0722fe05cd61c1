"""Memory: weights by precision, KV cache and SSM/conv state sizes derived by hand, activation peaks,
training memory."""
from __future__ import annotations

import pytest

from designer.layout import load_layout
from designer.profile.blocks import block_cost
from designer.profile.memory import (activation_bytes_per_token, conv_state_bytes_per_sequence,
                                     kv_cache_bytes_per_token, prefill_activation_peak_bytes,
                                     ssm_state_bytes_per_sequence, training_activation_bytes_per_token,
                                     training_memory, weights_bytes)
from designer.profile.params import count_params

KiB, MiB = 2 ** 10, 2 ** 20
NH8 = load_layout("nemotron-h-8b")


def test_nemotron_h_8b_kv_cache_is_16_kib_per_token_in_bf16():
    # 4 attention layers x (K and V) x 8 KV heads x 128 x 2 bytes
    assert kv_cache_bytes_per_token(NH8) == 4 * 2 * 8 * 128 * 2 == 16 * KiB


def test_nemotron_h_8b_ssm_state_is_96_mib_per_sequence_in_fp32():
    # 24 Mamba layers x 128 heads x 64 head_dim x 128 state x 4 bytes
    assert ssm_state_bytes_per_sequence(NH8) == 24 * 128 * 64 * 128 * 4 == 96 * MiB
    # conv window: 24 x (8192 + 2x8x128 channels) x (kernel 4 - 1) x 2 bytes
    assert conv_state_bytes_per_sequence(NH8) == 24 * 10240 * 3 * 2


@pytest.mark.parametrize("name,kv_per_token,ssm_per_seq", [
    ("llama-3.1-8b", 32 * 2 * 8 * 128 * 2, 0),                 # 128 KiB/token
    ("qwen2.5-7b", 28 * 2 * 4 * 128 * 2, 0),                    # 56 KiB/token
    ("nemotron-h-56b", 10 * 2 * 8 * 128 * 2, 54 * 256 * 64 * 256 * 4),   # 40 KiB, 864 MiB
    ("nemotron-h-47b", 5 * 2 * 8 * 128 * 2, 45 * 256 * 64 * 256 * 4),    # 20 KiB, 720 MiB
    ("falcon-mamba-7b", 0, 64 * 8192 * 16 * 4),                 # Mamba-1: d_inner x state per layer, 32 MiB
    ("nemotron-3-nano-30b-a3b", 6 * 2 * 2 * 128 * 2, 23 * 64 * 64 * 128 * 4),
])
def test_cache_sizes_by_hand(name, kv_per_token, ssm_per_seq):
    lay = load_layout(name)
    assert kv_cache_bytes_per_token(lay) == kv_per_token
    assert ssm_state_bytes_per_sequence(lay) == ssm_per_seq


def test_kv_dtype_scales_the_cache():
    assert kv_cache_bytes_per_token(NH8, "fp8") == 8 * KiB
    assert ssm_state_bytes_per_sequence(NH8, "bf16") == 48 * MiB


def test_weights_by_precision_with_scale_overhead():
    p = count_params(NH8)
    matmul = sum(NH8.count(s) * block_cost(NH8, s).matmul_params for s in "M*-")
    other = p.total - matmul
    assert weights_bytes(NH8, "bf16") == 2 * p.total
    assert weights_bytes(NH8, "fp32") == 4 * p.total
    assert weights_bytes(NH8, "fp8") == matmul * (1 + 4 / 128) + 2 * other      # fp32 scale per 128
    assert weights_bytes(NH8, "fp4") == matmul * (0.5 + 1 / 16) + 2 * other     # E4M3 scale per 16 (NVFP4)


def test_tensor_parallel_splits_weights_and_heads():
    one, eight = weights_bytes(NH8, tp=1), weights_bytes(NH8, tp=8)
    assert one / 8 < eight < one / 8 * 1.01          # only the norms are replicated
    assert kv_cache_bytes_per_token(NH8, tp=8) == 2 * KiB     # 1 KV head per rank
    assert kv_cache_bytes_per_token(NH8, tp=16) == 2 * KiB    # 8 KV heads cannot split 16 ways: replicated
    assert ssm_state_bytes_per_sequence(NH8, tp=4) == 24 * MiB


def test_prefill_activation_parallel_grows_chunked_is_flat():
    fm = load_layout("falcon-mamba-7b")
    par = [prefill_activation_peak_bytes(fm, p, mode="parallel") for p in (1000, 2000, 4000)]
    assert par[2] - par[1] == pytest.approx(2 * (par[1] - par[0]))
    per_token = activation_bytes_per_token(fm)
    assert par[1] - par[0] == pytest.approx(1000 * per_token)
    chunk = [prefill_activation_peak_bytes(fm, p, mode="chunked", chunk=512) for p in (1000, 100_000, 10_000_000)]
    assert chunk[0] == chunk[1] == chunk[2]
    seq = prefill_activation_peak_bytes(fm, 10_000_000, mode="sequential")
    assert seq < chunk[0]


def test_falcon_mamba_activation_per_token_by_hand():
    # residual 4096 + block: normed 4096, in_proj 2x8192, conv 8192, x_proj 256 + 2x16, dt 8192, y 8192, out 4096
    elems = 4096 + 4096 + 16384 + 8192 + 288 + 8192 + 8192 + 4096
    assert activation_bytes_per_token(load_layout("falcon-mamba-7b")) == elems * 2


def test_training_memory_mixed_precision_adam():
    t = training_memory(NH8, seq_len=8192, recompute="full")
    n = count_params(NH8).total
    assert t.weights_bytes == 2 * n and t.grads_bytes == 4 * n and t.optimizer_bytes == 12 * n
    none = training_activation_bytes_per_token(NH8, "none")
    sel = training_activation_bytes_per_token(NH8, "selective")
    full = training_activation_bytes_per_token(NH8, "full")
    assert full < sel < none
    sharded = training_memory(NH8, tp=2, pp=2, dp=4, distributed_optimizer=True)
    assert sharded.optimizer_bytes < t.optimizer_bytes / 8


def test_expert_parallel_spreads_whole_experts():
    lay = load_layout("nemotron-3-nano-30b-a3b")
    one = training_memory(lay)
    ep8 = training_memory(lay, ep=8)
    expert = 2 * 2688 * 1856
    assert one.weights_bytes - ep8.weights_bytes == 2 * lay.count("E") * (128 - 16) * expert


def test_training_memory_per_gpu_for_the_exporter():
    from designer.profile.analytic import training_memory_per_gpu
    t = training_memory_per_gpu(NH8, tp=2, pp=2, dp=4)
    n = count_params(NH8).total
    assert t.optimizer_bytes == pytest.approx(12 * n / 4 / 4, rel=0.01)     # /(tp x pp) then /dp
    assert t.total_bytes == t.weights_bytes + t.grads_bytes + t.optimizer_bytes + t.activations_bytes
    with pytest.raises(ValueError, match="ep must be"):
        training_memory_per_gpu(NH8, ep=0)
