"""DDP scaling of the proxy-training job: the same job (a nemotron-h-8b proxy on MQAR, fixed seed and global
batch) under `torchrun --nproc_per_node N` for each N asked, tokens/s for each, scaling efficiency against
N = 1, and how far the loss curves drift apart.

    python bench/proxy_ddp.py --nproc 1,2                       # GPUs (NCCL); writes bench/results/proxy_ddp.json
    python bench/proxy_ddp.py --nproc 1,2 --device cpu --steps 20 --seq-len 128 --num-kv-pairs 8   # CPU (gloo)

Torch only: the job is written from the committed proxy layout (bench/proxy_mqar_layouts.json, role "hybrid")
and the export templates (designer/export/templates/{model,train_proxy,proxy_tasks}.py), so it runs on a
machine that has torch and nothing else. NVLink multicast stays off (NCCL_NVLS_ENABLE=0), as the device
tool's notes ask.

scaling_efficiency(N) = tokens/s with N processes / (N x tokens/s with 1). Each rank draws the same global
batch and keeps its slice, so the curves differ only by float summation order (and bf16 autocast on GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proxy_mqar import LAYOUTS, ROOT, TEMPLATES, write_json
from proxy_mqar import SETTINGS as MQAR_SETTINGS

RESULTS = ROOT / "bench" / "results" / "proxy_ddp.json"

# the MQAR job of bench/proxy_mqar.py, shorter: tokens/s settles within a few dozen steps
SETTINGS = {**MQAR_SETTINGS, "steps": 200, "warmup_steps": 20, "eval_batches": 1, "eval_every": 0,
            "device": "auto", "timing_skip": 20}


def write_job(job: Path, settings: dict, role: str) -> None:
    job.mkdir(parents=True)
    for f in ("model.py", "train_proxy.py", "proxy_tasks.py"):
        shutil.copyfile(TEMPLATES / f, job / f)
    layout = json.loads(LAYOUTS.read_text())["layouts"][role]
    (job / "proxy_layout.json").write_text(json.dumps(layout))
    (job / "proxy.yaml").write_text(json.dumps({**settings, "name": f"{layout['name']} ({role})"}, indent=1))


def run_torchrun(job: Path, nproc: int, timeout_s: float) -> dict:
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "train_proxy.py", "--quiet", "--metrics", f"metrics_{nproc}.json"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=job, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    m = json.loads((job / f"metrics_{nproc}.json").read_text())
    m["process_wall_s"] = time.perf_counter() - t0
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", default="1,2", help="comma-separated process counts (default 1,2)")
    ap.add_argument("--role", default="hybrid", help="proxy layout of bench/proxy_mqar_layouts.json")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch-size", type=int, help="global batch (the same for every N)")
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--num-kv-pairs", type=int)
    ap.add_argument("--device", help="auto | cpu | cuda")
    ap.add_argument("--timeout", type=float, default=540, help="seconds per torchrun")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    settings = json.loads(json.dumps(SETTINGS))
    for key in ("steps", "batch_size", "seq_len", "device"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.num_kv_pairs:
        settings["tasks"]["mqar"]["num_kv_pairs"] = args.num_kv_pairs
    counts = [int(n) for n in args.nproc.split(",")]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="proxy-ddp-") as tmp:
        job = Path(tmp) / "job"
        write_job(job, settings, args.role)
        for n in counts:
            m = run_torchrun(job, n, args.timeout)
            runs[n] = m
            print(f"nproc {n}: {m['tokens_per_s']:,.0f} tokens/s, loss {m['initial_loss']:.4f} -> "
                  f"{m['final_loss']:.4f}, mqar accuracy {m['accuracy']['mqar']:.3f}, {m['device_name']}, "
                  f"{m['train_s']:.0f} s", flush=True)
    base = runs.get(1)
    result = {"bench": "proxy_ddp", "command": "python " + " ".join(["bench/proxy_ddp.py", *sys.argv[1:]]),
              "settings": settings, "role": args.role, "nccl_nvls_enable": "0", "runs": []}
    for n, m in runs.items():
        row = {"nproc": n, "world_size": m["world_size"], "device": m["device"], "device_name": m["device_name"],
               "dtype": m["dtype"], "torch": m["torch"], "params": m["params"], "tokens_per_s": m["tokens_per_s"],
               "timed_steps": m["timed_steps"], "train_s": m["train_s"], "process_wall_s": m["process_wall_s"],
               "peak_memory_bytes": m["peak_memory_bytes"], "initial_loss": m["initial_loss"],
               "final_loss": m["final_loss"], "accuracy": m["accuracy"], "loss": m["loss"]}
        if base is not None and n != 1:
            row["scaling_efficiency"] = m["tokens_per_s"] / (n * base["tokens_per_s"])
            diffs = [abs(a - b) for a, b in zip(m["loss"], base["loss"])]
            row["loss_max_abs_diff_vs_1"] = max(diffs)
            row["loss_max_rel_diff_vs_1"] = max(d / abs(b) for d, b in zip(diffs, base["loss"]))
            print(f"nproc {n}: scaling efficiency {row['scaling_efficiency']:.1%}, loss curve max |diff| "
                  f"{row['loss_max_abs_diff_vs_1']:.2e} (relative {row['loss_max_rel_diff_vs_1']:.2e})")
        result["runs"].append(row)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
