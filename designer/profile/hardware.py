"""Hardware profiles: one YAML file per GPU in profiles/hardware/, loaded by name.

A profile holds datasheet peaks (memory, HBM bandwidth, dense tensor FLOP/s per precision, interconnect),
the source of every figure, and an `efficiency` block: the achieved fraction of each peak (GEMM,
attention, scan, memory traffic) plus a fixed cost per kernel launch. The roofline in
`designer.profile.roofline` multiplies peaks by these fractions; the measured profiler calibrates them.

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


class HardwareError(LayoutError):
    """Unknown hardware name or a malformed profile; exits 2 on the CLI like any bad input."""


@dataclass(frozen=True)
class Efficiency:
    """Achieved fraction of a peak per kind of work, and a fixed cost per kernel launch (seconds).

    bench/gpu_calibrate.py measures these on a GPU; the optional fractions fall back to the general one
    (gemm_fp8 -> gemm, decode_gemm_memory and attention_decode_memory -> memory) when not measured.
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

    def __post_init__(self) -> None:
        for name in ("gemm", "attention", "scan", "memory", "gemm_fp8", "decode_gemm_memory",
                     "attention_decode_memory"):
            value = getattr(self, name)
            if value is not None and not (0.0 < value <= 1.0):
                raise HardwareError(f"efficiency.{name} must be a fraction in (0, 1], got {value!r}")
        if not (0.0 <= self.kernel_overhead_s < 1.0):
            raise HardwareError(f"efficiency.kernel_overhead_s must be in [0, 1) seconds, "
                                f"got {self.kernel_overhead_s!r}")

    def gemm_for(self, precision: str) -> float:
        """GEMM fraction for a compute precision (fp8/fp4 GEMMs use the fp8 measurement when there is one)."""
        return self.gemm_fp8 if precision in ("fp8", "fp4") and self.gemm_fp8 is not None else self.gemm

    @property
    def weights_memory(self) -> float:
        return self.decode_gemm_memory if self.decode_gemm_memory is not None else self.memory

    @property
    def kv_memory(self) -> float:
        return self.attention_decode_memory if self.attention_decode_memory is not None else self.memory


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


def hardware_names() -> list[str]:
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml"))


def _number(data: dict, key: str, source: str, *, positive: bool = True) -> float:
    value = data.get(key)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0) or value < 0:
        raise HardwareError(f"must be a {'positive ' if positive else ''}number, got {data.get(key)!r}",
                            source=source, key=key)
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
    eff_raw = data.get("efficiency") or {}
    eff_fields = {f.name for f in dataclasses.fields(Efficiency)}
    bad = set(eff_raw) - eff_fields
    if bad:
        raise HardwareError(f"unknown key(s) {sorted(bad)}; allowed: {', '.join(sorted(eff_fields))}",
                            source=source, key="efficiency")
    eff_kwargs: dict[str, Any] = {k: bool(v) if k == "calibrated" else None if v is None
                                  else _number(eff_raw, k, source, positive=False) for k, v in eff_raw.items()}
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
        efficiency=Efficiency(**eff_kwargs),
        sources={str(k): str(v) for k, v in (data.get("sources") or {}).items()},
        notes=str(data.get("notes", "")),
    )


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
