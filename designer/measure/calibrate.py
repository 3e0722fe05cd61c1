"""Fit a hardware profile's per-backend efficiency terms to micro-benchmarks (`designer calibrate`,
docs/calibrate.md), and write them into the profile.

`fit(micro, hardware, kernels)` takes one backend's `run_micro` result (designer.measure.micro) and chooses
`Efficiency` overrides that minimise the squared log-ratio between the roofline's predictions and the
measured times of the block models (one block for prefill; the block repeated R times, the point's
"repeat", for decode: designer.measure.micro.DECODE_REPEAT says why). What is compared is the blocks' own
time: the block model's time less its layout's shell (the same model with no block, measured at the same
shape), against `Roofline(R + 1 blocks) - Roofline(1 block)` (`Scenario(kernels=K, prefill_mode="parallel")`,
`prefill_s(batch, prompt)`, `tpot_s(batch, context)`), so the fixed cost of the embedding, final norm and LM
head is not charged to the block (and so to every block of a whole model). Without a shell point, the block
model's time against `Roofline(R blocks)`. A point without "repeat" (runs before it existed) has R = 1: the
fit of such a file is what it always was. Only terms the data identifies are fitted:

- a term is a candidate if `Efficiency` has it (so this works with any version of the profile);
- the machine constants `gemm`, `memory`, `kernel_overhead_s`, `decode_kernel_overhead_s` are fixed at their
  component measurement (large projection GEMMs, a device copy, an empty kernel launched eagerly, and replayed
  in a CUDA graph: or launched eagerly when the fit matches eager decode) when there is one (COMPONENT_FIRST);
- any other term is dropped when the predictions do not move with it at these points, or when its effect
  is a combination of terms earlier in TERMS (e.g. `memory` once every block kind's elementwise passes and
  the state passes are fitted: they only ever appear as passes / memory rate); a dropped term takes its
  component measurement when there is one, else keeps the profile's value.

No torch here: a fit runs anywhere from a saved micro JSON (`designer calibrate --from FILE`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from designer.layout import Layout, LayoutError, atomic_write_text, layout_from_dict
from designer.measure import error_summary
from designer.profile.hardware import HARDWARE_DIR, Efficiency, Hardware, HardwareError, forget_loaded, \
    hardware_from_dict, load_hardware
from designer.profile.roofline import Roofline
from designer.profile.scenario import Scenario

DECODE_MODES = ("graph", "eager")
# a point is fitted on its block's own time (single-block model - shell) only when that is at least this
# share of the single-block model's time
SHELL_SHARE_MIN = 0.25
FILE_FORMAT = "designer.calibrate/1"


class CalibrationError(ValueError):
    """Micro-benchmark data that cannot be fitted (malformed, or nothing measured); the CLI's exit 2."""


@dataclass(frozen=True)
class Term:
    """An Efficiency field the fit may set: bounds, a typical magnitude (the fit works in value / scale) and
    the start used when the profile's value is unset (None) or zero."""

    name: str
    lower: float
    upper: float
    scale: float
    start: float


def _fraction(name: str) -> Term:
    return Term(name, 1e-6, 1.0, 0.5, 0.5)


def _passes(name: str) -> Term:
    return Term(name, 0.0, 500.0, 2.0, 1.0)


def _kernels(name: str) -> Term:
    return Term(name, 0.0, 2000.0, 10.0, 8.0)


# Candidates in priority order: when a term's effect on the predictions is a combination of earlier ones,
# it is not fitted. The terms a component measures directly (gemm, memory, kernel_overhead_s; and
# decode_kernel_overhead_s, which only ever multiplies the decode node counts) come last or are fixed, so
# they are the ones fixed by their measurement when the single-block points cannot tell them apart.
TERMS: tuple[Term, ...] = (
    _fraction("attention"), _fraction("scan"),
    _passes("mamba_elementwise_passes"), _passes("attention_elementwise_passes"), _passes("mlp_elementwise_passes"),
    _kernels("mamba_kernels"), _kernels("attention_kernels"), _kernels("mlp_kernels"),
    _fraction("decode_gemm_memory"), _fraction("attention_decode_memory"),
    _passes("state_update_passes"),
    _kernels("mamba_decode_kernels"), _kernels("attention_decode_kernels"),
    Term("decode_kernel_overhead_s", 0.0, 1e-2, 5e-6, 3e-6),
    _fraction("gemm"), _fraction("memory"), Term("kernel_overhead_s", 0.0, 1e-2, 5e-6, 5e-6),
)
# Efficiency's per-kind kernel counts -> the BlockCost kind whose analytic count is their start
_KERNEL_KIND = {"mamba_kernels": ("mamba",), "attention_kernels": ("attention",), "mlp_kernels": ("mlp", "moe"),
                "mamba_decode_kernels": ("mamba",), "attention_decode_kernels": ("attention",)}
# Machine constants a component measures directly: fixed at that measurement when there is one (the
# single-block points tell them from the backend terms only weakly: gemm from the elementwise passes through
# relu2 vs SwiGLU MLPs alone), fitted like the others when there is none.
COMPONENT_FIRST = frozenset({"gemm", "memory", "kernel_overhead_s", "decode_kernel_overhead_s"})
# Fitted terms a component measures as the same quantity the roofline uses it for (SDPA FLOP/s, SSD scan +
# conv FLOP/s, skinny-GEMM weight bytes/s, decode-attention KV bytes/s) get that measurement as a weak prior:
# one extra residual PRIOR_WEIGHT * log(value / component), so a 10% departure costs what one point off by 1%
# does. Directions the points pin down are theirs; nearly degenerate ones (scan vs the Mamba elementwise
# passes, both growing with the tokens; decode weight bandwidth vs decode launch cost) follow the component.
PRIORS = ("attention", "scan", "decode_gemm_memory", "attention_decode_memory")
PRIOR_WEIGHT = 0.1
NO_EFFECT_TOL = 1e-6       # |d log t / d (value / scale)| below this at every point: the data cannot see the term
DEGENERATE_TOL = 1e-2      # the part of a term's effect not explained by earlier terms, relative


def efficiency_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Efficiency)}


# --------------------------------------------------------------------------------------------------
# reading micro-benchmark data


def check_micro(micro: Any, where: str = "micro-benchmarks") -> dict[str, Any]:
    """`micro` if it is one backend's run_micro result; CalibrationError naming what is missing."""
    if not isinstance(micro, dict):
        raise CalibrationError(f"{where}: expected a mapping from `designer calibrate --out`, got "
                               f"{type(micro).__name__}")
    for key, kind in (("kernels", str), ("device", str), ("dtype", str), ("blocks", list), ("points", list)):
        if not isinstance(micro.get(key), kind):
            raise CalibrationError(f"{where}: missing or malformed {key!r} (not a micro-benchmark run of "
                                   f"`designer calibrate --out`)")
    for i, block in enumerate(micro["blocks"]):
        if not isinstance(block, dict) or not isinstance(block.get("key"), str):
            raise CalibrationError(f"{where}: blocks[{i}] has no 'key'")
    for i, p in enumerate(micro["points"]):
        if not isinstance(p, dict) or p.get("metric") not in ("prefill", "decode") or "block" not in p:
            raise CalibrationError(f"{where}: points[{i}] is not a prefill or decode point")
        for key in ("batch", "prompt" if p["metric"] == "prefill" else "context") + (("repeat",) if "repeat" in p
                                                                                     else ()):
            value = p.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CalibrationError(f"{where}: points[{i}].{key} must be a positive integer, got {value!r}")
    if not isinstance(micro.get("components", []), list):
        raise CalibrationError(f"{where}: 'components' must be a list")
    return micro


def load_micro_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """backend -> run_micro result, from a file `designer calibrate --out` wrote (or a bare run_micro JSON)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"cannot read {path}: {e.__class__.__name__}: {e}") from None
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(doc, dict) and isinstance(doc.get("micro"), dict):
        runs = {k: v for k, v in doc["micro"].items()
                if not (isinstance(v, dict) and "error" in v and "points" not in v)}   # a backend that failed
        if not runs:
            raise CalibrationError(f"{path}: no backend was measured ({', '.join(doc['micro']) or 'none'} failed)")
        return {k: check_micro(v, f"{path} micro.{k}") for k, v in runs.items()}
    micro = check_micro(doc, str(path))
    return {micro["kernels"]: micro}


def precision_of(micro: dict[str, Any]) -> str:
    return "bf16" if micro["dtype"] in ("bfloat16", "float16") else "fp32"


def _measured(p: dict[str, Any]) -> bool:
    t = p.get("measured_s")
    return isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0


def repeat_of(p: dict[str, Any]) -> int:
    """How many copies of its block a point's model ran: its "repeat" (decode points of newer runs), else 1."""
    return int(p.get("repeat", 1))


def _shell_match(layout: str | None, p: dict[str, Any]) -> tuple:
    """What a block point shares with its layout's shell point: prefill (batch, prompt); decode (mode, batch)."""
    if p["metric"] == "prefill":
        return layout, "prefill", None, p["batch"], p["prompt"]
    return layout, "decode", p.get("mode", "eager"), p["batch"], None


def split_points(micro: dict[str, Any], decode: str = "graph") -> tuple[list[dict], list[dict], str]:
    """(points fitted, measured points not fitted, the decode mode fitted), block points only, each a copy
    with "shell_s" (its layout's shell at the same shape, None when not measured) and "target_s": the block's
    own time, measured_s - shell_s (measured_s without a shell). Decode points of the other mode are not
    fitted (with no graph point measured, a CPU run, the eager ones are), nor is a point whose block takes
    less than SHELL_SHARE_MIN of its single-block model's time (the difference would be mostly noise)."""
    if decode not in DECODE_MODES:
        raise CalibrationError(f"unknown decode mode {decode!r}; allowed: {', '.join(DECODE_MODES)}")
    layout_of = {b["key"]: b.get("layout") for b in micro["blocks"]}
    shells = {b["key"] for b in micro["blocks"] if b.get("kind") == "shell"}
    shell_s = {_shell_match(layout_of.get(p["block"]), p): p["measured_s"] for p in micro["points"]
               if p["block"] in shells and _measured(p)}
    measured = []
    for p in micro["points"]:
        if p["block"] in shells or not _measured(p):
            continue
        shell = shell_s.get(_shell_match(layout_of.get(p["block"]), p))
        target = p["measured_s"] - (shell or 0.0)
        measured.append({**p, "shell_s": shell, "target_s": target})
    decodes = {p.get("mode", "eager") for p in measured if p["metric"] == "decode"}
    mode = decode if decode in decodes or not decodes else next(m for m in DECODE_MODES if m in decodes)
    used, unfitted = [], []
    for p in measured:
        if p["target_s"] < SHELL_SHARE_MIN * p["measured_s"]:
            unfitted.append({**p, "note": "the block is under a quarter of its model's time"})
        elif p["metric"] == "decode" and p.get("mode", "eager") != mode:
            unfitted.append(p)
        else:
            used.append(p)
    return used, unfitted, mode


# --------------------------------------------------------------------------------------------------
# component measurements -> efficiency terms


def component_efficiency(micro: dict[str, Any], hardware: Hardware, decode: str = "graph") -> dict[str, dict[str, Any]]:
    """Efficiency terms measured directly by the component benchmarks: field -> {"value", "from"}.
    Fractions are time-weighted (total work / total time), so they predict the sum of the measured kernels.
    A decode node costs a graph replay of an empty kernel, or with `decode` "eager" its eager launch."""
    comps = [c for c in micro.get("components", []) if isinstance(c, dict)]
    precision = precision_of(micro)
    peak, hbm = hardware.peak(precision), hardware.memory_bandwidth_bytes_per_s
    out: dict[str, dict[str, Any]] = {}

    def rate(selected: list[dict], key: str) -> float | None:
        selected = [c for c in selected if _measured(c) and isinstance(c.get(key), (int, float))]
        total_s = sum(c["measured_s"] for c in selected)
        return sum(c[key] for c in selected) / total_s if selected and total_s > 0 else None

    def put(name: str, value: float | None, source: str, fraction: bool = True) -> None:
        if value is not None and value > 0 and math.isfinite(value):
            out[name] = {"value": min(max(value, 1e-6), 1.0) if fraction else value, "from": source}

    gemms = [c for c in comps if c.get("name") == "gemm" and c.get("op") != "lm_head"]
    r = rate([c for c in gemms if c.get("tokens", 0) >= 1024], "flops")
    put("gemm", r and r / peak, "block projection GEMMs at >= 1024 tokens (FLOP/s of the peak)")
    r = rate([c for c in comps if c.get("name") == "gemm" and c.get("tokens", 1 << 30) <= 64], "bytes")
    put("decode_gemm_memory", r and r / hbm, "projection and LM-head GEMMs at <= 64 tokens (bytes/s of HBM)")
    r = rate([c for c in comps if c.get("name") == "sdpa_prefill"], "flops")
    put("attention", r and r / peak, "causal SDPA prefill (FLOP/s of the peak)")
    r = rate([c for c in comps if c.get("name") == "sdpa_decode"], "bytes")
    put("attention_decode_memory", r and r / hbm, "decode attention over the KV cache (bytes/s of HBM)")
    r = rate([c for c in comps if c.get("name") in ("ssd_scan", "causal_conv")], "flops")
    put("scan", r and r / peak, "SSD scan + causal conv (analytic FLOPs per second of the peak)")
    r = rate([c for c in comps if c.get("name") == "copy"], "bytes")
    put("memory", r and r / hbm, "device-to-device copy (bytes/s of HBM)")
    launch = next((c for c in comps if c.get("name") == "launch"), {})
    put("kernel_overhead_s", launch.get("eager_small_kernel_s"), "an empty kernel launched eagerly", False)
    node, what = (("graph_small_kernel_s", "an empty kernel replayed in a CUDA graph") if decode == "graph" else
                  ("eager_small_kernel_s", "an empty kernel launched eagerly (eager decode)"))
    put("decode_kernel_overhead_s", launch.get(node), what, False)
    fields = efficiency_fields()
    return {k: v for k, v in out.items() if k in fields}


# --------------------------------------------------------------------------------------------------
# the roofline of the single-block layouts


class _Predictor:
    """Roofline predictions of the points' target times for a trial Efficiency: for a point measured beside
    its shell, the own time of its model's R blocks (R = the point's "repeat", 1 when absent),
    `Roofline(R + 1 blocks) - Roofline(1 block)` (the embedding and head cancel); the whole model's time,
    `Roofline(R blocks)`, otherwise."""

    def __init__(self, micro: dict[str, Any], hardware: Hardware, kernels: str, points: list[dict],
                 others: list[dict] = ()):
        """`points`: those predict() evaluates by default; `others`: further points it may be asked about."""
        self.points = points
        keys = {p["block"] for p in [*points, *others]}
        self.layouts: dict[str, Layout] = {}
        for block in micro["blocks"]:
            if block["key"] in keys:
                try:
                    one = layout_from_dict(block.get("single_block"))
                except LayoutError as e:
                    raise CalibrationError(f"block {block['key']}: bad single-block layout: {e}") from None
                self.layouts[block["key"]] = one
        missing = keys - set(self.layouts)
        if missing:
            raise CalibrationError(f"points refer to blocks with no layout: {', '.join(sorted(missing))}")
        extra = {"kernels": kernels} if "kernels" in Scenario.fields() else {}
        self.scenario = Scenario(precision=precision_of(micro), tp=1, pp=1, prefill_mode="parallel", **extra)
        self.hardware = hardware
        # per-backend overrides cleared: the trial Efficiency is the whole truth
        self._clear = {"kernels": {}} if "kernels" in {f.name for f in dataclasses.fields(Hardware)} else {}

    def predict(self, eff: Efficiency, points: list[dict] | None = None) -> np.ndarray:
        points = self.points if points is None else points
        hw = dataclasses.replace(self.hardware, efficiency=eff, **self._clear)
        roofs: dict[tuple[str, int], Roofline] = {}

        def seconds(key: str, blocks: int, p: dict) -> float:
            if (key, blocks) not in roofs:
                one = self.layouts[key]
                roofs[key, blocks] = Roofline(one.with_pattern(one.pattern * blocks), hw, self.scenario)
            r = roofs[key, blocks]
            if p["metric"] == "prefill":
                return r.prefill_s(p["batch"], p["prompt"])
            return r.tpot_s(p["batch"], p["context"])

        out = []
        for p in points:
            n = repeat_of(p)
            out.append(seconds(p["block"], n + 1, p) - seconds(p["block"], 1, p) if p.get("shell_s") is not None
                       else seconds(p["block"], n, p))
        return np.asarray(out, dtype=float)


def _start(term: Term, base: Efficiency, component: dict[str, dict], predictor: _Predictor) -> float:
    if term.name in component:
        value = component[term.name]["value"]
    else:
        value = getattr(base, term.name)
        if term.name in _KERNEL_KIND:   # Efficiency's own fallback: an unset decode count is the prefill count
            kind = _KERNEL_KIND[term.name][0]
            value = (base.decode_kernels if "_decode_" in term.name else base.kernels)(kind, None)
        if value is None and term.name in _KERNEL_KIND:
            value = _analytic_kernels(predictor, term.name) or term.start
        elif value is None and term.name == "decode_gemm_memory":
            value = base.weights_memory
        elif value is None and term.name == "attention_decode_memory":
            value = base.kv_memory
        elif value is None or (value == 0 and term.lower == 0):
            value = term.start
    return min(max(float(value), term.lower + 1e-3 * term.scale), term.upper - 1e-6 * term.scale)


def _analytic_kernels(predictor: _Predictor, name: str) -> float | None:
    from designer.profile.blocks import block_costs
    for lay in predictor.layouts.values():
        for c in block_costs(lay, 1).values():
            if c.kind in _KERNEL_KIND[name]:
                return float(c.kernels)
    return None


# --------------------------------------------------------------------------------------------------
# solving


def _jacobian(fun: Callable[[np.ndarray], np.ndarray], u: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              step: float = 1e-4) -> np.ndarray:
    """Central differences where the bounds allow, one-sided at a bound."""
    cols = []
    for i in range(len(u)):
        up, down = u.copy(), u.copy()
        up[i] = min(u[i] + step, hi[i])
        down[i] = max(u[i] - step, lo[i])
        cols.append((fun(up) - fun(down)) / (up[i] - down[i]))
    return np.stack(cols, axis=1) if cols else np.zeros((len(fun(u)), 0))


def _select(J: np.ndarray, names: list[str]) -> tuple[list[int], dict[str, str]]:
    """Indices of the columns the data identifies, in order; the others with the reason."""
    kept: list[int] = []
    dropped: dict[str, str] = {}
    for j, name in enumerate(names):
        col = J[:, j]
        norm = float(np.linalg.norm(col, ord=np.inf))
        if norm < NO_EFFECT_TOL:
            dropped[name] = "no effect at the measured points"
            continue
        if kept:
            A = J[:, kept]
            coef, *_ = np.linalg.lstsq(A, col, rcond=None)
            rest = float(np.linalg.norm(col - A @ coef)) / float(np.linalg.norm(col))
            if rest < DEGENERATE_TOL:
                big = [names[kept[i]] for i in np.argsort(-np.abs(coef))[:3] if abs(coef[i]) > 1e-9]
                dropped[name] = f"not separable from {', '.join(big)}"
                continue
        kept.append(j)
    return kept, dropped


def _least_squares_numpy(fun: Callable[[np.ndarray], np.ndarray], u0: np.ndarray, lo: np.ndarray,
                         hi: np.ndarray, max_iter: int = 300) -> np.ndarray:
    """Projected Levenberg-Marquardt (the fallback when scipy is not installed)."""
    u, r = u0.copy(), fun(u0)
    cost, lam = float(r @ r), 1e-3
    for _ in range(max_iter):
        J = _jacobian(fun, u, lo, hi, step=1e-6)
        g, H = J.T @ r, J.T @ J
        improved = False
        for _ in range(30):
            step = np.linalg.solve(H + lam * (np.diag(np.diag(H)) + 1e-12 * np.eye(len(u))), -g)
            trial = np.clip(u + step, lo, hi)
            r_trial = fun(trial)
            c_trial = float(r_trial @ r_trial)
            if c_trial < cost:
                done = cost - c_trial <= 1e-15 * max(cost, 1e-30) or np.max(np.abs(trial - u)) < 1e-12
                u, r, cost, lam, improved = trial, r_trial, c_trial, max(lam / 3, 1e-12), True
                if done:
                    return u
                break
            lam *= 4
        if not improved or cost < 1e-28:
            break
    return u


def _solve(fun, u0, lo, hi, method: str) -> tuple[np.ndarray, str]:
    if method in ("auto", "scipy"):
        try:
            from scipy.optimize import least_squares
        except ImportError:
            if method == "scipy":
                raise
        else:
            res = least_squares(fun, u0, bounds=(lo, hi), method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12,
                                max_nfev=5000)
            return res.x, "scipy.optimize.least_squares (trf)"
    return _least_squares_numpy(fun, u0, lo, hi), "projected Levenberg-Marquardt (numpy)"


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def _snap(term: Term, value: float) -> float:
    """A fitted value to 4 significant digits; one that went to a zero lower bound is 0."""
    if term.lower == 0.0 and value < 1e-6 * term.scale:
        return 0.0
    return _sig(value)


def _errors(predicted: np.ndarray, points: list[dict]) -> list[dict[str, Any]]:
    """One row per point: its shape, the single-block model's time, its shell's, the block's own (target)
    time, the predicted target and error = (predicted - target) / target."""
    rows = []
    for p, pred in zip(points, predicted):
        row = {k: p[k] for k in ("block", "metric", "mode", "batch", "prompt", "context", "repeat") if k in p}
        if p["metric"] == "prefill":
            row.pop("mode", None)
        row.update(measured_s=p["measured_s"], shell_s=p["shell_s"], target_s=p["target_s"],
                   predicted_s=float(pred), error=(float(pred) - p["target_s"]) / p["target_s"])
        if p.get("note"):
            row["note"] = p["note"]
        rows.append(row)
    return rows


def _summary(rows: list[dict]) -> dict[str, float | None]:
    return error_summary([r["error"] for r in rows])


def fit(micro: dict[str, Any], hardware: "str | Hardware", kernels: str, *, decode: str = "graph",
        method: str = "auto") -> dict[str, Any]:
    """Per-backend Efficiency overrides for `hardware` fitted to one backend's micro-benchmarks (module
    docstring). Returns {"hardware", "kernels", "decode", "precision", "method", "overrides" (field ->
    value, `calibrated: true` included), "terms": [{"name", "value", "source": fit|component|profile,
    "profile", "component", "note"}], "residuals": [{point, "measured_s", "predicted_s", "error"}],
    "median_abs_error", "max_abs_error", "before": {the same two with the profile's current terms},
    "unfitted": [measured points not fitted, with the fitted predictions], "points"}."""
    micro = check_micro(micro)
    if micro["kernels"] != kernels:
        raise CalibrationError(f"these micro-benchmarks ran the {micro['kernels']!r} backend, not {kernels!r}")
    hw = load_hardware(hardware)
    base = hw.efficiency_for(kernels) if hasattr(hw, "efficiency_for") else hw.efficiency
    points, unfitted_points, mode = split_points(micro, decode)
    if not points:
        raise CalibrationError(f"no measured single-block point to fit in the {kernels} micro-benchmarks "
                               f"({len(micro['points'])} points, none with measured_s)")
    measured = np.asarray([p["target_s"] for p in points])
    predictor = _Predictor(micro, hw, kernels, points, unfitted_points)
    component = component_efficiency(micro, hw, mode)
    fields = efficiency_fields()
    terms = [t for t in TERMS if t.name in fields]
    # every fitted term starts where an uncalibrated profile has it, not at the backend's earlier fit: the result
    # is a function of the data and the profile's own terms, so writing it twice changes nothing
    uncalibrated = dataclasses.replace(base, **{t.name: getattr(hw.efficiency, t.name) for t in terms})
    start = {t.name: _start(t, uncalibrated, component, predictor) for t in terms}

    # start: the component measurements (else the uncalibrated profile) for every term
    base_start = dataclasses.replace(base, **start)
    names = [t.name for t in terms]
    lo = np.array([t.lower / t.scale for t in terms])
    hi = np.array([t.upper / t.scale for t in terms])
    scale = np.array([t.scale for t in terms])

    def residual_for(selected: list[int], fixed: Efficiency,
                     priors: bool = False) -> Callable[[np.ndarray], np.ndarray]:
        anchored = [(i, j, math.log(component[names[j]]["value"])) for i, j in enumerate(selected)
                    if priors and names[j] in PRIORS and names[j] in component]

        def fun(u: np.ndarray) -> np.ndarray:
            eff = dataclasses.replace(fixed, **{names[j]: float(u[i] * scale[j]) for i, j in enumerate(selected)})
            r = np.log(np.maximum(predictor.predict(eff), 1e-30) / measured)
            if not anchored:
                return r
            extra = [PRIOR_WEIGHT * (math.log(max(u[i] * scale[j], 1e-30)) - log_c) for i, j, log_c in anchored]
            return np.concatenate([r, extra])
        return fun

    u_all = np.array([start[n] / t.scale for n, t in zip(names, terms)])
    measured_first = [j for j, n in enumerate(names) if n in COMPONENT_FIRST and n in component]
    candidates = [j for j in range(len(names)) if j not in measured_first]
    J = _jacobian(residual_for(candidates, base_start), u_all[candidates], lo[candidates], hi[candidates])
    chosen, dropped = _select(J, [names[j] for j in candidates])
    kept = [candidates[i] for i in chosen]
    dropped.update({names[j]: "measured by its component benchmark" for j in measured_first})
    # a term not fitted: its component measurement when there is one, else the profile's value
    fixed_values = {n: component[n]["value"] for n in names if n not in [names[j] for j in kept] and n in component}
    fixed = dataclasses.replace(base, **fixed_values)
    fitted: dict[str, float] = {}
    used_method = "none (no term to fit)"
    if kept:
        fun = residual_for(kept, fixed, priors=True)
        u, used_method = _solve(fun, u_all[kept], lo[kept], hi[kept], method)
        fitted = {names[j]: _snap(terms[j], float(u[i] * scale[j])) for i, j in enumerate(kept)}
    overrides: dict[str, Any] = {**{k: _sig(v) for k, v in fixed_values.items()}, **fitted}
    overrides = {n: overrides[n] for n in names if n in overrides}
    if "calibrated" in fields:
        overrides["calibrated"] = True
    final = dataclasses.replace(base, **{k: v for k, v in overrides.items()})

    residuals = _errors(predictor.predict(final), points)
    before = _errors(predictor.predict(base), points)
    unfitted = [p for p in unfitted_points if p["target_s"] > 0]
    unfitted = _errors(predictor.predict(final, unfitted), unfitted) if unfitted else []
    rows = []
    for n in names:
        source = "fit" if n in fitted else "component" if n in fixed_values else "profile"
        note = dropped.get(n) or ("its component as a weak prior" if n in fitted and n in PRIORS and n in component
                                  else None)
        rows.append({"name": n, "value": overrides.get(n, getattr(base, n)), "source": source,
                     "profile": getattr(base, n), "component": component.get(n, {}).get("value"),
                     "component_from": component.get(n, {}).get("from"), "note": note})
    return {"hardware": hw.name, "kernels": kernels, "decode": mode, "precision": precision_of(micro),
            "method": used_method, "overrides": overrides, "terms": rows, "residuals": residuals,
            **_summary(residuals), "before": _summary(before), "unfitted": unfitted,
            "unfitted_summary": _summary(unfitted), "points": len(points)}


# --------------------------------------------------------------------------------------------------
# provenance and the profile file


def provenance(micro: dict[str, Any], result: dict[str, Any], *, command: str, source: str | None) -> dict[str, Any]:
    """What a profile's `calibration.<backend>` records: where and how the terms were measured and fitted."""
    env = micro.get("environment") or {}
    return {"date": env.get("date") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "gpu": env.get("gpu"), "driver": env.get("driver"), "cuda": env.get("cuda"), "torch": env.get("torch"),
            "packages": env.get("packages") or {}, "backend": micro["kernels"],
            "kernels_in_use": micro.get("kernels_in_use"), "device": micro["device"], "dtype": micro["dtype"],
            "layouts": micro.get("layouts"), "decode": result["decode"], "points": result["points"],
            "median_abs_error": _sig(result["median_abs_error"], 3) if result["median_abs_error"] is not None else None,
            "max_abs_error": _sig(result["max_abs_error"], 3) if result["max_abs_error"] is not None else None,
            "fitted": [t["name"] for t in result["terms"] if t["source"] == "fit"],
            "from_components": [t["name"] for t in result["terms"] if t["source"] == "component"],
            "command": command, "source": source}


_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:")


def _drop_block(lines: list[str], key: str) -> tuple[list[str], int | None]:
    """`lines` without the top-level `key:` entry (its line and the indented lines after it); the index it
    was at (None when absent)."""
    for i, line in enumerate(lines):
        m = _TOP_KEY.match(line)
        if m and m.group(1) == key:
            end = i + 1
            while end < len(lines) and (lines[end][:1] in (" ", "\t") or not lines[end].strip()):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():   # trailing blank lines stay
                end -= 1
            return lines[:i] + lines[end:], i
    return lines, None


def _dump(key: str, value: Any) -> list[str]:
    return yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False, width=120).splitlines()


def profile_text(text: str, kernels_block: dict[str, Any], calibration: dict[str, Any]) -> str:
    """The profile's text with its top-level `kernels:` and `calibration:` entries replaced (in place, or
    appended), every other line (comments included) kept as it was."""
    lines = text.splitlines()
    for key, value in (("kernels", kernels_block), ("calibration", calibration)):
        lines, at = _drop_block(lines, key)
        block = _dump(key, value)
        if at is None:
            if lines and lines[-1].strip():
                lines.append("")
            if key == "kernels":
                lines.append("# per-kernel-backend efficiency overrides fitted by `designer calibrate` "
                             "(docs/calibrate.md)")
            lines.extend(block)
        else:
            lines[at:at] = block
    return "\n".join(lines) + "\n"


def write_profile(hardware_name: str, kernels: str, overrides: dict[str, Any], provenance: dict[str, Any], *,
                  directory: str | Path | None = None) -> Path:
    """Update profiles/hardware/<name>.yaml (or <directory>/<name>.yaml): `kernels.<backend>` gets the
    overrides (merged over the backend's earlier ones), `calibration.<backend>` the provenance. The rest of
    the file is kept line for line; the result is checked as a profile before it is written (atomically)."""
    path = Path(directory or HARDWARE_DIR) / f"{hardware_name}.yaml"
    if not path.is_file():
        raise HardwareError(f"no hardware profile {path}", source=str(path))
    text = path.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise HardwareError("a hardware profile must be a mapping", source=str(path))
    kernels_block = dict(data.get("kernels") or {})
    kernels_block[kernels] = {**(kernels_block.get(kernels) or {}), **overrides}
    calibration = data.get("calibration")
    calibration = dict(calibration) if isinstance(calibration, dict) else {}
    calibration[kernels] = provenance
    new_text = profile_text(text, kernels_block, calibration)
    new_data = yaml.safe_load(new_text)
    expected = {**data, "kernels": kernels_block, "calibration": calibration}
    if new_data != expected:   # a layout of the file the line surgery cannot follow: rewrite it whole
        header = [line for line in text.splitlines() if line.startswith("#")][:3]
        new_text = "\n".join(header + [yaml.safe_dump(expected, sort_keys=False, width=120).rstrip()]) + "\n"
        new_data = yaml.safe_load(new_text)
    hardware_from_dict(new_data, source=str(path))     # never write a profile that does not load
    atomic_write_text(path, new_text)
    forget_loaded(path)
    return path
