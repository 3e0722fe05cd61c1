"""Operators one decode step dispatches (issue 16): the exported model's torch path, counted on the CPU with a
dispatch-mode counter on width-reduced copies of the presets (same layers, same pattern; the count of
operators does not depend on the widths). On a GPU each operator is at least one kernel, and in a CUDA graph
a small kernel still costs a few microseconds, so the count bounds batch-1 decode from below.

    python bench/decode_op_count.py [--presets llama-3.1-8b,nemotron-h-8b] [--out F.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from designer.export.model_export import model_args  # noqa: E402
from designer.export.template import load_template  # noqa: E402
from designer.layout import load_layout  # noqa: E402
from designer.measure.flops import reduced  # noqa: E402


class Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


# views and metadata-only operators launch no kernel
FREE = {"view", "_unsafe_view", "transpose", "t", "unsqueeze", "squeeze", "expand", "slice", "select", "split",
        "split_with_sizes", "chunk", "unbind", "detach", "alias", "permute", "as_strided", "reshape", "unflatten",
        "flatten", "_reshape_alias"}


def decode_ops(preset: str, context: int = 64) -> tuple[collections.Counter, int]:
    """Every operator of one decode step (the step DecodeGraph captures: the position as a tensor) after a
    prefill of `context` tokens, on the preset's width-reduced copy; and its number of layers."""
    mod = load_template("model.py")
    torch.manual_seed(0)
    model = mod.build_model(args=model_args(reduced(load_layout(preset))), device="cpu").eval()
    cache = model.new_cache(1, context + 8)
    with torch.no_grad():
        model(torch.randint(0, 256, (1, context)), cache=cache)
        cache.position.fill_(cache.seq_len)
        ids = torch.randint(0, 256, (1, 1))
        with Count() as c:
            model(ids, cache=cache, position=cache.position)
    return c.ops, len(model.body.layers)


def count(preset: str, context: int = 64) -> dict:
    ops, layers = decode_ops(preset, context)
    kernels = collections.Counter({k: v for k, v in ops.items() if k not in FREE})
    return {"preset": preset, "layers": layers, "operators": sum(ops.values()),
            "kernel_operators": sum(kernels.values()), "top": dict(kernels.most_common(15))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="llama-3.1-8b,nemotron-h-8b")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = [count(p) for p in args.presets.split(",")]
    for r in rows:
        print(f"{r['preset']}: {r['kernel_operators']} kernel operators per decode step "
              f"({r['operators']} with views), {r['layers']} layers; top: {r['top']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python bench/decode_op_count.py " + " ".join(sys.argv[1:]),
                                              "torch": torch.__version__, "machine": platform.node(),
                                              "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
