"""Hardware profiles: one YAML file per GPU in profiles/hardware/, loaded by name.

A profile holds datasheet peaks (memory, HBM bandwidth, dense tensor FLOP/s per precision, interconnect),
the source of every figure, and an `efficiency` block: the achieved fraction of each peak (GEMM,
attention, scan, memory traffic) plus a fixed cost per kernel launch. The roofline in
`designer.profile.roofline` multiplies peaks by these fractions; the measured profiler calibrates them.

The exported model runs on one of two kernel backends (KERNEL_BACKENDS: `torch`, the plain PyTorch
reference, and `triton`, fla-core's kernels), which pay different costs: an optional `kernels:` block holds
per-backend overrides of `efficiency` fields (`Hardware.efficiency_for(backend)`), and `calibration:` the
provenance of a fit (free-form). docs/measure.md describes the terms.

No torch import here.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from designer.layout import REPO_ROOT, LayoutError

HARDWARE_DIR = REPO_ROOT / "profiles" / "hardware"

# Compute precisions a profile may list peaks for. A precision the GPU lacks falls back to the next
# wider one it has (fp4 weights on an H100 run through its fp8 tensor cores, fp8 on an A100 through bf16).
PRECISION_FALLBACK: dict[str, tuple[str, ...]] = {
    "fp4": ("fp4", "fp8", "bf16"),
    "fp8": ("fp8", "bf16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
    "tf32": ("tf32", "fp32"),
    "fp32": ("fp32",),
}


# Kernel backends of the exported model (designer/export/templates/model.py); the default is the fast path.
KERNEL_BACKENDS = ("torch", "triton")
DEFAULT_KERNELS = "triton"
# Efficiency's per-kind fields (`mamba_*`, `attention_*`, `mlp_*`) by BlockCost.kind: MoE blocks count as MLP.
KIND_GROUP = {"mamba": "mamba", "attention": "attention", "mlp": "mlp", "moe": "mlp"}
# How each Efficiency field is checked: fractions of a peak in (0, 1], counts >= 0, seconds in [0, 1).
_FRACTIONS = ("gemm", "attention", "scan", "memory", "gemm_fp8", "decode_gemm_memory", "attention_decode_memory")
_COUNTS = ("mamba_elementwise_passes", "attention_elementwise_passes", "mlp_elementwise_passes",
           "state_update_passes", "scan_memory_passes", "mamba_kernels", "attention_kernels", "mlp_kernels",
           "mamba_decode_kernels", "attention_decode_kernels")
_SECONDS = ("kernel_overhead_s", "decode_kernel_overhead_s")


class HardwareError(LayoutError):
    """Unknown hardware name or a malformed profile; exits 2 on the CLI like any bad input."""


def check_kernels(kernels: str | None) -> None:
    """A kernel backend name (None = the default) or HardwareError saying which are allowed."""
    if kernels is not None and kernels not in KERNEL_BACKENDS:
        raise HardwareError(f"unknown kernel backend {kernels!r}; allowed: {', '.join(KERNEL_BACKENDS)}",
                            key="kernels")


@dataclass(frozen=True)
class Efficiency:
    """Achieved fraction of a peak per kind of work, and a fixed cost per kernel launch (seconds).

    bench/gpu_calibrate.py measures these on a GPU; the optional fractions fall back to the general one
    (gemm_fp8 -> gemm, decode_gemm_memory and attention_decode_memory -> memory) when not measured.

    The terms after `calibrated` are what a kernel backend pays beyond the plain roofline (docs/measure.md).
    Their defaults leave the roofline as it was: no extra elementwise passes, the SSM and conv state read and
    written once per decode step, the scan core's bytes counted once, one launch cost, BlockCost.kernels.
    """

    gemm: float = 0.81          # large bf16 GEMM, of the bf16 peak
    attention: float = 0.5      # flash-attention prefill, of the bf16 peak
    scan: float = 0.3           # Mamba SSD / selective-scan kernels, of the bf16 peak
    memory: float = 0.9         # streaming copy, of the HBM peak
    kernel_overhead_s: float = 4e-6   # one kernel launch
    gemm_fp8: float | None = None                  # large fp8 GEMM, of the fp8 peak
    decode_gemm_memory: float | None = None        # weights streamed by skinny (decode) GEMMs, of the HBM peak
    attention_decode_memory: float | None = None   # KV cache read by decode attention, of the HBM peak
    calibrated: bool = False    # true once measured on this GPU
    # extra passes over a block's per-token activations at the memory rate, added to its time per pass:
    # conv, gating, dt/softplus, D skip, norms, dtype conversions that do not overlap the GEMMs
    mamba_elementwise_passes: float = 0.0
    attention_elementwise_passes: float = 0.0
    mlp_elementwise_passes: float = 0.0            # MLP (-) and MoE (E) blocks
    state_update_passes: float = 2.0               # decode: passes over the SSM + conv state per step (read, write)
    scan_memory_passes: float = 1.0                # prefill: multiplier on the scan core's bytes term
    decode_kernel_overhead_s: float | None = None  # one launch in a decode step (a CUDA graph launches cheaper)
    mamba_kernels: float | None = None             # launches per block of that kind and pass; None: BlockCost's
    attention_kernels: float | None = None
    mlp_kernels: float | None = None               # MLP (-) and MoE (E) blocks
    # graph nodes per block of that kind in one decode step (Mamba decodes with a state-update step, attention
    # with a decode kernel over the cache, not the prefill's kernels); None: the kind's prefill count above.
    # An MLP or MoE block runs the same kernels in both, so it has one count.
    mamba_decode_kernels: float | None = None
    attention_decode_kernels: float | None = None

    def __post_init__(self) -> None:
        optional = {f.name for f in dataclasses.fields(self) if f.default is None}
        for name in _FRACTIONS + _COUNTS + _SECONDS:
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise HardwareError(f"efficiency.{name} must be a finite number, got {value!r}")
            if name in _FRACTIONS and not (0.0 < value <= 1.0):
                raise HardwareError(f"efficiency.{name} must be a fraction in (0, 1], got {value!r}")
            if name in _COUNTS and value < 0:
                raise HardwareError(f"efficiency.{name} must be a number >= 0, got {value!r}")
            if name in _SECONDS and not (0.0 <= value < 1.0):
                raise HardwareError(f"efficiency.{name} must be in [0, 1) seconds, got {value!r}")

    def gemm_for(self, precision: str) -> float:
        """GEMM fraction for a compute precision (fp8/fp4 GEMMs use the fp8 measurement when there is one)."""
        return self.gemm_fp8 if precision in ("fp8", "fp4") and self.gemm_fp8 is not None else self.gemm

    @property
    def weights_memory(self) -> float:
        return self.decode_gemm_memory if self.decode_gemm_memory is not None else self.memory

    @property
    def kv_memory(self) -> float:
        return self.attention_decode_memory if self.attention_decode_memory is not None else self.memory

    @property
    def decode_kernel_s(self) -> float:
        """Cost of one kernel launch in a decode step."""
        return self.decode_kernel_overhead_s if self.decode_kernel_overhead_s is not None else self.kernel_overhead_s

    def elementwise_passes(self, kind: str) -> float:
        """Extra activation passes of a block of this BlockCost.kind (mamba | attention | mlp | moe)."""
        return getattr(self, f"{KIND_GROUP[kind]}_elementwise_passes")

    def kernels(self, kind: str, default: float) -> float:
        """Kernel launches of a block of this kind per pass; `default` (BlockCost.kernels) when not set."""
        value = getattr(self, f"{KIND_GROUP[kind]}_kernels")
        return default if value is None else value

    def decode_kernels(self, kind: str, default: float) -> float:
        """Kernel launches (graph nodes) of a block of this kind per decode step; its prefill count when not set."""
        value = getattr(self, f"{KIND_GROUP[kind]}_decode_kernels", None)
        return self.kernels(kind, default) if value is None else value


@dataclass(frozen=True)
class Hardware:
    name: str
    display_name: str
    memory_bytes: int
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: dict[str, float]
    interconnect: str
    interconnect_bandwidth_bytes_per_s: float    # per GPU, per direction (what a ring all-reduce step uses)
    interconnect_latency_s: float                # per collective call
    efficiency: Efficiency = field(default_factory=Efficiency)
    sources: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    kernels: dict[str, dict[str, Any]] = field(default_factory=dict)   # backend -> Efficiency fields it overrides
    calibration: dict[str, Any] = field(default_factory=dict)          # provenance of the fit (free-form)

    def __post_init__(self) -> None:
        for backend in self.kernels:            # every override block must make a valid Efficiency
            self.efficiency_for(backend)

    def efficiency_for(self, kernels: str | None) -> Efficiency:
        """`efficiency` with kernel backend `kernels`' overrides applied (None: the default backend); the
        general `efficiency` for a backend the profile has no `kernels:` block for."""
        kernels = DEFAULT_KERNELS if kernels is None else kernels
        check_kernels(kernels)
        return _with_overrides(self.efficiency, self.kernels.get(kernels) or {}, f"kernels.{kernels}")

    def peak(self, precision: str) -> float:
        """Dense tensor FLOP/s for a compute precision, falling back to a wider one the GPU has."""
        for p in PRECISION_FALLBACK.get(precision, (precision,)):
            if p in self.peak_flops_per_s:
                return self.peak_flops_per_s[p]
        raise HardwareError(f"{self.name} lists no peak for {precision!r} or a wider precision; "
                            f"it has {', '.join(self.peak_flops_per_s)}")

    def compute_precision(self, precision: str) -> str:
        """Which of the GPU's peaks a precision actually runs at (see PRECISION_FALLBACK)."""
        for p in PRECISION_FALLBACK.get(precision, (precision,)):
            if p in self.peak_flops_per_s:
                return p
        return precision

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_EFFICIENCY_FIELDS = {f.name for f in dataclasses.fields(Efficiency)}


def _with_overrides(base: Efficiency, overrides: dict[str, Any], where: str, source: str | None = None) -> Efficiency:
    """`base` with `overrides` (Efficiency field -> value) applied; errors name `where` (`kernels.torch`)."""
    if not overrides:
        return base
    unknown = sorted(map(str, set(overrides) - _EFFICIENCY_FIELDS))
    if unknown:
        raise HardwareError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_EFFICIENCY_FIELDS))}",
                            source=source, key=where)
    try:
        return dataclasses.replace(base, **overrides)
    except HardwareError as e:
        raise HardwareError(e.message.replace("efficiency.", f"{where}.", 1), source=source, key=where) from None


def hardware_names() -> list[str]:
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml"))


def _number(data: dict, key: str, source: str, *, positive: bool = True, where: str | None = None) -> float:
    value = data.get(key)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0) or value < 0:
        raise HardwareError(f"must be a {'positive' if positive else 'non-negative'} number, got {data.get(key)!r}",
                            source=source, key=f"{where}.{key}" if where else key)
    return float(value)


def hardware_from_dict(data: Any, *, source: str = "<dict>") -> Hardware:
    if not isinstance(data, dict):
        raise HardwareError(f"a hardware profile must be a mapping, got {type(data).__name__}", source=source)
    allowed = {f.name for f in dataclasses.fields(Hardware)}
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            raise HardwareError("unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
                                + f"; allowed: {', '.join(sorted(allowed))}", source=source, key=str(key))
    for key in ("name", "memory_bytes", "memory_bandwidth_bytes_per_s", "peak_flops_per_s"):
        if key not in data:
            raise HardwareError("missing", source=source, key=key)
    peaks_raw = data["peak_flops_per_s"]
    if not isinstance(peaks_raw, dict) or not peaks_raw:
        raise HardwareError("must map precisions (bf16, fp8, ...) to FLOP/s", source=source, key="peak_flops_per_s")
    peaks = {str(k): _number(peaks_raw, k, source) for k in peaks_raw}
    efficiency = _with_overrides(Efficiency(), _efficiency_fields(data.get("efficiency"), "efficiency", source),
                                 "efficiency", source)
    kernels_raw = data.get("kernels") or {}
    if not isinstance(kernels_raw, dict):
        raise HardwareError(f"must map kernel backends ({', '.join(KERNEL_BACKENDS)}) to efficiency fields, "
                            f"got {type(kernels_raw).__name__}", source=source, key="kernels")
    kernels: dict[str, dict[str, Any]] = {}
    for backend, raw in kernels_raw.items():
        if backend not in KERNEL_BACKENDS:
            raise HardwareError(f"unknown kernel backend {backend!r}; allowed: {', '.join(KERNEL_BACKENDS)}",
                                source=source, key=f"kernels.{backend}")
        kernels[backend] = _efficiency_fields(raw, f"kernels.{backend}", source)
        _with_overrides(efficiency, kernels[backend], f"kernels.{backend}", source)    # checks the values
    calibration = data.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise HardwareError(f"must be a mapping (gpu, driver, torch, packages, date, command, source), got "
                            f"{type(calibration).__name__}", source=source, key="calibration")
    return Hardware(
        name=str(data["name"]),
        display_name=str(data.get("display_name", data["name"])),
        memory_bytes=int(_number(data, "memory_bytes", source)),
        memory_bandwidth_bytes_per_s=_number(data, "memory_bandwidth_bytes_per_s", source),
        peak_flops_per_s=peaks,
        interconnect=str(data.get("interconnect", "")),
        interconnect_bandwidth_bytes_per_s=_number(data, "interconnect_bandwidth_bytes_per_s", source)
        if "interconnect_bandwidth_bytes_per_s" in data else 32e9,
        interconnect_latency_s=_number(data, "interconnect_latency_s", source, positive=False)
        if "interconnect_latency_s" in data else 1e-5,
        efficiency=efficiency,
        sources={str(k): str(v) for k, v in (data.get("sources") or {}).items()},
        notes=str(data.get("notes", "")),
        kernels=kernels,
        calibration=_plain(calibration),
    )


def _efficiency_fields(raw: Any, where: str, source: str) -> dict[str, Any]:
    """Efficiency keyword arguments from a profile's `efficiency` (or `kernels.BACKEND`) mapping, numbers
    checked; the values' ranges are checked by Efficiency itself."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise HardwareError(f"must map efficiency fields to numbers, got {type(raw).__name__}", source=source,
                            key=where)
    bad = sorted(map(str, set(raw) - _EFFICIENCY_FIELDS))
    if bad:
        raise HardwareError(f"unknown key(s) {bad}; allowed: {', '.join(sorted(_EFFICIENCY_FIELDS))}",
                            source=source, key=where)
    return {k: bool(v) if k == "calibrated" else None if v is None
            else _number(raw, k, source, positive=False, where=where) for k, v in raw.items()}


def _plain(value: Any) -> Any:
    """YAML values as JSON-ready ones (a YAML date becomes its ISO string)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


_CACHE: dict[str, Hardware] = {}


def load_hardware(ref: "str | Path | Hardware") -> Hardware:
    """A profile by name (`h100-sxm`) or by path to a YAML file. Unknown names get a did-you-mean."""
    if isinstance(ref, Hardware):
        return ref
    key = str(ref)
    if key in _CACHE:
        return _CACHE[key]
    path = Path(key)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = HARDWARE_DIR / f"{key}.yaml"
        if not path.is_file():
            names = hardware_names()
            close = [n for n in names if n.startswith(key.lower())] \
                or difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.5)
            raise HardwareError(f"unknown hardware {key!r}" + (f" (did you mean '{close[0]}'?)" if close else "")
                                + f"; known: {', '.join(names)}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise HardwareError(f"cannot read hardware profile: {e}", source=str(path)) from None
    hw = hardware_from_dict(data, source=str(path))
    _CACHE[key] = hw
    return hw


def forget_loaded(path: "str | Path") -> None:
    """Drop a profile file from load_hardware's cache (keyed by name or by path) once the file has changed,
    so this process reads it anew."""
    target = Path(path).resolve()
    for key in list(_CACHE):
        file = Path(key) if Path(key).suffix in (".yaml", ".yml") else HARDWARE_DIR / f"{key}.yaml"
        if file.resolve() == target:
            del _CACHE[key]
