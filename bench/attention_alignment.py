"""Does the static-cache attention of a decode step slow down when the cache length is not a multiple of 8?
(issue 12: llama's 8-block micro decode read the KV cache at 0.37 TB/s with caches of context + 42 positions,
the whole model at 1.8 TB/s with context + 16.) Times the exported model's own `Attention.static_cache_attention`
(torch path) for one token against caches of context + 16 / + 42 / + 48 positions, in a CUDA graph on a GPU
(eager on the CPU, for a check of the script only), and the whole-cache bandwidth it implies.

    python bench/attention_alignment.py [--device cuda] [--contexts 4096,65536] [--batches 1,16] [--out F.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from designer.export.model_export import model_args  # noqa: E402
from designer.export.template import load_template  # noqa: E402
from designer.layout import load_layout  # noqa: E402
from designer.measure.gpu import bench, capture_graph  # noqa: E402
from designer.measure.timing import median_s  # noqa: E402

MARGINS = (16, 42, 48)   # the whole model's cache margin, the old micro margin (2 mod 8), the new one


def time_s(fn, device: str, iters: int) -> float:
    """Median seconds per call: of a CUDA graph of `fn` (CUDA events), or of `fn` eagerly on the CPU."""
    if device != "cuda":
        return median_s(fn, "cpu", 1, iters)
    return bench(capture_graph(fn).replay, warmup=3, iters=iters)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="llama-3.1-8b")
    ap.add_argument("--contexts", default="4096,16384,65536")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out")
    args = ap.parse_args()
    mod = load_template("model.py")
    mod.set_kernels("torch")
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    margs = model_args(load_layout(args.preset))
    attn = mod.Attention(margs).to(args.device, dtype).eval()
    a = margs.attention
    rows = []
    for batch in [int(v) for v in args.batches.split(",")]:
        for context in [int(v) for v in args.contexts.split(",")]:
            for margin in MARGINS:
                length = context + margin
                cache = attn.new_cache(batch, length, device=args.device, dtype=dtype)
                q = torch.randn(batch, a.num_heads, 1, a.head_dim, device=args.device, dtype=dtype)
                k = torch.randn(batch, a.num_kv_heads, 1, a.head_dim, device=args.device, dtype=dtype)
                pos = torch.full((), context, dtype=torch.long, device=args.device)
                with torch.no_grad():
                    s = time_s(lambda: attn.static_cache_attention(q, k, k, cache, pos), args.device, args.iters)
                kv_bytes = 2 * cache.k.numel() * cache.k.element_size()
                rows.append({"batch": batch, "context": context, "cache_len": length, "mod_8": length % 8,
                             "us": round(s * 1e6, 2), "cache_TB_per_s": round(kv_bytes / s / 1e12, 3)})
                print(f"batch {batch:>3} context {context:>6} cache {length:>6} ({length % 8} mod 8): "
                      f"{s * 1e6:9.1f} us, {kv_bytes / s / 1e12:6.3f} TB/s of cache", flush=True)
                del cache
    if args.out:
        Path(args.out).write_text(json.dumps({
            "command": "python bench/attention_alignment.py " + " ".join(sys.argv[1:]), "preset": args.preset,
            "device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
