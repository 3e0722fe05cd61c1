"""FLOPs (one multiply-add = 2): blocks checked by hand, whole-model identities, and the chunked-SSD
formulation checked against fvcore on transformers' own torch implementation of a tiny nemotron_h."""
from __future__ import annotations

import pytest

from designer.layout import layout_from_dict, load_layout
from designer.profile.blocks import block_cost, causal_keys, ssd_chunked_flops
from designer.profile.flops import (decode_flops_per_token, forward_flops, prefill_flops, train_flops_per_token)

NH8 = load_layout("nemotron-h-8b")


def test_attention_block_decode_flops_by_hand():
    a = block_cost(NH8, "*")
    # q: 4096x4096, k and v: 4096x(8x128), o: 4096x4096 -> 41,943,040 weights, 2 FLOPs each
    assert 2 * a.active_matmul_params == 2 * (4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096) == 83_886_080
    # QK and PV over c keys: 2 x (32 heads x 128) MACs per key each
    assert a.decode_core_flops_per_key == 4 * 32 * 128 == 16_384
    assert a.decode_core_flops == 0


def test_mlp_block_flops_by_hand():
    f = block_cost(NH8, "-")
    assert 2 * f.active_matmul_params == 2 * 2 * 4096 * 21504 == 352_321_536    # up + down, squared ReLU
    gated = block_cost(load_layout("llama-3.1-8b"), "-")
    assert 2 * gated.active_matmul_params == 2 * 3 * 4096 * 14336                # gate + up + down


def test_mamba2_block_decode_flops_by_hand():
    m = block_cost(NH8, "M")
    # in_proj 4096 -> z 8192 + x 8192 + B,C 2x8x128 + dt 128 = 18,560; out_proj 8192 -> 4096
    assert 2 * m.active_matmul_params == 2 * (4096 * 18560 + 8192 * 4096) == 219_152_384
    # conv step over 10,240 channels x kernel 4, state update + readout over 128 heads x 64 x 128
    assert m.decode_core_flops == 2 * 10240 * 4 + 4 * 128 * 64 * 128 == 4_276_224


def test_mamba2_block_prefill_ssd_flops_by_hand():
    m = block_cost(NH8, "M")
    # T = 256 tokens = 2 chunks of 128, per head: 2*T*(L*(N+P) + 2*N*P) + 2*(nc+1)^2*P*N
    per_head = 2 * 256 * (128 * (128 + 64) + 2 * 128 * 64) + 2 * 3 ** 2 * 64 * 128
    assert per_head == 21_118_976
    assert ssd_chunked_flops(256, 128, 64, 128, 128) == 128 * per_head
    assert m.prefill_core(256, 0) == 128 * per_head + 2 * 10240 * 4 * 256
    # a partial chunk is padded: 200 tokens cost what 256 do
    assert ssd_chunked_flops(200, 128, 64, 128, 128) == ssd_chunked_flops(256, 128, 64, 128, 128)


def test_attention_prefill_counts_the_causal_triangle():
    a = block_cost(NH8, "*")
    assert causal_keys(4, 0) == 1 + 2 + 3 + 4
    assert causal_keys(2, 10) == 11 + 12
    assert a.prefill_core(1000, 0) == 4 * 4096 * 1000 * 1001 / 2


def test_whole_model_decode_flops_is_the_sum_of_blocks_and_lm_head():
    c = 65536
    expected = 24 * (219_152_384 + 4_276_224) + 4 * (83_886_080 + 16_384 * c) + 24 * 352_321_536 \
        + 2 * 131072 * 4096
    assert decode_flops_per_token(NH8, c) == expected


def test_prefill_flops_logits_last_vs_all():
    p = 4096
    last, every = prefill_flops(NH8, p), prefill_flops(NH8, p, logits="all")
    assert every - last == (p - 1) * 2 * 131072 * 4096


def test_training_flops_three_and_four_times_forward():
    s = 8192
    fwd = forward_flops(NH8, s, logits_tokens=s)
    assert train_flops_per_token(NH8, seq_len=s) == pytest.approx(3 * fwd.total / s, rel=1e-12)
    assert train_flops_per_token(NH8, seq_len=s, recompute="full") == pytest.approx(4 * fwd.total / s, rel=1e-12)
    sel = train_flops_per_token(NH8, seq_len=s, recompute="selective")
    assert sel == pytest.approx((3 * fwd.total + fwd.attention + fwd.scan) / s, rel=1e-12)


def test_dense_training_flops_near_six_n_per_token():
    """Llama-3.1-8B at 8k: 6 x non-embedding params + LM head + attention; the classic 6N estimate."""
    lay = load_layout("llama-3.1-8b")
    per_token = train_flops_per_token(lay, seq_len=8192)
    n_blocks = 32 * (block_cost(lay, "*").active_matmul_params + block_cost(lay, "-").active_matmul_params)
    attention = 3 * 32 * 4 * 4096 * (8192 + 1) / 2
    assert per_token == pytest.approx(6 * n_blocks + 6 * 128256 * 4096 + attention, rel=1e-12)


def test_moe_flops_use_active_experts_only():
    lay = load_layout("nemotron-3-nano-30b-a3b")
    e = block_cost(lay, "E")
    h = lay.hidden_size
    assert 2 * e.active_matmul_params == 2 * (6 * 2 * h * 1856 + 128 * h + 2 * h * 3712)


def test_chunked_ssd_and_gemms_match_fvcore_on_transformers_torch_path():
    """fvcore counts MACs (one multiply-add = 1). transformers' torch path of nemotron_h runs exactly the
    counted SSD einsums; its conv1d is padded, so fvcore sees T + K - 1 conv outputs where we count T."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    fvcore_nn = pytest.importorskip("fvcore.nn")
    from designer.hf import hf_config_from_layout
    lay = layout_from_dict(dict(
        name="tiny", hidden_size=256, vocab_size=1000, pattern="M*-M-", family="nemotron_h",
        mamba=dict(version=2, num_heads=8, head_dim=32, n_groups=2, state_size=16, chunk_size=16),
        attention=dict(num_heads=4, num_kv_heads=2, head_dim=64, rope_theta=None), mlp=dict(intermediate_size=512)))
    d = dict(hf_config_from_layout(lay))
    cfg = transformers.AutoConfig.for_model(d.pop("model_type"), **d)
    cfg._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):
            return self.m(input_ids=ids, use_cache=False).logits

    T, K = 50, 4                                            # 50 tokens: 4 chunks of 16, the last padded
    fa = fvcore_nn.FlopCountAnalysis(Logits(model), (torch.randint(0, 1000, (1, T)),))
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    by_op = fa.by_operator()
    ours = forward_flops(lay, T, logits_tokens=T)
    conv_dim = 8 * 32 + 2 * 2 * 16
    conv_ours = 2 * 2 * conv_dim * K * T                    # two Mamba blocks
    assert by_op["linear"] == ours.gemm / 2
    assert by_op["conv"] == conv_ours / 2 * (T + K - 1) / T
    assert by_op["einsum"] == pytest.approx((ours.scan - conv_ours) / 2, rel=1e-5)
    # eager attention multiplies the full T x T square (masked), we count the causal triangle
    assert by_op["matmul"] == ours.attention / 2 * T * T / causal_keys(T, 0)
