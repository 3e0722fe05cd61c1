"""How long one MQAR training batch takes to draw (issue 13): CPU generator vs a generator on the GPU, with
torch's deterministic mode off and on (the proxy trainer turns it on, warn-only), and the ops that cost most.

    python bench/mqar_batch_speed.py [--device cuda] [--out F.json]

Zoology's setting: 64 sequences x 512 tokens, vocab 8192, 64 pairs, curriculum from 4 pairs at 16 tokens a pair.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "designer" / "export" / "templates"))
import proxy_tasks as tasks  # noqa: E402

KW = dict(vocab_size=8192, seq_len=512, num_kv_pairs=64, min_kv_pairs=4, tokens_per_pair=16)


def draw_ms(device: str, deterministic: bool, n: int = 20, batch: int = 64) -> float:
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for step in range(3):   # warm-up
        tasks.make_batch("mqar", batch, gen=torch.Generator(device=device).manual_seed(step), **KW)
    sync()
    t0 = time.perf_counter()
    for step in range(n):
        tasks.make_batch("mqar", batch, gen=torch.Generator(device=device).manual_seed(step), **KW)
    sync()
    return (time.perf_counter() - t0) / n * 1e3


def top_ops(device: str, deterministic: bool, k: int = 12) -> list[dict]:
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with torch.profiler.profile(activities=acts) as prof:
        for step in range(5):
            tasks.make_batch("mqar", 64, gen=torch.Generator(device=device).manual_seed(step), **KW)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    rows = []
    for e in sorted(prof.key_averages(), key=lambda e: -e.cpu_time_total)[:k]:
        rows.append({"op": e.key, "calls": e.count, "cpu_ms": round(e.cpu_time_total / 1e3 / 5, 3),
                     "device_ms": round(getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0)) / 1e3 / 5, 3)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    res = {"command": "python bench/mqar_batch_speed.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
           "machine": platform.node(), "cpu_threads": torch.get_num_threads(), "setting": KW, "batch": 64,
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None, "ms_per_batch": {}}
    for device in ["cpu"] + ([args.device] if args.device != "cpu" else []):
        for det in (False, True):
            res["ms_per_batch"][f"{device} deterministic={det}"] = round(draw_ms(device, det), 3)
            print(f"{device} deterministic={det}: {res['ms_per_batch'][f'{device} deterministic={det}']} ms/batch", flush=True)
        res[f"top_ops_{device}"] = top_ops(device, True)
        for r in res[f"top_ops_{device}"]:
            print(f"  {r['op']:<40} x{r['calls']:<5} cpu {r['cpu_ms']:8.3f} ms  device {r['device_ms']:8.3f} ms")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
