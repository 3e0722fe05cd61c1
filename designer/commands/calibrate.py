"""`designer calibrate --hardware h200`: micro-benchmarks of the exported model's kernel backends on a GPU, and
the roofline's per-backend efficiency terms fitted to them (docs/calibrate.md).

    designer calibrate --hardware h200 --kernels both --out bench/results/calibration_h200_micro.json --write
    designer calibrate --hardware h200 --from bench/results/calibration_h200_micro.json      # fit only, no GPU
    designer calibrate --device cpu --quick                                                  # the pipeline, tiny

--out saves the measurements (after each backend, so a later failure loses nothing); --write updates
profiles/hardware/<hw>.yaml (`kernels.<backend>` and `calibration.<backend>`; GPU measurements only).
torch is imported only when measuring.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from designer.cliutil import UsageError, emit_json, load_or_fail, progress_bar

BACKENDS = ("torch", "triton")
DEFAULT_LAYOUTS = "nemotron-h-8b,llama-3.1-8b"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hardware", default="h200", metavar="NAME|FILE",
                        help="GPU profile to fit and --write (default h200)")
    parser.add_argument("--kernels", default="both", metavar="torch|triton|both",
                        help="kernel backend(s) to measure and fit (default both)")
    parser.add_argument("--layouts", default=DEFAULT_LAYOUTS, metavar="A,B",
                        help=f"layouts whose block shapes are measured (default {DEFAULT_LAYOUTS}; the others are "
                             "held out)")
    parser.add_argument("--device", default="cuda", metavar="cuda|cpu", help="where to measure (default cuda)")
    parser.add_argument("--quick", action="store_true",
                        help="width-reduced layouts at tiny shapes (seconds on a CPU: checks the pipeline)")
    parser.add_argument("--out", metavar="PATH", help="save the micro-benchmark JSON here")
    parser.add_argument("--from", dest="source", metavar="PATH",
                        help="fit the micro-benchmarks saved by an earlier --out instead of measuring (no GPU)")
    parser.add_argument("--decode", default="graph", metavar="graph|eager",
                        help="which decode timings the fit matches (default graph: CUDA-graph replay)")
    parser.add_argument("--budget-s", type=_positive_float, default=None, metavar="S",
                        help="time budget per backend; points after it are skipped (default 150 s, none with --quick)")
    parser.add_argument("--write", action="store_true",
                        help="update the hardware profile's kernels.<backend> and calibration.<backend> blocks")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _command_line(args: argparse.Namespace) -> str:
    parts = ["designer", "calibrate", "--hardware", args.hardware, "--kernels", args.kernels]
    if args.source:
        parts += ["--from", args.source]
    else:
        parts += ["--layouts", args.layouts, "--device", args.device] + (["--quick"] if args.quick else [])
        if args.budget_s is not None:
            parts += ["--budget-s", f"{args.budget_s:g}"]
        if args.out:
            parts += ["--out", args.out]
    if args.decode != "graph":
        parts += ["--decode", args.decode]
    return " ".join(parts + (["--write"] if args.write else []))


def _profile_target(ref: str) -> tuple[str, Path | None]:
    """(profile name, directory) of --hardware: a name in profiles/hardware/, or a YAML file's stem and folder."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.stem, path.parent
    return ref, None


def _check_options(args: argparse.Namespace) -> tuple[str, ...]:
    if args.kernels not in (*BACKENDS, "both"):
        raise UsageError(f"--kernels: unknown backend {args.kernels!r}; allowed: torch, triton, both")
    if args.device not in ("cuda", "cpu"):
        raise UsageError(f"--device: unknown device {args.device!r}; allowed: cuda, cpu")
    if args.decode not in ("graph", "eager"):
        raise UsageError(f"--decode: unknown mode {args.decode!r}; allowed: graph, eager")
    if args.source and args.out:
        raise UsageError("--out saves new measurements; with --from nothing is measured (drop one of them)")
    if args.write and not args.source and args.device != "cuda":
        raise UsageError("--write updates a GPU profile: it needs measurements on CUDA, not --device "
                         f"{args.device}")
    if args.out:
        from designer.commands._paths import check_output_file
        check_output_file(args.out, "--out")
    return BACKENDS if args.kernels == "both" else (args.kernels,)


def _from_file(args: argparse.Namespace, backends: tuple[str, ...]) -> dict[str, dict]:
    from designer.measure.calibrate import CalibrationError, load_micro_file
    try:
        runs = load_micro_file(args.source)
    except CalibrationError as e:
        raise UsageError(f"--from {args.source}: {e}") from None
    if args.kernels != "both" and args.kernels not in runs:
        raise UsageError(f"--from {args.source}: no {args.kernels} micro-benchmarks in it (it has "
                         f"{', '.join(runs)})")
    runs = {k: v for k, v in runs.items() if k in backends}
    if args.write:
        cpu = [k for k, v in runs.items() if v.get("device") != "cuda"]
        if cpu:
            raise UsageError(f"--write updates a GPU profile, but {args.source} was measured on "
                             f"{runs[cpu[0]].get('device')} ({', '.join(cpu)})")
    return runs


def _progress(enabled: bool):
    """A rich progress bar on stderr (None with --json: stdout holds one document, stderr stays quiet; None
    too where rich is missing: a GPU machine's bare environment must still measure)."""
    if not enabled:
        return None
    try:
        return progress_bar(transient=True)
    except ImportError:
        return None


def _measure(args: argparse.Namespace, backends: tuple[str, ...], doc: dict[str, Any]) -> dict[str, dict]:
    layouts = [load_or_fail(name.strip()) for name in args.layouts.split(",") if name.strip()]
    if not layouts:
        raise UsageError("--layouts: expected comma-separated layout files or preset names")
    import torch

    from designer.measure.micro import DEFAULT_BUDGET_S, run_micro
    from designer.measure.timing import MeasureError, check_device
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device cuda: no CUDA device is available here (torch {torch.__version__}); measure on a "
                         "GPU, fit an earlier run with --from FILE, or try the pipeline with --device cpu --quick")
    usable = []
    for backend in backends:
        try:
            check_device(args.device, backend)
            usable.append(backend)
        except MeasureError as e:
            if args.kernels != "both":
                raise UsageError(f"--kernels {backend}: {e}") from None
            doc["micro"][backend] = {"error": str(e)}
    budget = args.budget_s if args.budget_s is not None else (None if args.quick else DEFAULT_BUDGET_S)
    runs: dict[str, dict] = {}
    progress = _progress(not args.json)

    def save(backend: str | None = None, partial: dict | None = None) -> None:
        if backend is not None:
            doc["micro"][backend] = partial
        if args.out:
            from designer.layout import atomic_write_text
            atomic_write_text(args.out, json.dumps(_strict(doc), indent=1, default=str) + "\n")

    for backend in usable:
        task = None
        if progress is not None:
            progress.start()
            task = progress.add_task(f"{backend}: starting", total=None)

        def report(done: int, total: int, what: str, task=task, backend=backend) -> None:
            progress.update(task, completed=done, total=total, description=f"{backend}: {what}"[:70])

        try:
            runs[backend] = run_micro(layouts, backend, args.device, args.quick, budget_s=budget,
                                      progress=report if progress is not None else None,
                                      checkpoint=lambda partial, backend=backend: save(backend, partial))
            doc["micro"][backend] = runs[backend]
        except Exception as e:   # noqa: BLE001 - one backend failing must not lose the other's measurements
            message = f"{type(e).__name__}: {e}"
            partial = doc["micro"].get(backend)
            if isinstance(partial, dict) and partial.get("points"):   # keep (and fit) what was measured
                partial["error"] = message
                runs[backend] = partial
            else:
                doc["micro"][backend] = {"error": message}
        finally:
            if progress is not None:
                progress.stop()
        save()
    return runs


def _strict(obj: Any) -> Any:
    """NaN and infinities as null: the saved file is strict JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def run(args: argparse.Namespace) -> int:
    backends = _check_options(args)
    from designer.profile.hardware import load_hardware
    hw = load_hardware(args.hardware)          # an unknown name is a LayoutError: exit 2 before any work
    command = _command_line(args)
    started = time.perf_counter()
    from designer.measure.calibrate import FILE_FORMAT
    doc: dict[str, Any] = {"format": FILE_FORMAT, "hardware": hw.name, "command": command,
                           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "micro": {}}
    if args.source:
        runs = _from_file(args, backends)
    else:
        doc.update(layouts=args.layouts.split(","), device=args.device, quick=args.quick)
        runs = _measure(args, backends, doc)

    from designer.measure.calibrate import CalibrationError, fit, provenance, write_profile
    results: dict[str, dict] = {}
    code = 0
    for backend in backends:
        if backend not in runs:
            if backend in doc["micro"]:
                results[backend] = {"error": doc["micro"][backend].get("error", "not measured")}
                code = max(code, 1)
            continue
        try:
            results[backend] = fit(runs[backend], hw, backend, decode=args.decode)
        except CalibrationError as e:
            if args.source:
                raise UsageError(f"--from {args.source}: {e}") from None
            results[backend] = {"error": str(e)}
            code = max(code, 1)
        except Exception as e:   # noqa: BLE001 - a fit bug must not hide the measurements (saved with --out)
            import traceback
            results[backend] = {"error": f"internal error: {type(e).__name__}: {e}",
                                "traceback": traceback.format_exc()}
            code = 3
    written: dict[str, str] = {}
    if args.write:
        name, directory = _profile_target(args.hardware)
        for backend, result in results.items():
            if "overrides" in result:
                prov = provenance(runs[backend], result, command=command, source=args.source or args.out)
                written[backend] = str(write_profile(name, backend, result["overrides"], prov, directory=directory))
    out = {"hardware": hw.name, "kernels": list(backends), "source": args.source, "out": args.out,
           "results": results, "written": written, "elapsed_s": time.perf_counter() - started}
    if not args.source and not args.out:
        out["micro"] = doc["micro"]        # not saved anywhere else: keep the measurements in the output
    if args.json:
        emit_json(out)
    else:
        _print_text(out, runs)
    return code


# --------------------------------------------------------------------------------------------------
# text output


def _value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if name.endswith("_s"):
        return f"{value * 1e6:.3g} µs"
    return f"{value:.4g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _print_text(out: dict[str, Any], runs: dict[str, dict]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:            # no rich: the same content as JSON
        emit_json(out)
        return
    console = Console()
    for backend, r in out["results"].items():
        if "error" in r:
            console.print(f"[red]{out['hardware']} / {backend}: {r['error']}[/red]")
            continue
        micro = runs.get(backend, {})
        env = micro.get("environment") or {}
        t = Table(title=f"{out['hardware']} / {backend} kernels ({micro.get('kernels_in_use', '?')} in use on "
                        f"{env.get('gpu') or micro.get('device', '?')}): efficiency terms")
        t.add_column("term", no_wrap=True)
        for col in ("value", "source", "before", "component"):
            t.add_column(col, justify="left" if col == "source" else "right", no_wrap=True)
        t.add_column("note")
        for row in r["terms"]:
            t.add_row(row["name"], _value(row["name"], row["value"]), row["source"],
                      _value(row["name"], row["profile"]), _value(row["name"], row["component"]), row["note"] or "")
        console.print(t)
        b = r["before"]
        repeats = sorted({p.get("repeat", 1) for p in r["residuals"] if p["metric"] == "decode"})
        blocks = "/".join(map(str, repeats)) if repeats and repeats != [1] else "1"
        console.print(f"fit ({r['method']}) over {r['points']} block-model points (decode: {r['decode']}, "
                      f"{blocks} block(s) per decode model): "
                      f"median |error| {_pct(r['median_abs_error'])}, max {_pct(r['max_abs_error'])}; with the "
                      f"profile's terms before: median {_pct(b['median_abs_error'])}, max {_pct(b['max_abs_error'])}")
        if r["unfitted"]:
            u = r["unfitted_summary"]
            console.print(f"not fitted ({len(r['unfitted'])} points: the other decode mode, or a block under a quarter "
                          f"of its model's time): median |error| {_pct(u['median_abs_error'])}, max "
                          f"{_pct(u['max_abs_error'])}")
        s = Table(title=f"{backend}: error by block")
        s.add_column("block", no_wrap=True)
        s.add_column("metric", no_wrap=True)
        for col in ("points", "median |error|", "max |error|"):
            s.add_column(col, justify="right")
        groups: dict[tuple[str, str], list[float]] = {}
        for p in r["residuals"]:
            key = (p["block"], p["metric"] + (f" ({p['mode']})" if p.get("mode") else "")
                   + (f" x{p['repeat']}" if p.get("repeat", 1) > 1 else ""))
            groups.setdefault(key, []).append(abs(p["error"]))
        for (block, metric), errs in groups.items():
            s.add_row(block, metric, str(len(errs)), _pct(statistics.median(errs)), _pct(max(errs)))
        console.print(s)
        failed = [p for p in micro.get("points", []) + micro.get("components", []) if "error" in p or "skipped" in p]
        if failed:
            console.print(f"{len(failed)} micro points not measured (errors or skipped; see the JSON)")
    if out.get("out"):
        console.print(f"micro-benchmarks saved to {out['out']}")
    for backend, path in out["written"].items():
        console.print(f"wrote kernels.{backend} and calibration.{backend} to {path}")
