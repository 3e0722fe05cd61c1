"""Megatron-LM arguments for a layout: `megatron_args(layout, ...)` and the `megatron.sh` an export holds.

Flag names follow Megatron-LM's `megatron/training/arguments.py` and `TransformerConfig` (main branch,
2025-2026): `pretrain_hybrid.py` with `--hybrid-layer-pattern` and the `hybrid_stack_spec`. Releases before
the rename use `pretrain_mamba.py`, `--hybrid-override-pattern` and
`--spec megatron.core.models.mamba.mamba_layer_specs mamba_stack_spec`; the script says so in a comment.

FP8 follows the Nemotron-H recipe (arXiv 2504.03624 §2.4): E4M3 forward / E5M2 gradients (`--fp8-format
hybrid`), per-tensor current scaling (`--fp8-recipe tensorwise`), first and last N layers in BF16.

The TP/PP suggestion asks the profiler and the rules: per-GPU training memory from designer.profile.analytic.
training_memory_per_gpu, GPU memory from the hardware profile (profiles/hardware/), the usable share from the
serving Scenario's default, and which TP sizes divide the layout from the helper rule ST007 uses.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from designer.layout import ATTENTION, MAMBA, MLP, MOE, Layout
from designer.profile.analytic import DEFAULT_HARDWARE, training_memory_per_gpu
from designer.profile.hardware import load_hardware
from designer.profile.scenario import Scenario
from designer.layout import tensor_parallel_divides

GPU_MEMORY_GB = load_hardware(DEFAULT_HARDWARE).memory_bytes / 1e9    # the default GPU profile's memory
USABLE_FRACTION = Scenario.memory_utilization   # headroom for workspace and fragmentation (activations counted)
TP_CHOICES = (1, 2, 4, 8)       # TP stays inside one NVLink node
PP_CHOICES = (1, 2, 4, 8, 16, 32)
_ACT_FLAG = {"relu2": "--squared-relu", "swiglu": "--swiglu", "gelu": None}   # gelu is Megatron's default


class MegatronUnsupported(ValueError):
    """The layout uses something Megatron-LM's hybrid stack cannot build (the message says what)."""


def unsupported_reason(layout: Layout) -> str | None:
    if MAMBA in layout.pattern and layout.mamba.version != 2:
        return "Megatron-LM's hybrid stack builds Mamba-2 mixers only; this layout uses Mamba-1 (mamba.version 1)"
    acts = {b.activation for b in (layout.mlp if MLP in layout.pattern else None,
                                   layout.moe if MOE in layout.pattern else None) if b is not None}
    if len(acts) > 1:
        return f"Megatron-LM uses one activation for MLP and MoE layers; this layout mixes {sorted(acts)}"
    return None


# --------------------------------------------------------------------------------------------------
# The TP/PP suggestion


@dataclass(frozen=True)
class MemoryEstimate:
    bytes_per_gpu: float
    source: str


def plan_memory(layout: Layout, tp: int, pp: int, ep: int = 1, dp: int = 8,
                seq_len: int = 8192) -> MemoryEstimate:
    """Per-GPU training memory, the profiler's figure: weights, grads, optimizer state over `dp` ranks and one
    micro-batch of activations at `seq_len` with selective recompute."""
    result = training_memory_per_gpu(layout, tp=tp, pp=pp, ep=ep, dp=dp, seq_len=seq_len)
    return MemoryEstimate(float(result.total_bytes),
                          f"designer profiler: weights, grads, optimizer over {dp} DP ranks, activations of "
                          f"one {seq_len}-token micro-batch with selective recompute")


@dataclass
class ParallelPlan:
    tp: int
    pp: int
    ep: int
    memory: MemoryEstimate
    budget_bytes: float
    fits: bool
    notes: list[str] = field(default_factory=list)
    gpu_memory_gb: float = GPU_MEMORY_GB

    @property
    def bytes_per_gpu(self) -> float:
        return self.memory.bytes_per_gpu

    def summary(self) -> str:
        fit = "fits" if self.fits else "does NOT fit"
        ep = f" EP={self.ep}" if self.ep > 1 else ""
        return (f"TP={self.tp} PP={self.pp}{ep}: ~{self.bytes_per_gpu / 1e9:.1f} GB/GPU of training memory "
                f"({fit} in {self.budget_bytes / 1e9:.0f} GB of {self.gpu_memory_gb:.0f} GB)")


def _budget(gpu_memory_gb: float) -> float:
    return gpu_memory_gb * 1e9 * USABLE_FRACTION


def suggest_parallelism(layout: Layout, gpu_memory_gb: float = GPU_MEMORY_GB, dp: int = 8,
                        seq_len: int = 8192) -> ParallelPlan:
    """The smallest TP x PP (TP first, up to 8 inside a node) whose training memory fits on one GPU of
    `gpu_memory_gb` (default: the default hardware profile's memory).
    MoE layouts also get EP (up to 8, dividing the expert count). A layout whose `parallel:` block asks for
    more than 1 is honoured as given."""
    seq_len = min(seq_len, layout.max_position_embeddings)

    def plan(tp: int, pp: int, ep: int, notes=()) -> ParallelPlan:
        memory = plan_memory(layout, tp, pp, ep, dp, seq_len)
        budget = _budget(gpu_memory_gb)
        return ParallelPlan(tp, pp, ep, memory, budget, memory.bytes_per_gpu <= budget, list(notes), gpu_memory_gb)

    requested = layout.parallel
    if requested.tensor > 1 or requested.pipeline > 1:
        return plan(requested.tensor, requested.pipeline, 1, ["from the layout's parallel: block"])
    eps = [1]
    if MOE in layout.pattern:
        eps = [e for e in (1, 2, 4, 8) if layout.moe.num_experts % e == 0]
    tps = [t for t in TP_CHOICES if tensor_parallel_divides(layout, t)]
    pps = [p for p in PP_CHOICES if p <= layout.num_layers]
    for _, pp, ep, tp in sorted((tp * pp, pp, ep, tp) for tp in tps for pp in pps for ep in eps):
        candidate = plan(tp, pp, ep)
        if candidate.fits:
            return candidate
    return plan(max(tps), max(pps), max(eps), ["even the largest split tried does not fit"])


# --------------------------------------------------------------------------------------------------
# Arguments and the script


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def megatron_args(layout: Layout) -> list[str]:
    """Model-shape arguments (no parallelism, data or schedule) as a flat argv list."""
    reason = unsupported_reason(layout)
    if reason:
        raise MegatronUnsupported(reason)
    p = layout.pattern
    args = ["--hybrid-layer-pattern", p,
            "--spec", "megatron.core.models.hybrid.hybrid_layer_specs", "hybrid_stack_spec",
            "--hidden-size", str(layout.hidden_size),
            "--normalization", "RMSNorm", "--norm-epsilon", _num(layout.norm_eps)]
    if not layout.tie_word_embeddings:
        args.append("--untie-embeddings-and-output-weights")
    biases = []
    if ATTENTION in p and layout.attention.o_bias:
        biases.append("attention.o_bias")
    if MLP in p and layout.mlp.bias:
        biases.append("mlp.bias")
    if MAMBA in p and layout.mamba.proj_bias:
        biases.append("mamba.proj_bias")
    if not biases:
        args.append("--disable-bias-linear")
    if ATTENTION in p:
        a = layout.attention
        args += ["--num-attention-heads", str(a.num_heads), "--kv-channels", str(a.head_dim)]
        if a.num_kv_heads != a.num_heads:
            args += ["--group-query-attention", "--num-query-groups", str(a.num_kv_heads)]
        if a.qkv_bias and not biases:
            args.append("--add-qkv-bias")
        if a.rope_theta is not None:
            args += ["--position-embedding-type", "rope", "--rotary-base", _num(a.rope_theta)]
        else:
            args += ["--position-embedding-type", "none"]
    else:
        # Megatron needs a head count even without attention layers; it only sizes nothing here
        args += ["--num-attention-heads", "1", "--position-embedding-type", "none"]
    if MAMBA in p:
        m = layout.mamba
        args += ["--mamba-num-heads", str(m.num_heads), "--mamba-head-dim", str(m.head_dim),
                 "--mamba-num-groups", str(m.n_groups), "--mamba-state-dim", str(m.state_size)]
    act = None
    if MLP in p:
        args += ["--ffn-hidden-size", str(layout.mlp.intermediate_size)]
        act = layout.mlp.activation
    if MOE in p:
        e = layout.moe
        if MLP not in p:
            args += ["--ffn-hidden-size", str(e.intermediate_size)]
        args += ["--num-experts", str(e.num_experts), "--moe-router-topk", str(e.top_k),
                 "--moe-ffn-hidden-size", str(e.intermediate_size),
                 "--moe-router-score-function", "sigmoid", "--moe-router-dtype", "fp32",
                 "--moe-router-topk-scaling-factor", _num(getattr(e, "routed_scaling_factor", 1.0)),
                 "--moe-grouped-gemm", "--moe-token-dispatcher-type", "alltoall",
                 "--moe-aux-loss-coeff", "1e-4"]
        if e.router_bias:
            args.append("--moe-router-enable-expert-bias")
        if e.shared_intermediate_size:
            args += ["--moe-shared-expert-intermediate-size", str(e.shared_intermediate_size)]
        act = act or e.activation
    if act and _ACT_FLAG[act]:
        args.append(_ACT_FLAG[act])
    return args


def precision_args(layout: Layout) -> list[str]:
    t = layout.training
    args = ["--bf16"]
    if t.precision == "fp8":
        args += ["--fp8-format", "hybrid", "--fp8-recipe", "tensorwise"]
    elif t.precision == "fp4":
        args += ["--fp4-format", "e2m1", "--fp4-recipe", "nvfp4"]
    if t.precision in ("fp8", "fp4") and t.bf16_edge_layers:
        n = str(t.bf16_edge_layers)
        args += ["--first-last-layers-bf16", "--num-layers-at-start-in-bf16", n, "--num-layers-at-end-in-bf16", n]
    return args


def _bash_array(name: str, args: list[str], indent: str = "    ") -> str:
    """A bash array, one flag (with its values) per line."""
    lines, cur = [], []
    for a in args:
        if a.startswith("--") and cur:
            lines.append(cur)
            cur = []
        cur.append(a)
    if cur:
        lines.append(cur)
    body = "\n".join(indent + " ".join(shlex.quote(x) for x in line) for line in lines)
    return f"{name}=(\n{body}\n)"


def megatron_script(layout: Layout, plan: ParallelPlan | None = None, seq_length: int = 8192) -> str:
    """The text of megatron.sh. Raises MegatronUnsupported for layouts Megatron cannot build."""
    model_args = megatron_args(layout)
    seq = min(seq_length, layout.max_position_embeddings)
    plan = plan or suggest_parallelism(layout, seq_len=seq)
    fp8_hint = ""
    if layout.training.precision == "bf16":
        t = layout.training
        fp8_hint = ("# FP8 (Nemotron-H recipe: E4M3 forward, E5M2 gradients, current scaling, edge layers in BF16):\n"
                    f"#   PRECISION_ARGS+=(--fp8-format hybrid --fp8-recipe tensorwise --first-last-layers-bf16 "
                    f"--num-layers-at-start-in-bf16 {t.bf16_edge_layers} --num-layers-at-end-in-bf16 "
                    f"{t.bf16_edge_layers})\n")
    notes = []
    if MAMBA in layout.pattern and (layout.mamba.conv_kernel != 4 or layout.mamba.chunk_size != 128):
        notes.append(f"# note: Megatron's Mamba mixer uses conv kernel 4 and chunk 128; this layout has "
                     f"{layout.mamba.conv_kernel} and {layout.mamba.chunk_size}\n")
    if ATTENTION in layout.pattern and layout.attention.sliding_window:
        notes.append(f"# note: sliding window {layout.attention.sliding_window}: add --window-size "
                     f"'({layout.attention.sliding_window},0)' on releases that support it\n")
    if ATTENTION in layout.pattern and layout.attention.qkv_bias and "--disable-bias-linear" not in model_args:
        notes.append("# note: biases on other projections force --add-bias-linear (which includes qkv)\n")
    counts = ", ".join(f"{layout.count(s)} {s}" for s in "M*-E" if layout.count(s))
    ep_line = f"EP=${{EP:-{plan.ep}}}\n" if MOE in layout.pattern else ""
    ep_arg = '    --expert-model-parallel-size "$EP"\n' if MOE in layout.pattern else ""
    return f"""#!/usr/bin/env bash
# Megatron-LM pretraining for {layout.name} ({layout.num_layers} layers: {counts}), written by `designer export`.
# Source: {layout.source or 'user layout'}
#
#   MEGATRON_LM=/path/to/Megatron-LM bash megatron.sh                 # mock data, NullTokenizer
#   MEGATRON_LM=... DATA_PATH=/data/prefix TOKENIZER_MODEL=tok.model bash megatron.sh
#   DRY_RUN=1 bash megatron.sh                                       # print the command only
#   TP=.. PP=.. NPROC=.. NNODES=.. SEQ_LEN=.. MICRO_BATCH=.. GLOBAL_BATCH=.. override the defaults; extra
#   arguments are passed through to Megatron.
#
# Parallelism suggestion: {plan.summary()}
# ({plan.memory.source}{'; ' + '; '.join(plan.notes) if plan.notes else ''})
# Older Megatron-LM releases: pretrain_mamba.py, --hybrid-override-pattern, and
#   --spec megatron.core.models.mamba.mamba_layer_specs mamba_stack_spec
{''.join(notes)}set -euo pipefail

TP=${{TP:-{plan.tp}}}
PP=${{PP:-{plan.pp}}}
{ep_line}NPROC=${{NPROC:-8}}
NNODES=${{NNODES:-1}}
SEQ_LEN=${{SEQ_LEN:-{seq}}}
MICRO_BATCH=${{MICRO_BATCH:-1}}
GLOBAL_BATCH=${{GLOBAL_BATCH:-256}}
TRAIN_ITERS=${{TRAIN_ITERS:-1000}}
OUT=${{OUT:-./megatron-{layout.name}}}

{_bash_array("MODEL_ARGS", model_args)}

{_bash_array("PRECISION_ARGS", precision_args(layout))}
{fp8_hint}
PARALLEL_ARGS=(
    --tensor-model-parallel-size "$TP"
    --pipeline-model-parallel-size "$PP"
{ep_arg}    --use-distributed-optimizer
    --overlap-grad-reduce
    --overlap-param-gather
)
if [[ "$TP" -gt 1 ]]; then PARALLEL_ARGS+=(--sequence-parallel); fi

if [[ -n "${{DATA_PATH:-}}" ]]; then
    DATA_ARGS=(--data-path "$DATA_PATH" --split 99,1,0 --tokenizer-type "${{TOKENIZER_TYPE:-HuggingFaceTokenizer}}"
               --tokenizer-model "${{TOKENIZER_MODEL:?set TOKENIZER_MODEL with DATA_PATH}}")
else
    DATA_ARGS=(--mock-data --tokenizer-type NullTokenizer --vocab-size {layout.vocab_size})
fi

TRAIN_ARGS=(
    --seq-length "$SEQ_LEN"
    --max-position-embeddings "$SEQ_LEN"
    --micro-batch-size "$MICRO_BATCH"
    --global-batch-size "$GLOBAL_BATCH"
    --train-iters "$TRAIN_ITERS"
    --lr 3e-4 --min-lr 3e-6 --lr-decay-style cosine --lr-warmup-iters 100
    --weight-decay 0.1 --clip-grad 1.0 --adam-beta1 0.9 --adam-beta2 0.95
    --init-method-std 0.02
    --attention-dropout 0.0 --hidden-dropout 0.0
    --use-mcore-models
    --no-create-attention-mask-in-dataloader
    --log-interval 10 --eval-interval 500 --eval-iters 10
    --save "$OUT/checkpoints" --save-interval 500
    --tensorboard-dir "$OUT/tensorboard"
)

CMD=(torchrun --nproc_per_node "$NPROC" --nnodes "$NNODES" "${{MEGATRON_LM:-<MEGATRON_LM>}}/pretrain_hybrid.py"
     "${{MODEL_ARGS[@]}}" "${{PRECISION_ARGS[@]}}" "${{PARALLEL_ARGS[@]}}" "${{DATA_ARGS[@]}}"
     "${{TRAIN_ARGS[@]}}" "$@")

if [[ -n "${{DRY_RUN:-}}" ]]; then
    printf '%q ' "${{CMD[@]}}"; echo
    exit 0
fi
: "${{MEGATRON_LM:?set MEGATRON_LM to a Megatron-LM checkout}}"
export CUDA_DEVICE_MAX_CONNECTIONS=1
mkdir -p "$OUT"
exec "${{CMD[@]}}"
"""
