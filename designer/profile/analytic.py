"""Analytic profiler: the public entry. Parameters, FLOPs, memory, latency and throughput of a layout
on a hardware profile, from formulas alone (no torch, no networkx: imports in milliseconds).

    from designer.profile.analytic import profile
    p = profile("nemotron-h-8b", "h100-sxm", precision="bf16", batch=1, prompt=65536, gen=1024)
    p.to_dict()["throughput"]["max_batch"]
    profile("nemotron-h-8b", "h100-sxm", Scenario(batch=8, precision="fp8"))   # the same, as one value

The serving set-up is one `Scenario` (designer.profile.scenario, where its defaults live); every entry
below takes one, and/or its field names as keyword overrides.

The formulas live in one place each: per-block numbers in `blocks.BLOCKS` (keyed by layer symbol),
parameter totals in `params`, FLOPs in `flops`, bytes in `memory`, times in `roofline`. The sweep
helpers below feed the charts of the app and `designer compare --html`; each prepares the layout once
(`Roofline`) and then evaluates closed forms, so 3 layouts x 64 points take milliseconds.
docs/profiler.md states every formula and assumption.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from designer.layout import Layout, LayoutError, load_layout
from designer.profile import flops as fl
from designer.profile import memory as mem
from designer.profile.blocks import BLOCKS, BlockCost, block_cost, block_costs
from designer.profile.hardware import Efficiency, Hardware, hardware_names, load_hardware
from designer.profile.params import ParamCounts, count_params
from designer.profile.roofline import RequestTiming, Roofline
from designer.profile.scenario import PREFILL_MODES, Scenario

__all__ = [
    # one profile, sweeps for the charts, capacity helpers
    "profile", "Profile", "prepare", "sweep", "memory_vs_context", "latency_vs_context", "throughput_vs_batch",
    "max_batch_vs_context", "context_points", "batch_points", "max_batch_throughput", "training_memory_per_gpu",
    # re-exported building blocks
    "BLOCKS", "BlockCost", "block_cost", "block_costs", "ParamCounts", "count_params", "Hardware",
    "hardware_names", "load_hardware", "Roofline", "Scenario", "RequestTiming", "PREFILL_MODES",
    "DEFAULT_HARDWARE", "DEFAULT_PROMPT", "DEFAULT_GEN", "DEFAULT_TRAIN_SEQ_LEN", "WEIGHT_PRECISIONS",
]

DEFAULT_HARDWARE = "h100-sxm"
DEFAULT_PROMPT, DEFAULT_GEN = Scenario.prompt, Scenario.gen      # the Nemotron-H paper's scenario (scenario.py)
DEFAULT_TRAIN_SEQ_LEN = 8192
WEIGHT_PRECISIONS = ("bf16", "fp8", "fp4")


def _layout(ref: "Layout | str") -> Layout:
    return ref if isinstance(ref, Layout) else load_layout(ref)


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LayoutError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def prepare(layout: "Layout | str", hardware: "Hardware | str" = DEFAULT_HARDWARE, scenario: Scenario | None = None,
            **overrides: Any) -> Roofline:
    """A layout prepared for repeated evaluation on one GPU profile and scenario (`overrides`: Scenario
    field names; tp/pp default to the layout's own). The scenario's batch/prompt/gen are not used here:
    the Roofline's methods take them."""
    return Roofline(_layout(layout), load_hardware(hardware), Scenario.of(scenario, **overrides))


def max_batch_throughput(layout: "Layout | str", hardware: "Hardware | str" = DEFAULT_HARDWARE,
                         scenario: Scenario | None = None, **overrides: Any) -> RequestTiming | None:
    """The Nemotron-H paper's metric: output tokens/s (per GPU) at the largest batch that fits with the
    scenario's `prompt` + `gen` tokens per sequence; None when not even one sequence fits."""
    r = prepare(layout, hardware, scenario, **overrides)
    s = r.scenario
    batch = r.max_batch(s.prompt, s.gen)
    return r.request(batch, s.prompt, s.gen) if batch else None


def training_memory_per_gpu(layout: "Layout | str", *, tp: int = 1, pp: int = 1, ep: int = 1, dp: int = 1,
                            seq_len: int = DEFAULT_TRAIN_SEQ_LEN, micro_batch: int = 1, recompute: str = "selective",
                            distributed_optimizer: bool = True) -> mem.TrainingMemory:
    """Training memory of one GPU under TP x PP x EP x DP (what the Megatron exporter sizes its plan with):
    bf16 weights, fp32 grads, fp32 master + Adam sharded over dp (distributed optimizer), activations of
    one micro-batch of `seq_len` tokens with the given recomputation."""
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep), ("dp", dp), ("seq_len", seq_len),
                        ("micro_batch", micro_batch)):
        _check_count(name, value, 1)
    return mem.training_memory(_layout(layout), seq_len=seq_len, micro_batch=micro_batch, recompute=recompute,
                               tp=tp, pp=pp, dp=dp, ep=ep, distributed_optimizer=distributed_optimizer)


# --------------------------------------------------------------------------------------------------
# One profile


@dataclass(frozen=True)
class Profile:
    layout: str
    hardware: str
    setup: dict[str, Any]
    params: ParamCounts
    flops: dict[str, Any]
    memory: dict[str, Any]
    latency: dict[str, float]
    throughput: dict[str, Any]
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "hardware": self.hardware, "setup": dict(self.setup),
                "params": self.params.to_dict(), "flops": dict(self.flops), "memory": dict(self.memory),
                "latency": dict(self.latency), "throughput": dict(self.throughput),
                "assumptions": list(self.assumptions)}


def _assumptions(r: Roofline, batch: int) -> list[str]:
    s, hw, lay = r.scenario, r.hardware, r.layout
    eff = r.efficiency
    out = [
        f"static batch of {batch}: prompts prefilled {s.prefill_mode}"
        + (f" ({s.prefill_chunk} tokens per pass)" if s.prefill_mode == "chunked" else "")
        + ", then one decode step per output token for the whole batch",
        f"weights {s.precision} ({mem.precision(s.precision).bytes_per_param:g} B per GEMM weight; embeddings, "
        f"norms, conv and SSM parameters {s.act_dtype}); KV cache {s.kv}; SSM state {s.state_dtype}; "
        f"conv window {s.act_dtype}",
        f"roofline on {hw.name}: achieved fractions gemm {eff.gemm_for(hw.compute_precision(s.precision)):g}, "
        f"attention {eff.attention:g}, scan {eff.scan:g}, memory {eff.memory:g}, decode weight streaming "
        f"{eff.weights_memory:g}, KV reads {eff.kv_memory:g}, {eff.kernel_overhead_s * 1e6:g} us per kernel"
        + (" (measured on this GPU" if eff.calibrated else " (the H100 SXM's measured fractions, not yet "
                                                            "calibrated on this GPU") + "; profiles/hardware/ "
        "names the source of each)",
        f"usable memory = {s.memory_utilization:g} x {hw.memory_bytes / 2**30:.1f} GiB per GPU",
    ]
    if hw.kernels.get(s.kernel_backend):
        out.append(_backend_sentence(s.kernel_backend, eff))
    if s.tp > 1 or s.pp > 1:
        out.append(f"tensor parallel {s.tp} (one all-reduce per block), pipeline parallel {s.pp} (stages run "
                   f"one after another); figures are per GPU, throughput also per GPU")
    if lay.attention is not None and lay.attention.sliding_window and "*" in lay.pattern:
        out.append("attention.sliding_window is ignored: full causal attention and a full KV cache are counted "
                   "(an upper bound)")
    return out


def _backend_sentence(backend: str, eff: Efficiency) -> str:
    """What the profile's `kernels.BACKEND` terms add to the roofline (docs/measure.md)."""
    kinds = ("mamba", "attention", "mlp")
    passes = ", ".join(f"{kind} {eff.elementwise_passes(kind):g}" for kind in kinds)
    launches = ", ".join(f"{kind} {getattr(eff, f'{kind}_kernels'):g}" for kind in kinds
                         if getattr(eff, f"{kind}_kernels") is not None) or "the per-block estimates"
    nodes = ", ".join(f"{kind} {getattr(eff, f'{kind}_decode_kernels'):g}" for kind in ("mamba", "attention")
                      if getattr(eff, f"{kind}_decode_kernels") is not None)
    return (f"{backend} kernels (the profile's kernels.{backend} terms): extra elementwise passes over each "
            f"block's activations {passes}; decode passes over the SSM + conv state {eff.state_update_passes:g}; "
            f"scan bytes x{eff.scan_memory_passes:g}; {eff.decode_kernel_s * 1e6:g} us per decode launch; "
            f"kernels per block: {launches} (issued by the host while the GPU works)"
            + (f"; decode nodes per block: {nodes}" if nodes else ""))


def profile(layout: "Layout | str", hardware: "Hardware | str" = DEFAULT_HARDWARE, scenario: Scenario | None = None,
            *, train_seq_len: int = DEFAULT_TRAIN_SEQ_LEN, **overrides: Any) -> Profile:
    """Everything the product shows about one layout on one GPU profile (see docs/profiler.md).

    Memory figures are per GPU (the fullest pipeline stage of one tensor-parallel rank); the `model`
    entry holds whole-model sizes. `max_context_tokens` is None when nothing grows with the context.
    """
    _check_count("train_seq_len", train_seq_len, 1)
    r = prepare(layout, hardware, scenario, **overrides)
    lay, s = r.layout, r.scenario
    batch, prompt, gen = s.batch, s.prompt, s.gen
    costs1 = block_costs(lay) if s.tp > 1 else r.costs
    params = count_params(lay, costs1)

    prefill_split = fl.forward_flops(lay, prompt, logits_tokens=1, costs=costs1)
    flops = {
        "prefill": prefill_split.total,
        "prefill_by_kind": {"gemm": prefill_split.gemm, "attention": prefill_split.attention,
                            "scan": prefill_split.scan},
        "decode_per_token": fl.decode_flops_per_token(lay, prompt, costs=costs1),
        "train_per_token": fl.train_flops_per_token(lay, seq_len=train_seq_len, costs=costs1),
        "train_per_token_selective_recompute": fl.train_flops_per_token(lay, seq_len=train_seq_len,
                                                                        recompute="selective", costs=costs1),
        "train_per_token_full_recompute": fl.train_flops_per_token(lay, seq_len=train_seq_len, recompute="full",
                                                                   costs=costs1),
        "note": f"one multiply-add = 2 FLOPs; whole model, one sequence; prefill of {prompt} tokens with logits "
                f"for the last; decode of one token attending to {prompt} keys; training at sequence length "
                f"{train_seq_len}; Mamba-2 as chunked SSD (chunk {lay.mamba.chunk_size if lay.mamba else '-'})",
    }

    context = prompt + gen
    used = r.memory(batch, context, prompt=prompt)
    memory = {
        "weights_bytes": used.weights_bytes,
        "kv_cache_bytes_per_token": max(st.kv_bytes_per_token for st in r.stages),
        "ssm_state_bytes_per_sequence": max(st.ssm_state_bytes_per_sequence for st in r.stages),
        "conv_state_bytes_per_sequence": max(st.state_bytes_per_sequence - st.ssm_state_bytes_per_sequence
                                             for st in r.stages),
        "kv_cache_bytes": used.kv_cache_bytes,
        "ssm_state_bytes": used.ssm_state_bytes,
        "activation_bytes": used.activation_bytes,
        "total_bytes": used.total_bytes,
        "capacity_bytes": used.capacity_bytes,
        "gpu_memory_bytes": r.hardware.memory_bytes,
        "fits": used.fits,
        "context_tokens": context,
        "prefill_activation_peak_bytes": {
            mode: mem.prefill_activation_peak_bytes(lay, prompt, mode=mode, chunk=s.prefill_chunk, batch=batch,
                                                    act_dtype=s.act_dtype, tp=s.tp, costs=r.costs)
            for mode in PREFILL_MODES},
        "model": {
            "weights_bytes_by_precision": {p: mem.weights_bytes(lay, p, costs=costs1) for p in WEIGHT_PRECISIONS},
            "kv_cache_bytes_per_token": mem.kv_cache_bytes_per_token(lay, s.kv, costs=costs1),
            "ssm_state_bytes_per_sequence": mem.ssm_state_bytes_per_sequence(lay, s.state_dtype, costs=costs1),
            "conv_state_bytes_per_sequence": mem.conv_state_bytes_per_sequence(lay, s.act_dtype, costs=costs1),
        },
        "training": {mode: mem.training_memory(lay, seq_len=train_seq_len, recompute=mode, tp=s.tp, pp=s.pp,
                                               costs=r.costs).to_dict() for mode in mem.RECOMPUTE},
    }

    timing = r.request(batch, prompt, gen)
    latency = {"ttft_s": timing.ttft_s, "tpot_s": timing.tpot_s, "tpot_first_s": timing.tpot_first_s,
               "tpot_last_s": timing.tpot_last_s, "e2e_s": timing.e2e_s}
    max_b = r.max_batch(prompt, gen)
    at_max = r.request(max_b, prompt, gen) if max_b else None
    throughput = {
        "output_tokens_per_s": timing.output_tokens_per_s,
        "output_tokens_per_s_per_gpu": timing.output_tokens_per_s_per_gpu,
        "max_batch": max_b,
        "max_batch_output_tokens_per_s": at_max.output_tokens_per_s if at_max else 0.0,
        "max_batch_output_tokens_per_s_per_gpu": at_max.output_tokens_per_s_per_gpu if at_max else 0.0,
        "max_context_tokens": r.max_context(1),
        "gpus": s.gpus,
    }
    setup = {"precision": s.precision, "kv_dtype": s.kv, "state_dtype": s.state_dtype, "tp": s.tp, "pp": s.pp,
             "batch": batch, "prompt": prompt, "gen": gen, "memory_utilization": s.memory_utilization,
             "prefill_mode": s.prefill_mode, "prefill_chunk": s.prefill_chunk, "kernels": s.kernel_backend,
             "train_seq_len": train_seq_len}
    return Profile(layout=lay.name, hardware=r.hardware.name, setup=setup, params=params, flops=flops,
                   memory=memory, latency=latency, throughput=throughput, assumptions=_assumptions(r, batch))


# --------------------------------------------------------------------------------------------------
# Sweeps for the charts (JSON-ready dicts of lists)


def memory_vs_context(r: Roofline, contexts: Sequence[int], *, batch: int = 1) -> dict[str, list[float]]:
    """Per-GPU bytes stacked by weights / KV cache / SSM+conv state / activations at each context."""
    rows = [r.memory(batch, c) for c in contexts]
    return {"context": list(contexts), "weights_bytes": [m.weights_bytes for m in rows],
            "kv_cache_bytes": [m.kv_cache_bytes for m in rows], "ssm_state_bytes": [m.ssm_state_bytes for m in rows],
            "activation_bytes": [m.activation_bytes for m in rows], "total_bytes": [m.total_bytes for m in rows],
            "capacity_bytes": r.capacity_bytes}


def latency_vs_context(r: Roofline, contexts: Sequence[int], *, batch: int = 1) -> dict[str, list[float]]:
    """TTFT of a prompt of each length, and TPOT of a decode step attending to that many keys."""
    a, k = r.decode_coefficients(batch)
    return {"context": list(contexts), "ttft_s": [r.prefill_s(batch, c) for c in contexts],
            "tpot_s": [a + k * c for c in contexts]}


def throughput_vs_batch(r: Roofline, batches: Sequence[int], *, prompt: int = DEFAULT_PROMPT,
                        gen: int = DEFAULT_GEN) -> dict[str, list]:
    """Output tokens/s (and per GPU) at each batch; None where the batch does not fit in memory."""
    limit = r.max_batch(prompt, gen)
    tps, per_gpu = [], []
    for b in batches:
        t = r.request(b, prompt, gen) if b <= limit else None
        tps.append(t.output_tokens_per_s if t else None)
        per_gpu.append(t.output_tokens_per_s_per_gpu if t else None)
    return {"batch": list(batches), "output_tokens_per_s": tps, "output_tokens_per_s_per_gpu": per_gpu,
            "max_batch": limit}


def max_batch_vs_context(r: Roofline, contexts: Sequence[int], *, gen: int = 0) -> dict[str, list]:
    """Largest batch that fits with each prompt length (+ `gen` generated tokens)."""
    return {"context": list(contexts), "max_batch": [r.max_batch(c, gen) for c in contexts]}


def sweep(layout: "Layout | str", hardware: "Hardware | str" = DEFAULT_HARDWARE, scenario: Scenario | None = None,
          *, contexts: Iterable[int] | None = None, batches: Iterable[int] | None = None,
          **overrides: Any) -> dict[str, Any]:
    """All four chart series of one layout (what `designer compare --html` and the app plot)."""
    r = prepare(layout, hardware, scenario, **overrides)
    batch, prompt, gen = r.scenario.batch, r.scenario.prompt, r.scenario.gen
    contexts = list(contexts) if contexts is not None else context_points()
    batches = list(batches) if batches is not None else batch_points(r.max_batch(prompt, gen))
    return {"layout": r.layout.name, "hardware": r.hardware.name,
            "memory_vs_context": memory_vs_context(r, contexts, batch=batch),
            "latency_vs_context": latency_vs_context(r, contexts, batch=batch),
            "throughput_vs_batch": throughput_vs_batch(r, batches, prompt=prompt, gen=gen),
            "max_batch_vs_context": max_batch_vs_context(r, contexts, gen=gen)}


def context_points(lo: int = 1024, hi: int = 1 << 20, n: int = 64) -> list[int]:
    """n log-spaced context lengths from lo to hi (integers, increasing, unique)."""
    if n < 2:
        return [lo]
    ratio = (hi / lo) ** (1 / (n - 1))
    out: list[int] = []
    for i in range(n):
        v = max(round(lo * ratio ** i), out[-1] + 1 if out else lo)
        out.append(v)
    return out


def batch_points(limit: int, n: int = 32) -> list[int]:
    """Batches 1..max(limit, 1), log-spaced, always including the limit itself."""
    limit = max(limit, 1)
    pts = sorted({max(1, round(limit ** (i / (n - 1)))) for i in range(n)} | {limit})
    return pts
