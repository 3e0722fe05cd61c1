"""The torch SSD scan's workspace: the analytic term (designer.profile.blocks.torch_scan_fp32_elems_per_token,
used by `profile --kernels torch`) against a live-tensor trace of the exported block on the CPU."""
from __future__ import annotations

import pytest
import torch

from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import load_layout
from designer.measure.memtrace import LiveBytes
from designer.profile.blocks import block_costs, torch_scan_fp32_elems_per_token
from designer.profile.memory import block_activation_bytes_per_token

pytestmark = pytest.mark.skipif(not torch.backends.opt_einsum.is_available(),
                                reason="opt_einsum sets torch.einsum's contraction order (it is a dependency)")


def test_tracer_counts_views_once_and_frees_on_the_last_reference():
    with torch.no_grad(), LiveBytes() as t:
        a = torch.ones(1000, 1000)            # 4 MB
        b = a * 2
        del a
        c = b + 1                             # peak: b and c
        v = c.view(-1)
        del c                                 # v keeps c's storage alive
        assert t.current_bytes == 8_000_000
    assert t.peak_bytes == 8_000_000 and v.numel() == 10**6


def test_nemotron_torch_scan_term_by_hand():
    c = block_costs(load_layout("nemotron-h-8b"))["M"]
    # H 128, P 64, N 128, Q 128: the C·Bᵀ phase 3·16384 + 2·16384 + 3·8192 + 3·128 = 106,880 > 99,328
    assert torch_scan_fp32_elems_per_token(128, 64, 128, 128) == 106_880
    assert c.torch_act_elems_per_token == 4096 + 18_560 + 10_240       # normed x, in_proj out, conv out
    assert block_activation_bytes_per_token(c, "bf16", "torch") == 32_896 * 2 + 106_880 * 4
    assert block_activation_bytes_per_token(c, "bf16", "triton") == block_activation_bytes_per_token(c, "bf16")


def traced_mamba_block(name: str, monkeypatch, batch: int, tokens: int) -> LiveBytes:
    """The live-tensor trace of one exported Mamba block of `name` (torch kernels, bf16) over batch x tokens."""
    model = load_template("model.py")
    monkeypatch.setattr(model, "KERNELS", "torch")
    args = model_args(load_layout(name))
    torch.manual_seed(0)
    block = model.Block(args, "M").to(torch.bfloat16).eval()
    x = torch.randn(batch, tokens, args.hidden_size, dtype=torch.bfloat16)
    cache = block.new_cache(batch, max(tokens, 16), dtype=torch.bfloat16)
    with torch.no_grad(), LiveBytes() as t:
        block(x, cache)
    return t


@pytest.mark.parametrize("name", ["nemotron-h-8b", "mamba2-2.7b"])
def test_torch_block_workspace_matches_a_trace_of_the_exported_block(name, monkeypatch):
    tokens = 512
    t = traced_mamba_block(name, monkeypatch, 1, tokens)
    predicted = block_activation_bytes_per_token(block_costs(load_layout(name))["M"], "bf16", "torch")
    assert predicted == pytest.approx(t.peak_bytes / tokens, rel=0.02), t.peak_op


@pytest.mark.parametrize("name", ["nemotron-h-8b", "mamba2-2.7b"])
def test_torch_decode_step_workspace_matches_a_trace(name, monkeypatch):
    batch = 64                                 # large enough that the CPU's bf16 matmul weight copy is not the peak
    t = traced_mamba_block(name, monkeypatch, batch, 1)
    cost = block_costs(load_layout(name))["M"]
    predicted = block_activation_bytes_per_token(cost, "bf16", "torch", step=True)
    assert predicted == pytest.approx(t.peak_bytes / batch, rel=0.02), t.peak_op
    # three fp32 copies of the state per sequence (decay x state, the update, their sum) dominate
    assert cost.torch_step_fp32_elems_per_sequence * 4 > 0.95 * predicted
