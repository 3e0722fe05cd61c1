"""The source articles' inference claims, reproduced from the layouts alone with the analytic profiler.

One definition of each scenario, used by tests/test_profile_claims.py, bench/bench_profile.py and
docs/profiler.md. Each claim states what is assumed; nothing here is tuned to hit the published figure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from designer.layout import Layout, load_layout
from designer.profile.analytic import max_batch_throughput, prepare

# Nemotron-H paper (arXiv 2504.03624), Fig. 1 and §2: H100, 65,536 input / 1,024 output tokens, the
# largest batch that fits, output tokens/s/GPU. (Nemotron measured in Megatron-LM, baselines in vLLM.)
PAPER_PROMPT, PAPER_GEN = 65536, 1024

ONE_GPU_BF16 = {"precision": "bf16", "tp": 1}
# 56B/47B/70B/72B: Llama-3.1-70B and Qwen-2.5-72B do not hold one 65k-token sequence on fewer than 4 H100s
# in bf16, so the large rows are taken on one 8-GPU H100 node with tensor parallelism, per-GPU throughput.
NODE_TP8_BF16 = {"precision": "bf16", "tp": 8}


@dataclass(frozen=True)
class Claim:
    id: str
    text: str                    # what the source says
    numerator: str               # preset names
    denominator: str
    expected_ratio: float
    tolerance: float             # relative band the reproduction must fall in
    setup: dict[str, Any] = field(default_factory=dict)
    hardware: str = "h100-sxm"
    assumption: str = ""


CLAIMS: tuple[Claim, ...] = (
    Claim("nh8b-vs-llama31-8b", "Nemotron-H-8B ~3x the throughput of Llama-3.1-8B", "nemotron-h-8b", "llama-3.1-8b",
          3.0, 0.25, ONE_GPU_BF16, assumption="one H100 SXM, bf16 weights and KV cache, fp32 SSM state"),
    Claim("nh8b-vs-qwen25-7b", "Nemotron-H-8B ~1.8x the throughput of Qwen-2.5-7B", "nemotron-h-8b", "qwen2.5-7b",
          1.8, 0.25, ONE_GPU_BF16, assumption="one H100 SXM, bf16 weights and KV cache, fp32 SSM state"),
    Claim("nh47b-vs-nh56b", "Nemotron-H-47B ~20% faster than Nemotron-H-56B", "nemotron-h-47b", "nemotron-h-56b",
          1.2, 0.15, NODE_TP8_BF16, assumption="8 H100 SXM, tensor parallel 8, bf16 weights and KV cache"),
    Claim("nh56b-vs-llama31-70b", "Nemotron-H-56B ~2.4x Llama-3.1-70B", "nemotron-h-56b", "llama-3.1-70b",
          2.4, 0.25, NODE_TP8_BF16, assumption="8 H100 SXM, tensor parallel 8, bf16 weights and KV cache"),
    Claim("nh56b-vs-qwen25-72b", "Nemotron-H-56B ~2.4x Qwen-2.5-72B", "nemotron-h-56b", "qwen2.5-72b",
          2.4, 0.25, NODE_TP8_BF16, assumption="8 H100 SXM, tensor parallel 8, bf16 weights and KV cache"),
    Claim("nh47b-vs-llama31-70b", "Nemotron-H-47B ~2.9x Llama-3.1-70B", "nemotron-h-47b", "llama-3.1-70b",
          2.9, 0.25, NODE_TP8_BF16, assumption="8 H100 SXM, tensor parallel 8, bf16 weights and KV cache"),
)


def throughput_row(name: str, hardware: str, setup: dict[str, Any], prompt: int = PAPER_PROMPT,
                   gen: int = PAPER_GEN) -> dict[str, Any]:
    """Max batch and tokens/s (total and per GPU) of one preset in one setup."""
    r = prepare(name, hardware, **setup)
    batch = r.max_batch(prompt, gen)
    t = r.request(batch, prompt, gen) if batch else None
    return {"layout": name, "hardware": hardware, **setup, "prompt": prompt, "gen": gen, "max_batch": batch,
            "ttft_s": t.ttft_s if t else None, "tpot_s": t.tpot_s if t else None, "e2e_s": t.e2e_s if t else None,
            "output_tokens_per_s": t.output_tokens_per_s if t else 0.0,
            "output_tokens_per_s_per_gpu": t.output_tokens_per_s_per_gpu if t else 0.0}


def evaluate(claim: Claim) -> dict[str, Any]:
    num = throughput_row(claim.numerator, claim.hardware, claim.setup)
    den = throughput_row(claim.denominator, claim.hardware, claim.setup)
    ratio = num["output_tokens_per_s_per_gpu"] / den["output_tokens_per_s_per_gpu"] \
        if den["output_tokens_per_s_per_gpu"] else None
    lo, hi = claim.expected_ratio * (1 - claim.tolerance), claim.expected_ratio * (1 + claim.tolerance)
    return {**asdict(claim), "numerator_row": num, "denominator_row": den, "predicted_ratio": ratio,
            "band": [lo, hi], "within": ratio is not None and lo <= ratio <= hi}


def setup_grid(numerator: str, denominator: str, precisions=("bf16", "fp8"), tps=(1, 2, 4, 8)) -> list[dict]:
    """The same ratio over precisions x tensor-parallel sizes: what the paper's unstated setup changes."""
    out = []
    for precision in precisions:
        for tp in tps:
            setup = {"precision": precision, "tp": tp}
            num = max_batch_throughput(numerator, "h100-sxm", prompt=PAPER_PROMPT, gen=PAPER_GEN, **setup)
            den = max_batch_throughput(denominator, "h100-sxm", prompt=PAPER_PROMPT, gen=PAPER_GEN, **setup)
            out.append({**setup, "numerator_max_batch": num.batch if num else 0,
                        "denominator_max_batch": den.batch if den else 0,
                        "ratio": num.output_tokens_per_s_per_gpu / den.output_tokens_per_s_per_gpu
                        if num and den else None})
    return out


# --------------------------------------------------------------------------------------------------
# Falcon Mamba article (TII / Hugging Face blog, summarised in ../shared/reference/seeds-summary.md)

def falcon_baseline() -> Layout:
    """The article resized every Transformer's vocabulary to Falcon Mamba's (65,024) for a fair memory
    comparison; Llama-3.1-8B so resized is the Transformer row here."""
    return load_layout("llama-3.1-8b").replace(name="llama-3.1-8b-vocab65024", vocab_size=65024)


def falcon_max_prompt(precision: str) -> list[dict[str, Any]]:
    """Longest prompt at batch 1 on one A10 24 GB in each prefill mode (whole memory usable: plain
    transformers, no serving reserve). None = unbounded."""
    rows = []
    for lay in (load_layout("falcon-mamba-7b"), falcon_baseline()):
        for mode in ("parallel", "sequential"):
            r = prepare(lay, "a10", precision=precision, prefill_mode=mode, memory_utilization=1.0)
            rows.append({"layout": lay.name, "precision": precision, "prefill_mode": mode,
                         "weights_bytes": r.stages[0].weights_bytes, "capacity_bytes": r.capacity_bytes,
                         "max_prompt_tokens": r.max_context(1)})
    return rows


def falcon_generation(gen_points=(1, 1024, 16384, 65536, 130_000)) -> list[dict[str, Any]]:
    """TPOT and memory at batch 1 on an H100 over the generated length (prompt of 1 token), as the
    article measured up to 130k generated tokens."""
    rows = []
    for lay in (load_layout("falcon-mamba-7b"), falcon_baseline()):
        r = prepare(lay, "h100-sxm")
        a, k = r.decode_coefficients(1)
        for g in gen_points:
            rows.append({"layout": lay.name, "generated_tokens": g, "tpot_s": a + k * (1 + g),
                         "memory_bytes": r.memory(1, 1 + g, prompt=1).total_bytes})
    return rows
