"""What a search assumes about serving: the profiler's scenario plus three memory-accounting choices the
profiler does not have yet, each a documented adjustment of the profiler's own numbers (docs/search.md).

- `kv_dtype="fp4"`: an NVFP4 KV cache (4-bit elements + one E4M3 scale per 16, 0.5625 B per element). The
  profiler is run with an fp8 cache (1 B per element) and the KV bytes are scaled by 0.5625; decode times
  keep the fp8 KV reads (an upper bound on time).
- `embeddings="quantized"`: the input embedding and the LM head stored like the GEMM weights (e.g. NVFP4)
  instead of in the activation dtype: the profiler's weight bytes minus (embedding + head) x (act bytes -
  weight bytes per parameter).
- `reserve_bytes`: memory resident besides the model (CUDA context, cuBLAS/NCCL workspaces), added.

`evaluate(layout, assumptions)` is the scalar reference: one `profile()` call and these adjustments. The
vectorised scorer (`designer.search.vector`) must equal it; the emitted layouts are checked with it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from designer.layout import Layout, LayoutError
from designer.profile import memory as mem
from designer.profile.params import embedding_params

# NVFP4: E2M1 elements with one E4M3 scale per 16 (the same storage as profile/memory.py's fp4 weights)
FP4_BYTES = mem.PRECISIONS["fp4"].bytes_per_param
KV_DTYPES = tuple(mem.DTYPE_BYTES) + ("fp4",)
EMBEDDINGS = ("bf16", "quantized")


@dataclass(frozen=True)
class Assumptions:
    hardware: str = "h100-sxm"
    precision: str = "bf16"           # GEMM weights (profiler precisions)
    kv_dtype: str | None = None       # profiler KV dtypes, or "fp4" (NVFP4, see module docstring)
    state_dtype: str = "fp32"
    batch: int = 1
    context: int = 65536 + 1024       # tokens cached per sequence at the end (prompt + generated)
    gen: int = 1024
    tp: int | None = None
    pp: int | None = None
    prefill_mode: str = "chunked"
    prefill_chunk: int = 8192
    embeddings: str = "bf16"          # bf16 | quantized (stored like the GEMM weights)
    reserve_bytes: float = 0.0        # resident besides the model: CUDA context, workspaces

    def __post_init__(self) -> None:
        for name in ("batch", "context", "gen", "prefill_chunk"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise LayoutError(f"{name} must be an integer >= 1, got {v!r}", key=name)
        if self.gen >= self.context:
            raise LayoutError(f"gen ({self.gen}) must be smaller than the context ({self.context}): the context "
                              "is prompt + generated tokens", key="gen")
        if self.kv_dtype is not None and self.kv_dtype not in KV_DTYPES:
            raise LayoutError(f"unknown KV-cache dtype {self.kv_dtype!r}; allowed: {', '.join(KV_DTYPES)}",
                              key="kv_dtype")
        if self.embeddings not in EMBEDDINGS:
            raise LayoutError(f"unknown embeddings storage {self.embeddings!r}; allowed: {', '.join(EMBEDDINGS)}",
                              key="embeddings")
        if not self.reserve_bytes >= 0:
            raise LayoutError(f"reserve must be >= 0 bytes, got {self.reserve_bytes!r}", key="reserve")
        mem.precision(self.precision)

    @property
    def prompt(self) -> int:
        return self.context - self.gen

    @property
    def kv_scale(self) -> float:
        """Factor from the profiled KV bytes to the assumed ones (fp4 is profiled as fp8: 1 B per element)."""
        return FP4_BYTES if self.kv_dtype == "fp4" else 1.0

    def profile_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `profile()` / `prepare()` (Scenario field names)."""
        kw: dict[str, Any] = dict(precision=self.precision, kv_dtype="fp8" if self.kv_dtype == "fp4" else self.kv_dtype,
                                  state_dtype=self.state_dtype, batch=self.batch, prompt=self.prompt, gen=self.gen,
                                  prefill_mode=self.prefill_mode, prefill_chunk=self.prefill_chunk)
        if self.tp is not None:
            kw["tp"] = self.tp
        if self.pp is not None:
            kw["pp"] = self.pp
        return kw

    def embedding_delta_bytes(self, layout: Layout, tp: int = 1) -> float:
        """Change of the weight bytes when the embedding and LM head are stored like GEMM weights."""
        if self.embeddings != "quantized":
            return 0.0
        emb, head, _ = embedding_params(layout, tp)
        act = mem.dtype_bytes(mem.activation_dtype(self.precision))
        return (emb + head) * (mem.precision(self.precision).bytes_per_param - act)

    def replace(self, **changes: Any) -> "Assumptions":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prompt"] = self.prompt
        return d

    def sentences(self) -> list[str]:
        kv = self.kv_dtype or mem.activation_dtype(self.precision)
        kv_text = ("fp4 (NVFP4, 0.5625 B per element: profiled as fp8 and scaled; decode times keep fp8 KV reads)"
                   if kv == "fp4" else kv)
        emb = ("stored like the GEMM weights" if self.embeddings == "quantized"
               else f"in {mem.activation_dtype(self.precision)}")
        return [
            f"{self.hardware}: batch {self.batch}, context {self.context:,} tokens per sequence "
            f"({self.prompt:,} prompt + {self.gen:,} generated), {self.prefill_mode} prefill"
            + (f" of {self.prefill_chunk:,} tokens per pass" if self.prefill_mode == "chunked" else ""),
            f"GEMM weights {self.precision} ({mem.precision(self.precision).bytes_per_param:g} B per weight); "
            f"embedding and LM head {emb}; norms, conv and SSM parameters "
            f"{mem.activation_dtype(self.precision)}",
            f"KV cache {kv_text}; SSM state {self.state_dtype}; conv window {mem.activation_dtype(self.precision)}",
            f"memory = weights + KV cache + SSM/conv state + prefill workspace (activations, last-token logits)"
            + (f" + {self.reserve_bytes / 2**30:.2f} GiB reserved (CUDA context, workspaces)"
               if self.reserve_bytes else "; nothing else reserved"),
            "throughput = output tokens/s of the static batch: prefill of every prompt, then one decode step per "
            "generated token (docs/profiler.md)",
        ]


@dataclass(frozen=True)
class Metrics:
    """One layout's numbers under an `Assumptions` (what the search scores and checks)."""

    params: int
    active_params: int
    weights_bytes: float
    kv_cache_bytes: float
    state_bytes: float
    activation_bytes: float
    memory_bytes: float
    ttft_s: float
    tpot_s: float
    e2e_s: float
    throughput_tokens_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate(layout: Layout, a: Assumptions) -> Metrics:
    """The reference: `profile()` of one layout plus the documented adjustments (module docstring)."""
    from designer.profile.analytic import profile
    p = profile(layout, a.hardware, **a.profile_kwargs()).to_dict()
    m, lat, t = p["memory"], p["latency"], p["throughput"]
    tp = (p.get("setup") or p.get("scenario") or {}).get("tp") or 1
    weights = m["weights_bytes"] + a.embedding_delta_bytes(layout, tp)
    kv = m["kv_cache_bytes"] * a.kv_scale
    total = weights + kv + m["ssm_state_bytes"] + m["activation_bytes"] + a.reserve_bytes
    return Metrics(params=p["params"]["total"], active_params=p["params"]["active"], weights_bytes=weights,
                   kv_cache_bytes=kv, state_bytes=m["ssm_state_bytes"], activation_bytes=m["activation_bytes"],
                   memory_bytes=total, ttft_s=lat["ttft_s"], tpot_s=lat["tpot_s"], e2e_s=lat["e2e_s"],
                   throughput_tokens_per_s=t["output_tokens_per_s"])
