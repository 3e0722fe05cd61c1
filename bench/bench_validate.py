"""Speed of `validate`: in-process rule check of a 118-layer layout (target < 5 ms) and the whole
`designer validate` process (target < 0.5 s, no torch import). Writes bench/results/validate.json.

    .venv/bin/python bench/bench_validate.py
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from designer.layout import load_layout  # noqa: E402
from designer.rules import check  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    layout = load_layout("nemotron-h-56b")
    check(layout)  # warm: rule modules imported once
    in_process = timed(lambda: check(layout, ["nemotron-h"]), 200)
    load_and_check = timed(lambda: check(load_layout("nemotron-h-56b"), ["nemotron-h"]), 50)
    exe = ROOT / ".venv" / "bin" / "designer"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "designer.cli"]
    proc = timed(lambda: subprocess.run(cmd + ["validate", "nemotron-h-56b", "--json"], capture_output=True,
                                        check=True), 10)
    torch_imported = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "designer.cli", "validate", "nemotron-h-56b", "--json"],
        capture_output=True, text=True, cwd=ROOT).stderr.count("| torch") > 0
    result = {
        "layout": "nemotron-h-56b (118 layers)",
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "check_in_process_ms": {"median": statistics.median(in_process) * 1e3, "p95": sorted(in_process)[189] * 1e3,
                                "target": 5.0},
        "load_yaml_and_check_ms": {"median": statistics.median(load_and_check) * 1e3},
        "cli_process_s": {"median": statistics.median(proc), "max": max(proc), "target": 0.5},
        "cli_imports_torch": torch_imported,
    }
    result["pass"] = (result["check_in_process_ms"]["median"] < 5.0 and result["cli_process_s"]["median"] < 0.5
                      and not torch_imported)
    out = ROOT / "bench" / "results" / "validate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
