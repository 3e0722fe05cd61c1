"""The serving scenario: how a layout is served when it is profiled. One value object, with its defaults
here and nowhere else; the roofline, `analytic.profile`/`sweep`, the CLI's profile/compare options and the
app's controls all build or take one.

    s = Scenario(batch=8, precision="fp8")
    s.replace(prompt=4096).to_dict()

`tp` / `pp` None means the layout's own `parallel:` block (`resolve(layout)` fills them in). `kernels` None
means the default kernel backend (hardware.DEFAULT_KERNELS, `triton`): the hardware profile's `kernels.triton`
terms when it has them, otherwise its general `efficiency`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from designer.layout import LayoutError
from designer.profile import memory as mem
from designer.profile.hardware import DEFAULT_KERNELS, check_kernels
from designer.profile.memory import PREFILL_MODES

if TYPE_CHECKING:
    from designer.layout import Layout



def _count(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LayoutError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Scenario:
    """A static batch of `batch` requests of `prompt` tokens in and `gen` tokens out, served at a weight
    precision, KV-cache and SSM-state dtypes, tensor x pipeline parallelism, a usable share of GPU memory and
    a prefill mode (docs/profiler.md)."""

    batch: int = 1
    # The Nemotron-H paper's throughput scenario (arXiv 2504.03624, Fig. 1 / §2): 65,536 input, 1,024 output.
    prompt: int = 65536
    gen: int = 1024
    precision: str = "bf16"          # GEMM weights and GEMM math: fp32 | bf16 | fp16 | fp8 | fp4
    kv_dtype: str | None = None      # KV cache; None = the activation dtype (bf16, fp32 for an fp32 model)
    state_dtype: str = "fp32"        # SSM recurrent state (mamba_ssm keeps it in fp32)
    tp: int | None = None            # tensor-parallel GPUs; None = the layout's parallel.tensor
    pp: int | None = None            # pipeline stages; None = the layout's parallel.pipeline
    memory_utilization: float = 0.9  # share of GPU memory the server may use (vLLM's default 0.9)
    prefill_mode: str = "chunked"    # parallel | chunked | sequential
    prefill_chunk: int = 8192        # tokens per chunked-prefill pass (vLLM-style max batched tokens)
    # kernel backend of the exported model: torch | triton. None: triton's efficiency terms, and the workspace
    # fused kernels need (B and C per group); a chosen backend also brings its own scan's workspace
    kernels: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch", "prompt", "gen", "prefill_chunk"):
            _count(name, getattr(self, name))
        for name in ("tp", "pp"):
            if getattr(self, name) is not None:
                _count(name, getattr(self, name))
        mem.precision(self.precision)
        if self.kv_dtype is not None:
            mem.dtype_bytes(self.kv_dtype)
        mem.dtype_bytes(self.state_dtype)
        mu = self.memory_utilization
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu) or not 0.0 < mu <= 1.0:
            raise LayoutError(f"memory_utilization must be in (0, 1], got {mu!r}")
        if self.prefill_mode not in PREFILL_MODES:
            raise LayoutError(f"unknown prefill mode {self.prefill_mode!r}; allowed: {', '.join(PREFILL_MODES)}")
        check_kernels(self.kernels)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, scenario: "Scenario | None" = None, **overrides: Any) -> "Scenario":
        """`scenario` (default: the defaults) with `overrides` (Scenario field names) applied."""
        base = cls() if scenario is None else scenario
        return base.replace(**overrides) if overrides else base

    def replace(self, **changes: Any) -> "Scenario":
        unknown = sorted(set(changes) - set(self.fields()))
        if unknown:
            raise TypeError(f"unknown scenario field(s) {', '.join(unknown)}; allowed: {', '.join(self.fields())}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolve(self, layout: "Layout") -> "Scenario":
        """tp / pp filled in from the layout's `parallel:` block where they are None."""
        if self.tp is not None and self.pp is not None:
            return self
        return dataclasses.replace(self, tp=layout.parallel.tensor if self.tp is None else self.tp,
                                   pp=layout.parallel.pipeline if self.pp is None else self.pp)

    # ---- derived ----------------------------------------------------------------------------------
    @property
    def act_dtype(self) -> str:
        return mem.activation_dtype(self.precision)

    @property
    def kv(self) -> str:
        return self.kv_dtype or self.act_dtype

    @property
    def gpus(self) -> int:
        return (self.tp or 1) * (self.pp or 1)

    @property
    def kernel_backend(self) -> str:
        """The kernel backend whose efficiency terms the roofline uses (`kernels`, or the default)."""
        return self.kernels or DEFAULT_KERNELS

    @property
    def context(self) -> int:
        return self.prompt + self.gen
