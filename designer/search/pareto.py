"""Pareto front of candidates under several objectives (all maximised: pass minimised ones negated)."""
from __future__ import annotations

import numpy as np

BLOCK = 1024


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values` (n, k), every column maximised.

    A row is dominated when another is >= in every column and > in one; of identical rows only the first
    is kept. Rows are visited in lexicographic order (best first), so a row can only be dominated by one
    visited before it: each block of rows is compared with the front found so far and within itself (a row
    dominated by a dominated row is dominated by that row's dominator too)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.lexsort(tuple(-values[:, j] for j in reversed(range(values.shape[1]))))
    if values.shape[1] == 1:
        mask[order[0]] = True
        return mask
    if values.shape[1] == 2:                 # sorted by column 0 desc: keep strict new maxima of column 1
        col = values[order, 1]
        before = np.concatenate([[-np.inf], np.maximum.accumulate(col)[:-1]])
        mask[order[col > before]] = True
        return mask
    front = np.empty((0, values.shape[1]))
    for lo in range(0, n, BLOCK):            # blocks of the sorted rows: against the front, then within the block
        idx = order[lo:lo + BLOCK]
        rows = values[idx]
        alive = np.ones(len(rows), dtype=bool)
        for f0 in range(0, len(front), BLOCK):
            f = front[f0:f0 + BLOCK]
            alive &= ~np.all(f[None, :, :] >= rows[:, None, :], axis=2).any(axis=1)
        idx, rows = idx[alive], rows[alive]
        ge = np.all(rows[:, None, :] >= rows[None, :, :], axis=2)     # ge[i, j]: row i >= row j everywhere
        keep = ~np.triu(ge, 1).any(axis=0)                             # not dominated by an earlier row
        mask[idx[keep]] = True
        front = np.vstack([front, rows[keep]])
    return mask


def dominated_by(values: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Mask of the rows of `values` that dominate `point` (>= everywhere, > somewhere; maximised)."""
    values = np.asarray(values, dtype=np.float64)
    return np.all(values >= point, axis=1) & np.any(values > point, axis=1)
