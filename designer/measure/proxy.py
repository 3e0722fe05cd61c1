"""Proxy layouts and proxy-training files.

A proxy is a small copy of a layout that can be trained in minutes on synthetic tasks: the same pattern
order and the same mix of layer kinds (the attention share above all), with narrower widths and fewer layers.

    proxy_layout(layout, hidden=256, layers=12)      # or scale=1e-3: about that fraction of the parameters
    write_proxy_files(layout, out_dir, steps=500)    # train_proxy.py + proxy_tasks.py + proxy.yaml + proxy_layout.json

How a layout is shrunk:
- depth: the pattern is cut into units after every FFN symbol (`-`, `E`), so each unit is one of the layout's
  motifs (Nemotron-H's `M-` and `M*-`, a Transformer's `*-`). The proxy keeps a number of units of each motif
  proportional to the original (at least one of each), evenly spaced within the motif and in their original
  order. `M-M-M-M*-...` (Nemotron-H 8B, 52 layers: 20 `M-`, 4 `M*-`) at 12 layers becomes `M-M-M-M*-M-M-`
  (13 layers, whole motifs): the Mamba layer that feeds each attention layer stays with it.
- width: hidden goes to the requested size and every other width (attention q/kv width, Mamba d_inner,
  MLP and expert sizes) by the same ratio. Head counts are rounded so that they divide: head_dim halves
  until there are at least 4 heads, the query/kv head ratio and the Mamba heads-per-group ratio are kept.
  The Mamba state size and conv kernel are kept (they are not widths: the state size is what an SSM can
  remember per channel); the chunk length is cut to the sequence length. MoE keeps at most 8 experts with top_k at the original fraction.
- scale=s (instead of hidden/layers) shrinks width and depth by s ** (1/3) each, which keeps about a
  fraction s of the non-embedding parameters (those grow as layers x hidden^2).
- the vocabulary becomes the synthetic tasks' (256 by default), constraints and rule sets are dropped.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from designer.export.model_export import layout_json
from designer.export.template import TEMPLATES, load_template, template_text  # noqa: F401  (TEMPLATES: re-exported)
from designer.layout import (MLP, MOE, Constraints, Layout, LayoutError, ParallelConfig, atomic_write_text,
                             divisors_near)

PROXY_FILES = ("train_proxy.py", "proxy_tasks.py")   # copied verbatim into every proxy directory
PROXY_LAYOUT_FILE = "proxy_layout.json"
DEFAULT_HIDDEN = 256
DEFAULT_LAYERS = 12
DEFAULT_VOCAB = 256
MAX_PROXY_EXPERTS = 8


# --------------------------------------------------------------------------------------------------
# Depth


FFNS = (MLP, MOE)


def pattern_units(pattern: str) -> list[str]:
    """The pattern cut after every FFN (`-` or `E`): `M-M*-E` -> ['M-', 'M*-', 'E']. Each unit is a motif of
    the layout (Nemotron-H's `M-` and `M*-`, a Transformer's `*-`); a pattern without FFNs is cut into single
    symbols, and symbols after the last FFN form one last unit."""
    if not any(s in pattern for s in FFNS):
        return list(pattern)
    units, current = [], ""
    for ch in pattern:
        current += ch
        if ch in FFNS:
            units.append(current)
            current = ""
    return units + ([current] if current else [])


def evenly_spaced(n: int, k: int) -> list[int]:
    """k of range(n), spread out: the middle of each of k equal slices."""
    return [int((i + 0.5) * n / k) for i in range(k)]


def shrink_pattern(pattern: str, layers: int) -> str:
    """About `layers` symbols of `pattern`: whole units (motifs), the same share of each motif (at least one
    of each), evenly spaced and in their original order."""
    if layers >= len(pattern):
        return pattern
    units = pattern_units(pattern)
    kinds: dict[str, list[int]] = {}
    for i, unit in enumerate(units):
        kinds.setdefault(unit, []).append(i)
    target = max(len(kinds), round(layers * len(units) / len(pattern)))
    # largest-remainder apportionment of `target` units over the motifs, at least one each
    quotas = {k: target * len(v) / len(units) for k, v in kinds.items()}
    counts = {k: max(1, int(q)) for k, q in quotas.items()}
    for k in sorted(kinds, key=lambda k: quotas[k] - int(quotas[k]), reverse=True):
        if sum(counts.values()) >= target:
            break
        counts[k] = min(len(kinds[k]), counts[k] + 1)
    keep = sorted(kinds[k][j] for k, n in counts.items() for j in evenly_spaced(len(kinds[k]), n))
    return "".join(units[i] for i in keep)


# --------------------------------------------------------------------------------------------------
# Width


def _round_to(x: float, multiple: int, minimum: int) -> int:
    return max(minimum, int(round(x / multiple)) * multiple)


def _head_dim(head_dim: int, width: int) -> int:
    """Halve head_dim (not below 16) until `width` holds at least 4 heads."""
    while head_dim > 16 and width // head_dim < 4:
        head_dim //= 2
    return head_dim


def shrink_widths(layout: Layout, hidden: int, seq_len: int | None = None) -> dict[str, Any]:
    """The block configs of `layout` scaled to `hidden` (see the module doc); a Mamba chunk longer than
    seq_len is cut to it (the scan pads a short sequence to a whole chunk: same result, wasted work)."""
    r = hidden / layout.hidden_size
    out: dict[str, Any] = {}
    if (a := layout.attention) is not None:
        width = a.num_heads * a.head_dim * r
        head_dim = _head_dim(a.head_dim, int(width))
        heads = max(1, round(width / head_dim))
        kv = divisors_near(heads, heads * a.num_kv_heads / a.num_heads)[0]
        out["attention"] = dataclasses.replace(a, num_heads=heads, num_kv_heads=kv, head_dim=head_dim)
    if (m := layout.mamba) is not None:
        if seq_len:
            m = dataclasses.replace(m, chunk_size=min(m.chunk_size, seq_len))
        if m.version == 2:
            d_inner = m.num_heads * m.head_dim * r
            head_dim = _head_dim(m.head_dim, int(d_inner))
            heads = max(1, round(d_inner / head_dim))
            groups = divisors_near(heads, heads * m.n_groups / m.num_heads)[0]
            out["mamba"] = dataclasses.replace(m, num_heads=heads, head_dim=head_dim, n_groups=groups)
        else:
            dt_rank = m.dt_rank if m.dt_rank == "auto" else max(1, round(int(m.dt_rank) * r))
            out["mamba"] = dataclasses.replace(m, dt_rank=dt_rank)
    if (f := layout.mlp) is not None:
        out["mlp"] = dataclasses.replace(f, intermediate_size=_round_to(f.intermediate_size * r, 16, 16))
    if (e := layout.moe) is not None:
        experts = min(e.num_experts, MAX_PROXY_EXPERTS)
        top_k = max(1, min(experts, round(e.top_k * experts / e.num_experts)))
        shared = _round_to(e.shared_intermediate_size * r, 16, 16) if e.shared_intermediate_size else 0
        out["moe"] = dataclasses.replace(e, num_experts=experts, top_k=top_k, shared_intermediate_size=shared,
                                         intermediate_size=_round_to(e.intermediate_size * r, 16, 16))
    return out


# --------------------------------------------------------------------------------------------------
# The proxy layout


def proxy_sizes(layout: Layout, *, hidden: int | None = None, layers: int | None = None,
                scale: float | None = None) -> tuple[int, int]:
    """(hidden, layers) of the proxy; explicit hidden/layers win over scale, scale over the defaults."""
    if scale is not None and not (0 < scale <= 1):
        raise LayoutError(f"proxy scale must be in (0, 1], got {scale}")
    for key, value in (("hidden", hidden), ("layers", layers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise LayoutError(f"proxy {key} must be a positive integer, got {value!r}")
    if hidden is None:
        if scale is not None:
            h = layout.hidden_size * scale ** (1 / 3)
            hidden = _round_to(h, 64 if h >= 128 else 16, 32)
        else:
            hidden = DEFAULT_HIDDEN
    if layers is None:
        layers = max(1, round(layout.num_layers * scale ** (1 / 3))) if scale is not None else DEFAULT_LAYERS
    return min(hidden, layout.hidden_size), min(layers, layout.num_layers)


def size_flags_error(hidden: int | None, layers: int | None, scale: float | None) -> str | None:
    """What is wrong with the CLI flags --proxy-hidden/--proxy-layers/--proxy-scale, or None."""
    if scale is not None and not 0 < scale <= 1:
        return f"--proxy-scale must be in (0, 1], got {scale}"
    if scale is not None and (hidden or layers):
        return "--proxy-scale sizes the proxy by itself: give it, or --proxy-hidden/--proxy-layers, not both"
    return None


def proxy_layout(layout: Layout, *, hidden: int | None = None, layers: int | None = None,
                 scale: float | None = None, vocab_size: int = DEFAULT_VOCAB,
                 seq_len: int | None = None) -> Layout:
    """A small layout with `layout`'s pattern order and layer mix (see the module doc)."""
    hidden, layers = proxy_sizes(layout, hidden=hidden, layers=layers, scale=scale)
    pattern = shrink_pattern(layout.pattern, layers)
    return layout.replace(
        name=f"{layout.name}-proxy"[:100],
        source=f"proxy of {layout.name}: hidden {layout.hidden_size} -> {hidden}, "
               f"{layout.num_layers} -> {len(pattern)} layers",
        hidden_size=hidden, vocab_size=vocab_size, pattern=pattern,
        max_position_embeddings=seq_len or min(layout.max_position_embeddings, 8192),
        rules=(), constraints=Constraints(), parallel=ParallelConfig(),
        **shrink_widths(layout, hidden, seq_len))


# --------------------------------------------------------------------------------------------------
# Files


def load_trainer():
    """The train_proxy template as a module (imports torch)."""
    return load_template("train_proxy.py")


def proxy_config(name: str, **options) -> dict[str, Any]:
    """The proxy.yaml mapping: ProxyConfig fields, checked by the trainer itself (LayoutError if bad)."""
    trainer = load_trainer()
    data = {"name": name, "layout": PROXY_LAYOUT_FILE, **{k: v for k, v in options.items() if v is not None}}
    try:
        cfg = trainer.config_from_dict(data, source="proxy options")
    except trainer.ConfigError as e:
        raise LayoutError(str(e)) from None
    return dataclasses.asdict(cfg)


def write_proxy_files(layout: Layout, out_dir: str | Path, *, hidden: int | None = None,
                      layers: int | None = None, scale: float | None = None, copy_model: bool = False,
                      **options) -> dict[str, Any]:
    """Write a proxy-training job for `layout` into out_dir and return its config.

    Files: train_proxy.py and proxy_tasks.py (torch-only templates), proxy_layout.json (the proxy layout,
    JSON) and proxy.yaml (the job, written as JSON, which is YAML too). model.py is the exporter's; pass
    copy_model=True to copy the template beside them (what `designer proxy` does). `options` are the
    trainer's ProxyConfig fields: tasks, vocab_size, seq_len, steps, batch_size, lr, seed, device, ...
    `python train_proxy.py` (or torchrun) in out_dir then writes metrics.json there.
    """
    out = Path(out_dir)
    vocab = options.get("vocab_size") or DEFAULT_VOCAB
    config = proxy_config(f"{layout.name}-proxy"[:100], **{**options, "vocab_size": vocab})
    # the job's sequence length (the trainer's default when not given) cuts the Mamba chunk and the positions
    proxy = proxy_layout(layout, hidden=hidden, layers=layers, scale=scale, vocab_size=vocab,
                         seq_len=config["seq_len"])
    out.mkdir(parents=True, exist_ok=True)
    for f in PROXY_FILES + (("model.py",) if copy_model else ()):
        atomic_write_text(out / f, template_text(f))
    atomic_write_text(out / PROXY_LAYOUT_FILE, layout_json(proxy))   # JSON that designer's YAML loader reads too
    atomic_write_text(out / "proxy.yaml", json.dumps(config, indent=1) + "\n")
    return config
