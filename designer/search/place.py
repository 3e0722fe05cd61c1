"""Which layers a candidate keeps (prune mode: an exact integer program) or where they go (fresh mode).

`keep_layers` solves, with PuLP's CBC: binary x_i = keep base layer i;
  maximise   sum_i importance_i x_i, exactly; then, among the choices that keep that importance (a second
             program with it as a constraint), the tie-breaks: keep Mamba/FFN pairs together, attention evenly
             spread (a second answer that keeps less importance than the first, by solver tolerance, is not used)
  subject to sum of x over each kind = the candidate's count;
             NH001 (when selected): every kept non-Mamba layer has a kept Mamba layer before it;
             NH002: every kept non-FFN layer has a kept FFN after it;
             NH003: a kept attention layer i and a kept non-FFN layer j > i need a kept FFN between them;
             constraints.max_consecutive {s: c}: in any base interval [a, b] whose s-layers number m > c,
             keeping more than c of them needs a kept non-s layer in [a, b].
(NH003 is written as "keep the FFN that follows it in the base" when the base has one there: sufficient,
and much tighter for the solver.) The rule engine checks every emitted layout anyway.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from designer.layout import ATTENTION, MAMBA, MLP, MOE, Layout

FFN = (MLP, MOE)
PAIRS = "PAIRS"     # llama/qwen2 models: the pattern must stay `*-` repeated (one HF decoder layer per pair)
TIE = 1e-4          # weight of the attention-spread term against the pair term in the second (tie-break) pass
KEEP_TOL = 1e-9     # the second pass may lose at most this share of the first pass's (normalised) importance


def counts_of(pattern: str, keep: Sequence[int]) -> dict[str, int]:
    out = {s: 0 for s in dict.fromkeys(pattern)}
    for i in keep:
        out[pattern[i]] += 1
    return out


def selection_ok(base: str, keep: Sequence[int], rule_ids: Sequence[str]) -> bool:
    """Whether keeping `keep` of `base` satisfies the rules as keep_layers poses them (place.py): NH001 a kept
    Mamba before every kept non-Mamba, NH002 a kept FFN after every kept non-FFN, NH003 a kept attention
    layer keeps the FFN that follows it in the base (else: a kept FFN before the next kept non-FFN)."""
    kept = sorted(keep)
    ks = set(kept)
    if not kept:
        return False
    pat = [base[i] for i in kept]
    if PAIRS in rule_ids and ("".join(pat) != "*-" * (len(pat) // 2)
                              or any(base[i] != ATTENTION or i + 1 not in ks for i in kept[::2])):
        return False
    if "NH001" in rule_ids and pat[0] != MAMBA:
        return False
    if "NH002" in rule_ids and pat[-1] not in FFN:
        return False
    if "NH003" in rule_ids:
        for pos, i in enumerate(kept):
            if base[i] != ATTENTION:
                continue
            if i + 1 < len(base) and base[i + 1] in FFN:
                if i + 1 not in ks:
                    return False
            elif pos + 1 >= len(kept) or base[kept[pos + 1]] not in FFN:
                return False
    return True


def greedy_drop(base: str, scores: Sequence[float], rule_ids: Sequence[str], *,
                done: Callable[[list[int]], bool],
                may_drop: Callable[[str, dict[str, int]], bool] = lambda kind, left: True,
                max_consecutive: dict[str, int] | None = None) -> list[int] | None:
    """The greedy answer keep_layers is compared with: from all of `base`, drop the least important unit (a
    layer; under PAIRS an `*-` pair, by the sum of its scores; ties: the deeper first) whose kind may_drop(kind,
    kept counts) allows and whose removal keeps selection_ok and lengthens no run of a kind past its
    max_consecutive (as keep_layers poses it), until done(keep). None if it gets stuck."""
    keep = list(range(len(base)))
    score = np.asarray(scores, dtype=float)
    if PAIRS in rule_ids:
        units = [(i, i + 1) for i in range(len(base) - 1) if base[i] == ATTENTION and base[i + 1] == MLP]
    else:
        units = [(i,) for i in range(len(base))]
    while not done(keep):
        live = [u for u in units if all(i in keep for i in u)]
        left = counts_of(base, keep)
        for u in sorted(live, key=lambda u: (float(score[list(u)].sum()), -u[0])):
            trial = [j for j in keep if j not in u]
            if all(may_drop(base[i], left) for i in u) and selection_ok(base, trial, rule_ids) \
                    and runs_ok(base, keep, trial, max_consecutive or {}):
                keep = trial
                break
        else:
            return None
    return keep


def longest_run(base: str, keep: Sequence[int], kind: str) -> int:
    """The longest run of `kind` in the pattern of the kept layers."""
    best = run = 0
    for i in keep:
        run = run + 1 if base[i] == kind else 0
        best = max(best, run)
    return best


def runs_ok(base: str, keep: Sequence[int], trial: Sequence[int], max_consecutive: dict[str, int]) -> bool:
    """Whether `trial` (keep minus a unit) keeps every kind's longest run within its limit, or no longer than
    `keep` already had it (a base that breaks a limit does not stop the greedy)."""
    return all(longest_run(base, trial, s) <= max(c, longest_run(base, keep, s)) for s, c in max_consecutive.items())


def keep_layers(base_pattern: str, counts: dict[str, int], importance: Sequence[float] | None = None, *,
                rule_ids: set[str] = frozenset(), max_consecutive: dict[str, int] | None = None,
                time_limit_s: float = 20.0) -> list[int] | None:
    """Indices of the base layers to keep (sorted), or None when no choice satisfies the constraints."""
    import pulp

    n = len(base_pattern)
    if any(base_pattern.count(s) < c for s, c in counts.items()):
        return None
    imp = np.ones(n) if importance is None else np.asarray(importance, dtype=float)
    scale = max(float(np.abs(imp).max()), 1e-12)
    prob = pulp.LpProblem("keep_layers", pulp.LpMaximize)
    x = [prob.add_variable(f"x{i}", cat="Binary") for i in range(n)]
    by_kind = {s: [i for i, c in enumerate(base_pattern) if c == s] for s in set(base_pattern)}
    for s, idx in by_kind.items():
        prob += pulp.lpSum(x[i] for i in idx) == counts.get(s, 0), f"count_{ord(s)}"
    # tie-breaks: Mamba followed by an FFN kept as a pair; attention near evenly spaced ranks
    pairs = [i for i in range(n - 1) if base_pattern[i] == MAMBA and base_pattern[i + 1] in FFN]
    y = {i: prob.add_variable(f"y{i}", lowBound=0, upBound=1) for i in pairs}
    for i, v in y.items():
        prob += v <= x[i]
        prob += v <= x[i + 1]
    att = by_kind.get(ATTENTION, [])
    spread = np.zeros(n)
    k = counts.get(ATTENTION, 0)
    if att and k:
        targets = np.linspace(0, len(att) - 1, k) if k > 1 else np.array([(len(att) - 1) / 2])
        for r, i in enumerate(att):
            spread[i] = -float(np.min(np.abs(targets - r))) / len(att)
    importance_expr = pulp.lpSum((imp[i] / scale) * x[i] for i in range(n))
    tie_expr = pulp.lpSum(TIE * spread[i] * x[i] for i in range(n)) + pulp.lpSum(y.values())
    is_ffn = [c in FFN for c in base_pattern]
    if "NH001" in rule_ids:
        for j in range(n):
            if base_pattern[j] != MAMBA:
                prob += x[j] <= pulp.lpSum(x[i] for i in range(j) if base_pattern[i] == MAMBA)
    if "NH002" in rule_ids:
        for j in range(n):
            if not is_ffn[j]:
                prob += x[j] <= pulp.lpSum(x[i] for i in range(j + 1, n) if is_ffn[i])
    if "NH003" in rule_ids:
        for i in att:
            if i + 1 < n and is_ffn[i + 1]:
                prob += x[i] <= x[i + 1]          # keep the FFN that follows it in the base: sufficient, tight
                continue
            if i == n - 1:
                prob += x[i] == 0
                continue
            for j in range(i + 1, n):
                if not is_ffn[j]:
                    prob += x[i] + x[j] <= 1 + pulp.lpSum(x[m] for m in range(i + 1, j) if is_ffn[m])
            prob += x[i] <= pulp.lpSum(x[m] for m in range(i + 1, n) if is_ffn[m])
    for s, limit in (max_consecutive or {}).items():
        idx = by_kind.get(s, [])
        for a_pos in range(len(idx)):
            for b_pos in range(a_pos + limit, len(idx)):
                a, b = idx[a_pos], idx[b_pos]
                m = b_pos - a_pos + 1
                others = [x[t] for t in range(a, b + 1) if base_pattern[t] != s]
                prob += pulp.lpSum(x[t] for t in idx[a_pos:b_pos + 1]) - limit <= m * pulp.lpSum(others)
    # pass 1: the most importance, nothing else in the objective
    prob.setObjective(importance_expr)
    prob.solve(_solver(time_limit_s))
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return None
    first = [i for i in range(n) if (x[i].value() or 0) > 0.5]
    if not y and not np.any(spread):
        return first
    # pass 2: that importance held (to a tiny relative tolerance), the tie-breaks optimised
    best = float(imp[first].sum())
    prob += importance_expr >= (best - KEEP_TOL * max(abs(best), 1e-12)) / scale, "keep_importance"
    prob.setObjective(tie_expr)
    prob.solve(_solver(time_limit_s))
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return first
    second = [i for i in range(n) if (x[i].value() or 0) > 0.5]
    return second if float(imp[second].sum()) >= best - 1e-12 * abs(best) else first


def _solver(time_limit_s: float):
    """CBC: a `cbc` on PATH when there is one, else the binary bundled with PuLP (deprecated name in PuLP 3)."""
    import warnings

    import pulp
    coin = pulp.COIN_CMD(msg=False, timeLimit=time_limit_s)
    if coin.available():
        return coin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s)


def interleave(counts: dict[str, int]) -> str:
    """A fresh Nemotron-style pattern: attention layers evenly spread, each right after a Mamba layer and
    followed by an FFN (`M*-`); the other layers alternate Mamba and FFN, starting with Mamba and ending
    with an FFN (MoE layers, if any, take the FFN slots after the MLPs)."""
    n_m, n_a = counts.get(MAMBA, 0), counts.get(ATTENTION, 0)
    ffn = [MLP] * counts.get(MLP, 0) + [MOE] * counts.get(MOE, 0)
    pair_ffn, rest_ffn = ffn[:n_a], ffn[n_a:]
    # Mamba and the remaining FFNs, spread proportionally (Bresenham), Mamba as early as possible: the
    # sequence starts with Mamba and, when any FFN remains, ends with one
    seq: list[str] = []
    total = n_m + len(rest_ffn)
    fi = mi = 0
    for t in range(total):
        want_m = math.ceil((t + 1) * n_m / total) if total else 0
        if mi < want_m:
            seq.append(MAMBA)
            mi += 1
        else:
            seq.append(rest_ffn[fi])
            fi += 1
    if n_a and len(pair_ffn) < n_a:      # not enough FFNs to follow every attention: placed bare (rules say so)
        pair_ffn += [""] * (n_a - len(pair_ffn))
    # insert attention units after evenly spaced Mamba layers
    m_pos = [i for i, c in enumerate(seq) if c == MAMBA]
    units: dict[int, str] = {}
    if n_a:
        if m_pos:
            picks = [m_pos[min(len(m_pos) - 1, int((r + 0.5) * len(m_pos) / n_a))] for r in range(n_a)]
        else:
            picks = [max(0, len(seq) - 1)] * n_a
        for r, p in enumerate(picks):
            units[p] = units.get(p, "") + ATTENTION + pair_ffn[r]
    out = []
    for i, c in enumerate(seq):
        out.append(c + units.pop(i, ""))
    out.append("".join(units.values()))
    return "".join(out)


def kept_pattern(base: Layout, keep: Sequence[int]) -> str:
    return "".join(base.pattern[i] for i in keep)
