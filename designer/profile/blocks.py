"""Per-block formulas: one registry keyed by layer symbol (M * - E), the single source of every
per-layer number the profiler uses (parameters, FLOPs, caches, activations).

`block_cost(layout, symbol, tp)` returns a `BlockCost`: the numbers of ONE block of that kind, as held by
one of `tp` tensor-parallel ranks (tp=1: the whole block; parameter counts are then exact and match
Hugging Face transformers to the unit). Every block of a kind is the same size in a Layout, so a
layout's totals are `count(symbol) * block_cost(...)`. A new layer kind is one builder in `BLOCKS`.

Conventions (docs/profiler.md has the derivations):
- a block is a pre-norm residual block: its RMSNorm weight (hidden) is counted in the block;
- FLOPs: one multiply-add = 2 FLOPs; GEMM FLOPs = 2 x weights x tokens (biases, norms and elementwise
  ops are not counted); `prefill_core` / `decode_core_*` are the sequence-mixing FLOPs beyond GEMMs;
- Mamba-2 prefill counts the chunked SSD of the Mamba-2 paper (ssd_minimal / transformers'
  torch path: four einsums per chunk plus the inter-chunk recurrence, B and C broadcast to every head,
  the sequence padded to a multiple of `chunk_size`); decode counts the recurrent step;
- attention counts the causal triangle exactly (query i attends to c + i keys), no T x T matrix
  materialised (flash attention);
- activations are element counts per token in the activation dtype, plus fp32 element counts.
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Callable

from designer.layout import ATTENTION, MAMBA, MLP, MOE, SYMBOLS, Layout, LayoutError


def _split(n: int, tp: int) -> int:
    """One tensor-parallel rank's share of n heads/channels (a head that cannot be split is replicated)."""
    return -(-n // tp)


def vocab_per_rank(layout: Layout, tp: int = 1) -> int:
    """Rows of the embedding table / LM head on one tensor-parallel rank (Megatron splits the vocabulary
    over the ranks, the last one padded): the one place the vocabulary split is written."""
    return _split(layout.vocab_size, tp)


@dataclass(frozen=True)
class BlockCost:
    """One block of one kind, as held by one tensor-parallel rank."""

    symbol: str
    kind: str
    params: int                  # every parameter of the block, its pre-norm included
    matmul_params: int           # GEMM weights among them (what fp8/fp4 quantise), every expert included
    active_params: int           # parameters one token uses (MoE: top-k routed experts + shared + router)
    active_matmul_params: int    # GEMM weights one token passes through (2 FLOPs each per token)
    expert_matmul_params: int    # MoE: one routed expert's GEMM weights (decode reads only the experts hit)
    num_experts: int             # MoE: routed experts (0 otherwise)
    top_k: int                   # MoE: experts per token
    kv_elems_per_token: int      # K and V elements cached per token
    ssm_state_elems: int         # recurrent SSM state per sequence (kept in fp32 by default)
    conv_state_elems: int        # conv window per sequence (activation dtype)
    decode_core_flops: float     # sequence-mixing FLOPs of one decoded token, context-independent part
    decode_core_flops_per_key: float   # ... and per attended key (attention: QK and AV)
    prefill_core: Callable[[int, int], float]   # (new tokens T, cached tokens c) -> sequence-mixing FLOPs
    act_elems_per_token: int     # intermediate tensors the block's forward writes (activation dtype)
    act_fp32_elems_per_token: float    # fp32 intermediates (SSD chunk states, softmax stats, router logits)
    elementwise_elems_per_token: int   # of act_elems, outputs of norms/activations/convs (cheap to recompute)
    core_kind: str               # which efficiency the core FLOPs run at: attention | scan | none
    kernels: int                 # kernel launches per block per forward pass (estimate; overhead term)
    # the torch backend's SSD scan (model.py ssd_chunked_scan: segment sums and einsums, materialised per chunk)
    # replaces the fused kernels' transient: activation-dtype tensors alive while it runs, and its fp32 peak
    torch_act_elems_per_token: int = 0
    torch_scan_fp32_elems_per_token: float = 0.0
    # ... and its one-token step (ssd_step: decay x state, the input's outer product, their sum; B and C per head)
    torch_step_fp32_elems_per_sequence: float = 0.0
    # the triton backend's SSD scan (model.py ssd_chunked_scan_triton on fla-core's chunk_simple_gla): the
    # activation-dtype and fp32 tensors alive at its peak (0: the fused-kernel estimate above holds)
    triton_act_elems_per_token: float = 0.0
    triton_scan_fp32_elems_per_token: float = 0.0


# --------------------------------------------------------------------------------------------------
# Mamba


def ssd_chunked_flops(tokens: int, heads: int, head_dim: int, state: int, chunk: int) -> float:
    """FLOPs of the Mamba-2 chunked SSD over `tokens` (padded to whole chunks), per sequence.

    Per chunk and head (L = chunk, N = state, P = head_dim): C·Bᵀ (L·L·N MACs), (masked)·X (L·L·P),
    chunk states Bᵀ·X (L·N·P), state -> output C·h (L·N·P); then the inter-chunk recurrence over
    nc + 1 chunk states ((nc+1)² · P · N MACs per head).
    """
    if tokens <= 0:
        return 0.0
    chunks = -(-tokens // chunk)
    padded = chunks * chunk
    per_head = 2 * padded * (chunk * (state + head_dim) + 2 * state * head_dim) \
        + 2 * (chunks + 1) ** 2 * head_dim * state
    return float(heads * per_head)


FLA_CHUNK = 64     # fla-core's chunk length in chunk_simple_gla (the model's chunk_size does not reach it)


def triton_scan_elems_per_token(held: int, heads: int, head_dim: int, state: int,
                                groups: int) -> tuple[float, float]:
    """(activation-dtype, fp32) values per token alive at the peak of model.py's triton SSD scan in a prefill:
    what the block holds meanwhile (`held`: normed input, in_proj's output, the conv's output); inside
    ssd_chunked_scan_triton B and C copied out per group for fla's output kernel (2 G·N: ssd_grouped_scan_triton,
    whose state kernel reads B in place; without groups, H = G, B and C per head), v = dt·x (H·P), the per-chunk
    states kept in the input dtype (H·P·N / FLA_CHUNK, at fla's chunk: ssd_chunk_states_triton, as fla's
    chunk_fwd_h with states_in_fp32 False) and the output y (H·P); fp32 dt, g = dt·A and its chunk-local
    cumsum (3 H).
    Against the H200's whole-model peaks (bench/results/measured/*_triton.json)."""
    H, P, N, G = heads, head_dim, state, groups
    acts = held + 2 * G * N + H * P + H * P * N / FLA_CHUNK + H * P
    return float(acts), float(3 * H)


def torch_scan_fp32_elems_per_token(heads: int, head_dim: int, state: int, chunk: int) -> float:
    """Peak fp32 values per token alive inside model.py's torch SSD scan (opt_einsum's contraction order, as on
    the GPU image), the larger of its two phases: the diagonal blocks' C·Bᵀ bmm (decay matrix, C·Bᵀ and the
    masked product: 3 H·Q; B and C repeated to every head: 2 H·N; x, x·dt and y: 3 H·P; dt, dA and its cumsum:
    3 H) and the state einsums (B, C and their contiguous copies: 4 H·N; the decay matrix H·Q; chunk states
    H·P·N/Q; y H·P). Traced on the CPU with designer.measure.memtrace (tests/test_memtrace.py). Per token of
    the padded length: the scan pads each sequence to a multiple of the chunk, so a prompt much shorter than
    one chunk holds up to chunk / prompt times more per real token (not modelled)."""
    H, P, N, Q = heads, head_dim, state, chunk
    return float(max(3 * H * Q + 2 * H * N + 3 * H * P + 3 * H, 4 * H * N + H * Q + H * P * N / Q + H * P))


def _mamba(layout: Layout, tp: int) -> BlockCost:
    m, h = layout.mamba, layout.hidden_size
    K, N = m.conv_kernel, m.state_size
    if m.version == 2:
        H, P = _split(m.num_heads, tp), m.head_dim
        G = _split(m.n_groups, tp)
        inner = H * P
        conv_dim = inner + 2 * G * N
        in_out = 2 * inner + 2 * G * N + H                   # z, x, B, C, dt
        matmul = h * in_out + inner * h                      # in_proj, out_proj
        other = (in_out + h if m.proj_bias else 0) + conv_dim * K + (conv_dim if m.conv_bias else 0) \
            + 3 * H + inner + h                               # biases, conv, dt_bias/A_log/D, gated norm, pre-norm
        chunk = m.chunk_size

        def prefill_core(tokens: int, cached: int, _H=H, _P=P, _N=N, _L=chunk, _c=conv_dim) -> float:
            return 2.0 * _c * K * tokens + ssd_chunked_flops(tokens, _H, _P, _N, _L)

        decode = 2.0 * conv_dim * K + 4.0 * H * P * N        # conv step; state update + readout
        acts = h + in_out + conv_dim + inner + inner + h      # normed x, in_proj, conv, y, gated norm, out_proj
        fp32 = H * P * N / chunk + 2 * H                      # chunk states, dt and dA
        elementwise = h + conv_dim + inner
        ssm_state, conv_state = H * P * N, conv_dim * (K - 1)
        held = h + in_out + conv_dim           # normed x, in_proj out, conv out: alive while either scan runs
        torch_acts, torch_scan = held, torch_scan_fp32_elems_per_token(H, P, N, chunk)
        torch_step = 3 * H * P * N + 2 * H * N
        triton_acts, triton_fp32 = triton_scan_elems_per_token(held, H, P, N, G)
    else:
        inner = _split(m.expand * h, tp)
        R = m.dt_rank_value(h)
        matmul = h * 2 * inner + inner * (R + 2 * N) + R * inner + inner * h   # in, x, dt, out proj
        other = (2 * inner + h if m.proj_bias else 0) + inner * K + (inner if m.conv_bias else 0) \
            + inner + inner * N + inner + h                  # dt_proj bias, conv, A_log, D, pre-norm

        def prefill_core(tokens: int, cached: int, _I=inner, _N=N) -> float:
            return tokens * (2.0 * _I * K + 4.0 * _I * _N)

        decode = 2.0 * inner * K + 4.0 * inner * N            # selective scan: one update + one readout MAC
        acts = h + 2 * inner + inner + (R + 2 * N) + inner + inner + h   # normed, xz, conv, x_dbl, dt, y, out
        fp32 = 0.0
        elementwise = h + inner + (R + 2 * N if m.bcdt_norm else 0)
        ssm_state, conv_state = inner * N, inner * (K - 1)
        conv_dim = inner
        torch_acts, torch_scan, torch_step = 0, 0.0, 0.0      # Mamba-1: not traced yet (fused-path estimate)
        triton_acts, triton_fp32 = 0.0, 0.0
    return BlockCost(
        symbol=MAMBA, kind="mamba", params=matmul + other, matmul_params=matmul, active_params=matmul + other,
        active_matmul_params=matmul, expert_matmul_params=0, num_experts=0, top_k=0, kv_elems_per_token=0,
        ssm_state_elems=ssm_state, conv_state_elems=conv_state, decode_core_flops=decode,
        decode_core_flops_per_key=0.0, prefill_core=prefill_core, act_elems_per_token=acts,
        act_fp32_elems_per_token=fp32, elementwise_elems_per_token=elementwise, core_kind="scan", kernels=8,
        torch_act_elems_per_token=torch_acts, torch_scan_fp32_elems_per_token=torch_scan,
        torch_step_fp32_elems_per_sequence=torch_step, triton_act_elems_per_token=triton_acts,
        triton_scan_fp32_elems_per_token=triton_fp32)


# --------------------------------------------------------------------------------------------------
# Attention


def causal_keys(tokens: int, cached: int) -> float:
    """Query-key pairs when `tokens` new queries follow `cached` keys (query i sees cached + i keys)."""
    return tokens * cached + tokens * (tokens + 1) / 2


def _attention(layout: Layout, tp: int) -> BlockCost:
    a, h = layout.attention, layout.hidden_size
    hq, hkv, d = _split(a.num_heads, tp), _split(a.num_kv_heads, tp), a.head_dim
    q, kv = hq * d, hkv * d
    matmul = h * (q + 2 * kv) + q * h
    other = (q + 2 * kv if a.qkv_bias else 0) + (h if a.o_bias else 0) + h

    def prefill_core(tokens: int, cached: int, _q=q) -> float:
        return 4.0 * _q * causal_keys(tokens, cached)        # Q·Kᵀ and P·V, 2 FLOPs per MAC each

    return BlockCost(
        symbol=ATTENTION, kind="attention", params=matmul + other, matmul_params=matmul,
        active_params=matmul + other, active_matmul_params=matmul, expert_matmul_params=0, num_experts=0, top_k=0,
        kv_elems_per_token=2 * kv, ssm_state_elems=0, conv_state_elems=0, decode_core_flops=0.0,
        decode_core_flops_per_key=4.0 * q, prefill_core=prefill_core,
        act_elems_per_token=h + q + 2 * kv + q + h,           # normed x, q, k, v, attention out, o_proj out
        act_fp32_elems_per_token=hq,                          # log-sum-exp per head (flash attention)
        elementwise_elems_per_token=h, core_kind="attention", kernels=6)


# --------------------------------------------------------------------------------------------------
# MLP and MoE


def _ffn_weights(h: int, inter: int, gated: bool) -> int:
    return (3 if gated else 2) * h * inter


def _no_core(tokens: int, cached: int) -> float:
    return 0.0


def _mlp(layout: Layout, tp: int) -> BlockCost:
    f, h = layout.mlp, layout.hidden_size
    inter = _split(f.intermediate_size, tp)
    matmul = _ffn_weights(h, inter, f.gated)
    other = ((2 if f.gated else 1) * inter + h if f.bias else 0) + h
    up = (2 if f.gated else 1) * inter
    return BlockCost(
        symbol=MLP, kind="mlp", params=matmul + other, matmul_params=matmul, active_params=matmul + other,
        active_matmul_params=matmul, expert_matmul_params=0, num_experts=0, top_k=0, kv_elems_per_token=0,
        ssm_state_elems=0, conv_state_elems=0, decode_core_flops=0.0, decode_core_flops_per_key=0.0,
        prefill_core=_no_core, act_elems_per_token=h + up + inter + h, act_fp32_elems_per_token=0.0,
        elementwise_elems_per_token=h + inter, core_kind="none", kernels=4)


def _moe(layout: Layout, tp: int) -> BlockCost:
    e, h = layout.moe, layout.hidden_size
    inter, shared = _split(e.intermediate_size, tp), _split(e.shared_intermediate_size, tp)
    expert = _ffn_weights(h, inter, e.gated)
    router = e.num_experts * h                                # gate weight (kept in fp32 by transformers)
    shared_w = _ffn_weights(h, shared, e.gated) if shared else 0
    matmul = e.num_experts * expert + router + shared_w
    # e_score_correction_bias: a buffer in transformers, but a checkpoint tensor; counted as a parameter
    other = (e.num_experts if e.router_bias else 0) + h
    active_matmul = e.top_k * expert + router + shared_w
    up = (2 if e.gated else 1)
    return BlockCost(
        symbol=MOE, kind="moe", params=matmul + other, matmul_params=matmul, active_params=active_matmul + other,
        active_matmul_params=active_matmul, expert_matmul_params=expert, num_experts=e.num_experts, top_k=e.top_k,
        kv_elems_per_token=0, ssm_state_elems=0, conv_state_elems=0, decode_core_flops=0.0,
        decode_core_flops_per_key=0.0, prefill_core=_no_core,
        act_elems_per_token=h + e.top_k * (h + up * inter + inter + h) + (up * shared + shared if shared else 0) + h,
        act_fp32_elems_per_token=e.num_experts,               # router logits
        elementwise_elems_per_token=h + e.top_k * inter + shared, core_kind="none", kernels=10)


# symbol -> builder(layout, tp) -> BlockCost. One entry per layer kind.
BLOCKS: dict[str, Callable[[Layout, int], BlockCost]] = {MAMBA: _mamba, ATTENTION: _attention, MLP: _mlp, MOE: _moe}
assert set(BLOCKS) == set(SYMBOLS)


def block_cost(layout: Layout, symbol: str, tp: int = 1) -> BlockCost:
    if symbol not in BLOCKS:
        raise LayoutError(f"no formulas for symbol {symbol!r}; known: {', '.join(BLOCKS)}")
    if layout.block_config(symbol) is None:
        raise LayoutError(f"the pattern uses {symbol!r} but the layout has no {SYMBOLS[symbol]} block",
                          source=layout.name)
    return BLOCKS[symbol](layout, tp)


def block_costs(layout: Layout, tp: int = 1) -> dict[str, BlockCost]:
    """The cost record of every block kind the pattern uses."""
    return {s: block_cost(layout, s, tp) for s in SYMBOLS if s in layout.pattern}


def expected_experts_hit(num_experts: int, top_k: int, tokens: float) -> float:
    """Distinct routed experts `tokens` tokens reach with uniform routing (each picks top_k of num_experts)."""
    if num_experts <= 0 or tokens <= 0:
        return 0.0
    pick = min(top_k / num_experts, 1.0)            # chance one token routes to a given expert
    if pick >= 1.0:
        return float(num_experts)
    # 1 - (1 - pick) ** tokens as -expm1(tokens * log1p(-pick)): no overflow at any token count, exact for tiny pick
    return num_experts * -math.expm1(tokens * math.log1p(-pick))
