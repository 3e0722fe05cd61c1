"""Per-layer importance of a base layout (what the MiniPuzzle pipeline measures; docs/search.md).

File format (JSON), one score per layer of the base, higher = more important to keep:

    {"base": "nemotron-h-56b",                      # optional: checked against the base's name and depth
     "metric": "MSE of pre-LM-head activations with the layer's output zeroed, 128 samples",   # free text
     "scores": [0.91, 0.12, ...]}                   # len == base layers

or `"layers": [{"index": 0, "score": 0.91}, ...]` (every index once). Scores must be finite and >= 0.
Retained importance of a candidate = sum of its kept layers' scores / sum of all scores.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from designer.layout import Layout, LayoutError


def load_importance(path: "str | Path", base: Layout) -> np.ndarray:
    p = Path(path)
    src = str(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"no such importance file {src!r}", key="importance") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LayoutError(f"not a JSON importance file: {e}", source=src) from None
    if not isinstance(data, dict):
        raise LayoutError("expected a JSON object with 'scores' (one per layer) or 'layers'", source=src)
    if "base" in data and data["base"] not in (base.name, None):
        raise LayoutError(f"scores are for {data['base']!r}, the search base is {base.name!r}", source=src,
                          key="base")
    n = base.num_layers
    if "scores" in data:
        scores = data["scores"]
        if not isinstance(scores, list) or len(scores) != n:
            got = len(scores) if isinstance(scores, list) else type(scores).__name__
            raise LayoutError(f"expected {n} scores (one per layer of {base.name}), got {got}", source=src,
                              key="scores")
    elif "layers" in data:
        rows = data["layers"]
        if not isinstance(rows, list):
            raise LayoutError("expected a list of {index, score}", source=src, key="layers")
        scores = [None] * n
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("index"), int) or not 0 <= row["index"] < n:
                raise LayoutError(f"expected {{index: 0..{n - 1}, score}}, got {row!r}", source=src, key="layers")
            if scores[row["index"]] is not None:
                raise LayoutError("listed twice", source=src, key="layers", layer=row["index"])
            scores[row["index"]] = row.get("score")
        missing = [i for i, s in enumerate(scores) if s is None]
        if missing:
            raise LayoutError(f"no score for layers {missing[:10]}{'...' if len(missing) > 10 else ''}", source=src,
                              key="layers", layer=missing[0])
    else:
        raise LayoutError("expected 'scores' (one per layer) or 'layers' ([{index, score}])", source=src)
    for i, s in enumerate(scores):
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
            raise LayoutError(f"score must be a finite number >= 0, got {s!r}", source=src, key="scores", layer=i)
    arr = np.asarray(scores, dtype=float)
    if arr.sum() <= 0:
        raise LayoutError("every score is 0: nothing to rank layers by", source=src, key="scores")
    return arr


def best_retained(base: Layout, scores: np.ndarray, kinds: str) -> list[np.ndarray]:
    """Per kind (in `kinds` order): cumulative sum of that kind's scores sorted best first, from 0 layers
    kept, as a share of the total. best[k][n] is the most importance n layers of kind k can retain (the
    integer program's bound before the placement rules)."""
    total = scores.sum()
    out = []
    for s in kinds:
        vals = np.sort(scores[[i for i, c in enumerate(base.pattern) if c == s]])[::-1]
        out.append(np.concatenate([[0.0], np.cumsum(vals)]) / total)
    return out
