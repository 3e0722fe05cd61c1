"""Wall time of the tiny CPU proxy job that tests/test_proxy.py trains (a 4-layer nemotron-h-8b proxy, hidden
64, MQAR with 2 pairs in 16 tokens, 200 steps, batch 32, one torch thread). The test checks that the loss
halves; how long it takes is measured here (it took 106 s on a busy 2-core machine, under 60 s on an idle
one). Writes bench/results/proxy_cpu_tiny.json.

    .venv/bin/python bench/bench_proxy_cpu.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from designer.layout import load_layout  # noqa: E402
from designer.measure.proxy import load_trainer, write_proxy_files  # noqa: E402

# the job of tests/test_proxy.py (LEARN, write_job)
JOB = dict(tasks={"mqar": {"num_kv_pairs": 2}}, vocab_size=16, seq_len=16, steps=200, batch_size=32,
           lr=3e-3, warmup_steps=10, eval_batches=1, eval_batch_size=32, seed=0, device="cpu")
TARGET_S = 60.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "proxy_cpu_tiny.json"))
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    trainer = load_trainer()
    runs = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            write_proxy_files(load_layout("nemotron-h-8b"), tmp, hidden=64, layers=4, copy_model=True, **JOB)
            t0 = time.perf_counter()
            m = trainer.train(trainer.load_config(Path(tmp) / "proxy.yaml"), root=tmp, quiet=True)
            wall = time.perf_counter() - t0
        runs.append({"wall_s": wall, "train_s": m["train_s"], "tokens_per_s": m["tokens_per_s"],
                     "initial_loss": m["initial_loss"], "final_loss": m["final_loss"],
                     "mqar_accuracy": m["accuracy"]["mqar"]})
        print(f"run {i + 1}/{args.repeat}: {wall:.1f} s, loss {m['initial_loss']:.3f} -> {m['final_loss']:.3f}",
              flush=True)
    walls = [r["wall_s"] for r in runs]
    result = {
        "what": "tiny CPU proxy job of tests/test_proxy.py (nemotron-h-8b proxy, hidden 64, 4 layers, MQAR 2 "
                "pairs / 16 tokens, 200 steps x 32, one torch thread)",
        "command": "bench/bench_proxy_cpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, python "
                   f"{platform.python_version()}, torch {torch.__version__}".replace("  ", " "),
        "load_1min": os.getloadavg()[0],
        "runs": runs,
        "wall_s": {"median": statistics.median(walls), "max": max(walls), "target": TARGET_S},
        "pass": statistics.median(walls) < TARGET_S,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["wall_s"]), "->", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
