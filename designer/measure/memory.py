"""Measured cache sizes: the bytes the exported model's InferenceCache holds, beside the analytic ones
(`designer measure --memory`).

`model.new_cache(batch, max_seq_len, dtype=bf16)` is built on the meta device (nothing is allocated): K and
V of every attention layer (KVCache: (batch, kv_heads, max_seq_len, head_dim) each, in the cache dtype), and
per Mamba layer the conv window (batch, conv_dim, kernel - 1) in the cache dtype and the SSM state in
float32 (MambaCache). Per token = the KV bytes of a cache of S positions / S; per sequence = batch 1.
The analytic side is designer.profile.memory with its defaults: KV and conv bf16, SSM state fp32.
"""
from __future__ import annotations

from typing import Any

import torch

from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import Layout
from designer.profile.memory import (conv_state_bytes_per_sequence, kv_cache_bytes_per_token,
                                     ssm_state_bytes_per_sequence)

KEYS = ("kv_cache_bytes_per_token", "ssm_state_bytes_per_sequence", "conv_state_bytes_per_sequence")


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def measured_cache_bytes(layout: Layout, *, seq_len: int = 16, dtype: torch.dtype = torch.bfloat16) -> dict[str, int]:
    """The exported model's own cache, on meta: KV bytes per token, SSM and conv state bytes per sequence."""
    mod = load_template("model.py")
    model = mod.build_model(args=model_args(layout), device="meta")
    cache = model.new_cache(1, seq_len, device="meta", dtype=dtype)
    kv = ssm = conv = 0
    for c in cache.layers:
        if isinstance(c, mod.KVCache):
            kv += _nbytes(c.k) + _nbytes(c.v)
        elif isinstance(c, mod.MambaCache):
            ssm += _nbytes(c.ssm)
            conv += _nbytes(c.conv)
        elif c is not None:
            raise TypeError(f"unknown cache entry {type(c).__name__}")
    if kv % seq_len:
        raise ValueError(f"KV cache of {kv} bytes is not a whole number of bytes per token over {seq_len} positions")
    accounted = kv + ssm + conv
    if accounted != cache.nbytes():
        raise ValueError(f"cache holds {cache.nbytes()} bytes, {accounted} accounted for")
    return {"kv_cache_bytes_per_token": kv // seq_len, "ssm_state_bytes_per_sequence": ssm,
            "conv_state_bytes_per_sequence": conv}


# the exported model's cache dtypes (bf16 activations, fp32 SSM state), on both sides of the comparison
DTYPES = {"kv_cache": "bf16", "ssm_state": "fp32", "conv_state": "bf16"}


def analytic_cache_bytes(layout: Layout) -> dict[str, int]:
    return {"kv_cache_bytes_per_token": kv_cache_bytes_per_token(layout, DTYPES["kv_cache"]),
            "ssm_state_bytes_per_sequence": ssm_state_bytes_per_sequence(layout, DTYPES["ssm_state"]),
            "conv_state_bytes_per_sequence": conv_state_bytes_per_sequence(layout, DTYPES["conv_state"])}


def measure_memory(layout: Layout) -> dict[str, Any]:
    """{"layout", "dtypes", "memory": {KEY: {"analytic", "measured"}}} for the full-width model (meta)."""
    analytic, measured = analytic_cache_bytes(layout), measured_cache_bytes(layout)
    return {"layout": layout.name, "dtypes": dict(DTYPES),
            "memory": {k: {"analytic": analytic[k], "measured": measured[k]} for k in KEYS}}
