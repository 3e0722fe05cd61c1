"""Memory formulas: weights by precision, KV cache, SSM/conv state, activation peaks, training memory.

All sizes in bytes. Per-block element counts come from `designer.profile.blocks`; this module only
multiplies them by dtype sizes and counts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, NamedTuple

from designer.layout import Layout, LayoutError
from designer.profile.blocks import BlockCost, block_costs, vocab_per_rank
from designer.profile.params import embedding_params


@dataclass(frozen=True)
class Precision:
    """Storage of one GEMM weight: bits of the element plus its share of the block-scale bytes."""

    name: str
    element_bits: int
    scale_bytes: int = 0         # bytes of one scale factor
    scale_group: int = 0         # elements sharing one scale (0: none, or a negligible per-tensor scale)
    note: str = ""

    @property
    def bytes_per_param(self) -> float:
        return self.element_bits / 8 + (self.scale_bytes / self.scale_group if self.scale_group else 0.0)


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", 32, note="full precision"),
    "bf16": Precision("bf16", 16),
    "fp16": Precision("fp16", 16),
    # E4M3 with one fp32 scale per 128-element block (DeepSeek-V3 / Transformer Engine blockwise recipe);
    # a per-tensor-scaled fp8 checkpoint is 1.0 byte/param, 3% less
    "fp8": Precision("fp8", 8, scale_bytes=4, scale_group=128, note="E4M3, fp32 scale per 128 elements"),
    # NVFP4: E2M1 with one E4M3 scale per 16 elements (the per-tensor fp32 scale is negligible)
    "fp4": Precision("fp4", 4, scale_bytes=1, scale_group=16, note="NVFP4 E2M1, E4M3 scale per 16 elements"),
}
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


def precision(name: str) -> Precision:
    try:
        return PRECISIONS[name]
    except KeyError:
        raise LayoutError(f"unknown precision {name!r}; allowed: {', '.join(PRECISIONS)}") from None


def dtype_bytes(name: str) -> int:
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        raise LayoutError(f"unknown cache/activation dtype {name!r}; allowed: {', '.join(DTYPE_BYTES)}") from None


def activation_dtype(weight_precision: str) -> str:
    """Activations (and the conv window) run in bf16 unless the whole model runs in fp32."""
    return "fp32" if weight_precision == "fp32" else "bf16"


# --------------------------------------------------------------------------------------------------
# Weights


def _counts(layout: Layout, counts: Mapping[str, int] | None) -> Mapping[str, int]:
    """Blocks per symbol: the whole layout, or one pipeline stage's share when `counts` is given."""
    return layout.counts if counts is None else counts


def weights_bytes(layout: Layout, weight_precision: str = "bf16", *, tp: int = 1,
                  costs: dict[str, BlockCost] | None = None, counts: Mapping[str, int] | None = None,
                  embedding: bool = True, head: bool = True) -> float:
    """Bytes of the weights on one tensor-parallel rank. GEMM weights of the blocks take `weight_precision`
    (with its scale overhead); embeddings, LM head, norms, conv, SSM parameters and biases stay in the
    activation dtype (bf16, or fp32 for an fp32 model). `counts`/`embedding`/`head` select a pipeline stage."""
    costs = block_costs(layout, tp) if costs is None else costs
    n = _counts(layout, counts)
    per_param = precision(weight_precision).bytes_per_param
    other_bytes = dtype_bytes(activation_dtype(weight_precision))
    emb, lm_head, norm = embedding_params(layout, tp)
    matmul = sum(n.get(s, 0) * c.matmul_params for s, c in costs.items())
    other = sum(n.get(s, 0) * (c.params - c.matmul_params) for s, c in costs.items()) \
        + (emb if embedding else 0) + (lm_head + norm if head else 0)
    return matmul * per_param + other * other_bytes


# --------------------------------------------------------------------------------------------------
# Decode caches


def _sum_over_blocks(layout: Layout, field: str, tp: int, costs: dict[str, BlockCost] | None,
                     counts: Mapping[str, int] | None) -> int:
    costs = block_costs(layout, tp) if costs is None else costs
    n = _counts(layout, counts)
    return sum(n.get(s, 0) * getattr(c, field) for s, c in costs.items())


def kv_cache_bytes_per_token(layout: Layout, kv_dtype: str = "bf16", *, tp: int = 1,
                             costs: dict[str, BlockCost] | None = None,
                             counts: Mapping[str, int] | None = None) -> int:
    """K and V of every attention layer for one token of one sequence."""
    return _sum_over_blocks(layout, "kv_elems_per_token", tp, costs, counts) * dtype_bytes(kv_dtype)


def ssm_state_bytes_per_sequence(layout: Layout, state_dtype: str = "fp32", *, tp: int = 1,
                                 costs: dict[str, BlockCost] | None = None,
                                 counts: Mapping[str, int] | None = None) -> int:
    """Recurrent SSM state of every Mamba layer for one sequence (fp32 by default, as mamba_ssm keeps it)."""
    return _sum_over_blocks(layout, "ssm_state_elems", tp, costs, counts) * dtype_bytes(state_dtype)


def conv_state_bytes_per_sequence(layout: Layout, conv_dtype: str = "bf16", *, tp: int = 1,
                                  costs: dict[str, BlockCost] | None = None,
                                  counts: Mapping[str, int] | None = None) -> int:
    """Last (kernel - 1) inputs of every Mamba depthwise conv for one sequence."""
    return _sum_over_blocks(layout, "conv_state_elems", tp, costs, counts) * dtype_bytes(conv_dtype)


# --------------------------------------------------------------------------------------------------
# Activations


def block_activation_bytes_per_token(cost: BlockCost, act_dtype: str = "bf16", kernels: str | None = None,
                                     step: bool = False) -> float:
    """Transient bytes per token of one block's forward. kernels "torch": a Mamba-2 block runs the torch SSD
    scan, whose chunk-square tensors outweigh the fused path's intermediates, or with `step` (one token per
    sequence: decode) the torch state update, which copies the state three times (BlockCost.torch_*); kernels
    "triton": the fla-core scan's workspace in prefill (BlockCost.triton_*), its fused decode step none."""
    fused = cost.act_elems_per_token * dtype_bytes(act_dtype) + cost.act_fp32_elems_per_token * 4
    if kernels == "torch" and cost.torch_scan_fp32_elems_per_token:
        acts = cost.torch_act_elems_per_token
        fp32 = cost.torch_step_fp32_elems_per_sequence if step else cost.torch_scan_fp32_elems_per_token
    elif kernels == "triton" and cost.triton_act_elems_per_token and not step:
        acts, fp32 = cost.triton_act_elems_per_token, cost.triton_scan_fp32_elems_per_token
    else:
        return fused
    return max(fused, acts * dtype_bytes(act_dtype) + fp32 * 4)


def activation_bytes_per_token(layout: Layout, *, act_dtype: str = "bf16", tp: int = 1,
                               costs: dict[str, BlockCost] | None = None,
                               counts: Mapping[str, int] | None = None, kernels: str | None = None,
                               step: bool = False) -> float:
    """Transient bytes per token of a forward pass: the residual stream plus every intermediate of the
    most demanding block kind alive at once (no in-block freeing; fused kernels: no T x T attention
    matrix, no T x d_inner x state scan tensor; kernels "torch": the torch SSD scan's workspace)."""
    costs = block_costs(layout, tp) if costs is None else costs
    n = _counts(layout, counts)
    widest = max((block_activation_bytes_per_token(c, act_dtype, kernels, step) for s, c in costs.items()
                  if n.get(s, 0)), default=0.0)
    return layout.hidden_size * dtype_bytes(act_dtype) + widest


def logits_bytes_per_sequence(layout: Layout, *, tp: int = 1) -> float:
    """fp32 logits of one position (the last of each sequence in a prefill or decode step)."""
    return vocab_per_rank(layout, tp) * 4


def inference_activation_peak_bytes(layout: Layout, tokens: int, *, act_dtype: str = "bf16", tp: int = 1,
                                    logits_tokens: int = 1, costs: dict[str, BlockCost] | None = None) -> float:
    """Transient memory of one forward over `tokens` tokens at once (all sequences of the pass together),
    plus fp32 logits of `logits_tokens` positions."""
    if tokens <= 0:
        return 0.0
    return tokens * activation_bytes_per_token(layout, act_dtype=act_dtype, tp=tp, costs=costs) \
        + logits_tokens * logits_bytes_per_sequence(layout, tp=tp)


PREFILL_MODES = ("parallel", "chunked", "sequential")


class PrefillSplit(NamedTuple):
    passes: int              # forward passes
    mean_tokens: float       # tokens per pass on average (every sequence of the batch together)
    peak_tokens: int         # tokens in the largest pass (what the activation peak is sized by)


def prefill_split(mode: str, batch: int, prompt: int, chunk: int = 8192) -> PrefillSplit:
    """How prefilling `batch` prompts of `prompt` tokens is cut into forward passes: the one place it is written.

    parallel: every prompt whole in one pass (memory grows with the prompt); chunked: at most `chunk`
    tokens per pass across the batch, caches carried between passes (a vLLM-style token budget);
    sequential: one token of each sequence per pass (the Falcon Mamba article's second mode).
    """
    total = batch * prompt
    if mode == "parallel":
        return PrefillSplit(1, float(total), total)
    if mode == "chunked":
        passes = max(1, -(-total // chunk))
        return PrefillSplit(passes, total / passes, min(total, chunk))
    if mode == "sequential":
        return PrefillSplit(prompt, float(batch), batch)
    raise LayoutError(f"unknown prefill mode {mode!r}; allowed: {', '.join(PREFILL_MODES)}")


def prefill_activation_peak_bytes(layout: Layout, prompt: int, *, mode: str = "parallel", chunk: int = 8192,
                                  batch: int = 1, act_dtype: str = "bf16", tp: int = 1,
                                  costs: dict[str, BlockCost] | None = None) -> float:
    """Peak transient memory of prefilling `batch` prompts of `prompt` tokens in a prefill mode
    (`prefill_split`), with the fp32 logits of each sequence's last position."""
    tokens = prefill_split(mode, batch, prompt, chunk).peak_tokens
    return inference_activation_peak_bytes(layout, tokens, act_dtype=act_dtype, tp=tp, logits_tokens=batch,
                                           costs=costs)


# --------------------------------------------------------------------------------------------------
# Training

RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class TrainingMemory:
    weights_bytes: float
    grads_bytes: float
    optimizer_bytes: float
    activations_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_bytes

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def training_activation_bytes_per_token(layout: Layout, recompute: str = "none", *, act_dtype: str = "bf16",
                                        tp: int = 1, costs: dict[str, BlockCost] | None = None) -> float:
    """Activations kept for the backward pass, per token of one sequence, whole model on one rank.

    none: every intermediate of every block; selective: norm/activation/conv outputs are recomputed,
    GEMM inputs and outputs kept; full: only each block's input is kept, and one block's intermediates
    are rebuilt at a time during backward. Plus the logits (activation dtype) and their fp32 softmax.
    """
    if recompute not in RECOMPUTE:
        raise LayoutError(f"unknown recompute mode {recompute!r}; allowed: {', '.join(RECOMPUTE)}")
    costs = block_costs(layout, tp) if costs is None else costs
    act = dtype_bytes(act_dtype)
    logits = vocab_per_rank(layout, tp) * (act + 4)
    if recompute == "full":
        widest = max(block_activation_bytes_per_token(c, act_dtype) for c in costs.values())
        return layout.num_layers * layout.hidden_size * act + widest + logits
    total = 0.0
    for s, c in costs.items():
        per_block = block_activation_bytes_per_token(c, act_dtype)
        if recompute == "selective":
            per_block -= c.elementwise_elems_per_token * act
        total += layout.count(s) * per_block
    return total + logits


def training_memory(layout: Layout, *, seq_len: int = 8192, micro_batch: int = 1, recompute: str = "none",
                    param_dtype: str = "bf16", tp: int = 1, pp: int = 1, dp: int = 1, ep: int = 1,
                    distributed_optimizer: bool = False, costs: dict[str, BlockCost] | None = None) -> TrainingMemory:
    """Per-GPU training memory with mixed-precision Adam (Megatron-LM layout).

    weights: `param_dtype` copy; grads: fp32 main grads; optimizer: fp32 master weights + Adam m and v
    (12 bytes/param), divided over `dp` ranks with the distributed optimizer. TP splits weights and
    (with sequence parallelism) activations; with ep > 1 routed experts are whole and spread over ep
    ranks instead. PP splits weights evenly by stage, while the first stage of a 1F1B schedule holds `pp`
    micro-batches of its 1/pp of the layers, i.e. about one micro-batch of all layers.
    """
    costs = block_costs(layout, tp) if costs is None else costs
    emb, head, norm = embedding_params(layout, tp)
    params = float(emb + head + norm)
    for s, c in costs.items():
        experts = c.num_experts * c.expert_matmul_params
        if experts and ep > 1:
            whole = block_costs(layout, 1)[s]
            experts_per_rank = -(-whole.num_experts // ep) * whole.expert_matmul_params
            params += layout.count(s) * (c.params - experts + experts_per_rank)
        else:
            params += layout.count(s) * c.params
    per_gpu = params / pp
    optimizer = per_gpu * 12 / (dp if distributed_optimizer else 1)
    act_dtype = "bf16" if param_dtype == "fp8" else param_dtype
    acts = training_activation_bytes_per_token(layout, recompute, act_dtype=act_dtype, tp=tp, costs=costs)
    return TrainingMemory(weights_bytes=per_gpu * dtype_bytes(act_dtype), grads_bytes=per_gpu * 4,
                          optimizer_bytes=optimizer, activations_bytes=acts * seq_len * micro_batch)
