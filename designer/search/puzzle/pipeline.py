"""MiniPuzzle at proxy scale, the five stages chained (Nemotron-H paper, arXiv 2504.03624 §4; docs/minipuzzle.md):

1. importance: each layer's output zeroed, pre-LM-head MSE over N samples (and FFN neurons by activation):
   designer.search.puzzle.importance (part A);
2. per-kind ranking of the layers (Mamba, attention, FFN) by that score;
3. the layer selection under a memory budget: exactly, as integer programs (every count vector of kinds whose
   memory fits, best importance bound first, each placed by designer.search.place.keep_layers under
   NH001-NH003), and greedily (drop the least important layer the rules allow until the budget holds);
4. a short distillation of the top `candidates` Pareto points (memory vs retained importance), best held-out
   loss wins;
5. a longer distillation of the winner, beside the same student trained from scratch for the same tokens.

Memory and throughput are the analytic profiler's at a serving scenario (designer.search.assumptions): the
memory of a selection depends only on how many layers of each kind it keeps (one pipeline stage).
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from designer.layout import ATTENTION, MLP, Layout, LayoutError
from designer.search.assumptions import Assumptions, Metrics, evaluate
from designer.search.place import PAIRS, counts_of, greedy_drop, selection_ok

HYBRID_RULES = ("NH001", "NH002", "NH003")
DENSE_FAMILIES = ("llama", "qwen2")


# --------------------------------------------------------------------------------------------------
# Stage 2: ranking


def kind_ranking(pattern: str, scores: Sequence[float]) -> dict[str, list[int]]:
    """Per layer kind (in order of first appearance), its layer indices from most to least important (ties:
    shallower first). The one ranking: importance.rank_by_kind reports it too."""
    out: dict[str, list[int]] = {}
    for s in dict.fromkeys(pattern):
        idx = [i for i, c in enumerate(pattern) if c == s]
        out[s] = sorted(idx, key=lambda i: (-float(scores[i]), i))
    return out


# --------------------------------------------------------------------------------------------------
# Stage 3: the selection under a budget


@dataclass
class Selection:
    """A set of kept layers of the parent and what it costs."""

    method: str                      # "mip" | "greedy"
    keep: list[int]
    pattern: str
    counts: dict[str, int]
    retained_importance: float       # kept scores / all scores
    memory_bytes: float
    throughput_tokens_per_s: float
    params: int
    solve_s: float = 0.0
    programs_solved: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rules_that_hold(pattern: str, family: str | None = None) -> tuple[str, ...]:
    """The hybrid placement rules the parent's own pattern satisfies: a student must keep satisfying them; a
    dense family (llama, qwen2) adds PAIRS: the student's pattern is `*-` repeated, whole pairs kept."""
    rules = tuple(r for r in HYBRID_RULES if selection_ok(pattern, range(len(pattern)), (r,)))
    return rules + (PAIRS,) if family in DENSE_FAMILIES else rules


class Costs:
    """The profiler's metrics of the parent's selections, cached by the counts of kept layers per kind."""

    def __init__(self, parent: Layout, assumptions: Assumptions):
        self.parent, self.assumptions = parent, assumptions
        self._cache: dict[tuple, Metrics] = {}

    def pattern_for(self, counts: dict[str, int]) -> str:
        left = dict(counts)
        out = []
        for c in self.parent.pattern:
            if left.get(c, 0) > 0:
                out.append(c)
                left[c] -= 1
        return "".join(out)

    def of_counts(self, counts: dict[str, int]) -> Metrics:
        key = tuple(sorted(counts.items()))
        if key not in self._cache:
            self._cache[key] = evaluate(self.parent.replace(pattern=self.pattern_for(counts)), self.assumptions)
        return self._cache[key]

    def of_keep(self, keep: Sequence[int]) -> Metrics:
        return self.of_counts(counts_of(self.parent.pattern, keep))


def _selection(method: str, parent: Layout, keep: Sequence[int], scores: np.ndarray, costs: Costs,
               solve_s: float = 0.0, programs: int = 0) -> Selection:
    keep = sorted(int(i) for i in keep)
    m = costs.of_keep(keep)
    return Selection(method=method, keep=keep, pattern="".join(parent.pattern[i] for i in keep),
                     counts=counts_of(parent.pattern, keep),
                     retained_importance=float(scores[keep].sum() / scores.sum()), memory_bytes=m.memory_bytes,
                     throughput_tokens_per_s=m.throughput_tokens_per_s, params=m.params, solve_s=solve_s,
                     programs_solved=programs)


@dataclass
class CountPoint:
    counts: dict[str, int]
    memory_bytes: float
    bound: float                     # best retained importance of these counts before placement rules


def feasible_counts(parent: Layout, scores: np.ndarray, budget_bytes: float, costs: Costs,
                    min_per_kind: int = 1, pairs: bool = False) -> list[CountPoint]:
    """Every count vector (each kind from min_per_kind to all of it, at least one layer of each kind the
    parent has) whose memory fits the budget, with its importance bound; best bound first. pairs: only as many
    attention layers as FFNs (a dense family's `*-` pairs)."""
    kinds = list(dict.fromkeys(parent.pattern))
    ranked = {s: np.sort(scores[[i for i, c in enumerate(parent.pattern) if c == s]])[::-1] for s in kinds}
    ranges = [range(min(min_per_kind, len(ranked[s])), len(ranked[s]) + 1) for s in kinds]
    total = scores.sum()
    out = []
    for combo in itertools.product(*ranges):
        counts = dict(zip(kinds, combo))
        if not any(combo) or (pairs and counts.get(ATTENTION, 0) != counts.get(MLP, 0)):
            continue
        m = costs.of_counts(counts)
        if m.memory_bytes <= budget_bytes:
            bound = sum(float(ranked[s][:n].sum()) for s, n in counts.items()) / total
            out.append(CountPoint(counts, m.memory_bytes, bound))
    out.sort(key=lambda p: (-p.bound, p.memory_bytes))
    return out


def mip_select(parent: Layout, scores: np.ndarray, budget_bytes: float, costs: Costs,
               rule_ids: Sequence[str] = HYBRID_RULES, points: list[CountPoint] | None = None,
               min_per_kind: int = 1) -> tuple[Selection | None, list[Selection]]:
    """The most retained importance under the budget: count vectors in order of their bound, each placed
    exactly by keep_layers' integer program, until no bound can beat the best placed (so the answer is exact).
    Returns (the best, every selection placed on the way)."""
    from designer.search.place import keep_layers
    t0 = time.perf_counter()
    points = feasible_counts(parent, scores, budget_bytes, costs, min_per_kind, PAIRS in rule_ids) \
        if points is None else points
    best: Selection | None = None
    placed: list[Selection] = []
    for p in points:
        if best is not None and p.bound <= best.retained_importance + 1e-12:
            break
        keep = keep_layers(parent.pattern, p.counts, scores, rule_ids=set(rule_ids))
        if keep is None or not selection_ok(parent.pattern, keep, rule_ids):
            continue
        sel = _selection("mip", parent, keep, scores, costs)
        placed.append(sel)
        if best is None or sel.retained_importance > best.retained_importance + 1e-12:
            best = sel
    if best is not None:
        best.solve_s, best.programs_solved = time.perf_counter() - t0, len(placed)
    return best, placed


def greedy_select(parent: Layout, scores: np.ndarray, budget_bytes: float, costs: Costs,
                  rule_ids: Sequence[str] = HYBRID_RULES, min_per_kind: int = 1) -> Selection | None:
    """place.greedy_drop until the budget holds (at least min_per_kind of each kind kept); None if it gets
    stuck."""
    t0 = time.perf_counter()
    keep = greedy_drop(parent.pattern, scores, rule_ids, done=lambda k: costs.of_keep(k).memory_bytes <= budget_bytes,
                       may_drop=lambda kind, left: left[kind] > min_per_kind)
    return None if keep is None else _selection("greedy", parent, keep, scores, costs, time.perf_counter() - t0)


def pareto_candidates(parent: Layout, scores: np.ndarray, points: list[CountPoint], costs: Costs, k: int,
                      rule_ids: Sequence[str], first: Selection | None) -> list[Selection]:
    """Up to k selections on the memory vs importance front: the MIP's answer first, then the front's count
    vectors by bound (each placed by the integer program)."""
    from designer.search.pareto import pareto_mask
    from designer.search.place import keep_layers
    out = [first] if first is not None else []
    if not points:
        return out
    vals = np.array([[p.memory_bytes, -p.bound] for p in points])
    front = [p for p, on in zip(points, pareto_mask(vals)) if on]
    for p in front:
        if len(out) >= k:
            break
        if any(s.counts == p.counts for s in out):
            continue
        keep = keep_layers(parent.pattern, p.counts, scores, rule_ids=set(rule_ids))
        if keep is not None and selection_ok(parent.pattern, keep, rule_ids):
            out.append(_selection("mip", parent, keep, scores, costs))
    return out[:k]


# --------------------------------------------------------------------------------------------------
# The chain


@dataclass(frozen=True)
class PuzzleSettings:
    samples: int = 128
    sample_len: int = 256
    candidates: int = 3
    short_steps: int = 50
    long_steps: int = 200
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 1e-3
    temperature: float = 1.0
    hidden_mse_weight: float = 0.0
    device: str = "cpu"
    seed: int = 0
    neurons: bool = True
    assumptions: Assumptions = field(default_factory=Assumptions)

    def train_kwargs(self) -> dict[str, Any]:
        return dict(task="text", batch_size=self.batch_size, seq_len=self.seq_len, lr=self.lr, device=self.device,
                    seed=self.seed)


Report = Callable[[str], None]
StepProgress = Callable[[str], Callable | None]       # stage name -> a distill progress callback (or None)


def budget_bytes_for(parent_memory: float, *, budget_bytes: float | None, keep_fraction: float | None) -> float:
    if (budget_bytes is None) == (keep_fraction is None):
        raise LayoutError("give a memory budget (--budget-gib) or a share of the parent's memory "
                          "(--keep-fraction), one of them", key="budget")
    if keep_fraction is not None:
        if not 0 < keep_fraction < 1:
            raise LayoutError(f"--keep-fraction must be in (0, 1), got {keep_fraction}", key="keep_fraction")
        return keep_fraction * parent_memory
    if not budget_bytes > 0:
        raise LayoutError(f"the budget must be > 0 bytes, got {budget_bytes}", key="budget")
    if budget_bytes >= parent_memory:
        raise LayoutError(f"the parent already fits the budget ({parent_memory / 2**30:.4f} GiB <= "
                          f"{budget_bytes / 2**30:.4f} GiB): nothing to prune", key="budget")
    return budget_bytes


def check_budget(parent: Layout, budget: float, costs: Costs) -> None:
    """LayoutError when even one layer of each kind does not fit the budget (checked before any model runs)."""
    smallest = costs.of_counts({s: 1 for s in dict.fromkeys(parent.pattern)}).memory_bytes
    if smallest > budget:
        raise LayoutError(f"no selection of the parent's layers fits {budget / 2**30:.4f} GiB; one layer of each "
                          f"kind needs {smallest / 2**30:.4f} GiB", key="budget")


def select_stage(parent: Layout, scores: np.ndarray, budget: float, assumptions: Assumptions,
                 candidates: int = 3) -> dict[str, Any]:
    """Stages 2-3 (and the candidate list of stage 4) without any model: what `minipuzzle` decides."""
    costs = Costs(parent, assumptions)
    rule_ids = rules_that_hold(parent.pattern, parent.family)
    check_budget(parent, budget, costs)
    points = feasible_counts(parent, scores, budget, costs, pairs=PAIRS in rule_ids)
    if not points:
        raise LayoutError(f"no selection of the parent's layers fits {budget / 2**30:.4f} GiB with the layer "
                          "pairs its family needs", key="budget")
    mip, _ = mip_select(parent, scores, budget, costs, rule_ids, points)
    greedy = greedy_select(parent, scores, budget, costs, rule_ids)
    cands = pareto_candidates(parent, scores, points, costs, candidates, rule_ids, mip)
    parent_m = costs.of_keep(range(parent.num_layers))
    return {"costs": costs, "rules": list(rule_ids), "mip": mip, "greedy": greedy, "candidates": cands,
            "parent_metrics": parent_m, "feasible_count_vectors": len(points),
            "ranking": kind_ranking(parent.pattern, scores)}


def mip_vs_greedy(mip: Selection | None, greedy: Selection | None) -> dict[str, Any]:
    out: dict[str, Any] = {"mip": mip.to_dict() if mip else None, "greedy": greedy.to_dict() if greedy else None}
    if mip and greedy:
        out["retained_importance_gain"] = mip.retained_importance - greedy.retained_importance
        out["same_choice"] = mip.keep == greedy.keep
    return out


def run_minipuzzle(teacher_dir, *, budget_bytes: float | None = None, keep_fraction: float | None = None,
                   settings: PuzzleSettings = PuzzleSettings(), out_dir=None, say: Report | None = None,
                   bar: StepProgress | None = None) -> dict[str, Any]:
    """The five stages on the trained model in teacher_dir; returns the report document (docs/minipuzzle.md)."""
    from pathlib import Path

    import torch

    from designer.search.puzzle.distill import distill, heldout_loss, RunSettings, train_from_scratch
    from designer.search.puzzle.importance import (importance_doc, layer_importance, neuron_importance,
                                                   samples_from_task)
    from designer.search.puzzle.modeldir import load_model_dir
    from designer.search.puzzle.student import init_student
    say = say or (lambda text: None)
    bar = bar or (lambda name: None)
    out = Path(out_dir) if out_dir is not None else None
    timings: dict[str, float] = {}
    t = time.perf_counter()
    parent, teacher, model_py = load_model_dir(teacher_dir)
    teacher.to(torch.device(settings.device)).eval()
    eval_settings = RunSettings(kind="distill", seq_len=settings.seq_len, batch_size=settings.batch_size,
                                seed=settings.seed)
    a = settings.assumptions
    parent_m = evaluate(parent, a)
    budget = budget_bytes_for(parent_m.memory_bytes, budget_bytes=budget_bytes, keep_fraction=keep_fraction)
    check_budget(parent, budget, Costs(parent, a))     # before the expensive stages

    # 1. importance
    say(f"stage 1: importance of {parent.num_layers} layers over {settings.samples} samples")
    samples = samples_from_task("text", n=settings.samples, seq_len=settings.sample_len, seed=settings.seed)
    layer = layer_importance(teacher, samples.to(settings.device))
    neurons = neuron_importance(teacher, samples.to(settings.device)) if settings.neurons else {}
    doc = importance_doc(parent, layer, neurons, f"MSE of pre-LM-head activations with the layer's output "
                                                 f"zeroed, {settings.samples} samples of the text task")
    scores = np.asarray(doc["scores"], dtype=float)
    if not scores.sum() > 0:
        raise LayoutError("every layer's importance is 0: nothing to rank layers by", key="importance")
    timings["importance_s"] = time.perf_counter() - t

    # 2-3. ranking and selection
    t = time.perf_counter()
    say(f"stage 2-3: selection under {budget / 2**20:.2f} MiB (parent {parent_m.memory_bytes / 2**20:.2f} MiB)")
    sel = select_stage(parent, scores, budget, a, settings.candidates)
    if sel["mip"] is None:
        raise LayoutError(f"no selection satisfies the rules {', '.join(sel['rules'])} within the budget",
                          key="budget")
    timings["selection_s"] = time.perf_counter() - t

    # 4. short distillation of the candidates
    t = time.perf_counter()
    parent_loss = heldout_loss(teacher, eval_settings, settings.device)
    rows = []
    for n, cand in enumerate(sel["candidates"]):
        say(f"stage 4: candidate {n + 1}/{len(sel['candidates'])} {cand.pattern} ({settings.short_steps} steps)")
        _, student = init_student(teacher, parent, cand.keep, model_py=model_py)
        r = distill(teacher, student, steps=settings.short_steps, temperature=settings.temperature,
                    hidden_mse_weight=settings.hidden_mse_weight, resume=out is not None,
                    out_dir=out / f"candidate-{n}" if out else None, progress=bar(f"candidate {n + 1}"),
                    run_id={"student": cand.pattern, "keep": cand.keep}, **settings.train_kwargs())
        rows.append({**cand.to_dict(), "loss_before_distill": r["heldout_loss_before"],
                     "loss_after_short_distill": r["heldout_loss_after"], "loss_curve": r["loss_curve"]})
        del student
    best = min(range(len(rows)), key=lambda i: rows[i]["loss_after_short_distill"])
    rows[best]["winner"] = True
    winner = sel["candidates"][best]
    timings["candidates_s"] = time.perf_counter() - t

    # 5. long distillation of the winner, and the same student from scratch for the same tokens
    t = time.perf_counter()
    say(f"stage 5: distilling the winner {winner.pattern} ({settings.long_steps} steps)")
    student_layout, student = init_student(teacher, parent, winner.keep, model_py=model_py)
    long = distill(teacher, student, steps=settings.long_steps, temperature=settings.temperature,
                   hidden_mse_weight=settings.hidden_mse_weight, resume=out is not None,
                   out_dir=out / "winner" if out else None, progress=bar("winner"),
                   run_id={"student": winner.pattern, "keep": winner.keep}, **settings.train_kwargs())
    timings["distill_s"] = time.perf_counter() - t
    t = time.perf_counter()
    say(f"stage 5: the same student from scratch ({settings.long_steps} steps)")
    scratch = train_from_scratch(student_layout, steps=settings.long_steps, resume=out is not None,
                                 out_dir=out / "scratch" if out else None, progress=bar("from scratch"),
                                 **settings.train_kwargs())
    timings["scratch_s"] = time.perf_counter() - t
    if out is not None:
        from designer.layout import save_layout
        torch.save(student.state_dict(), out / "student.pt")
        save_layout(student_layout, out / "student.yaml", full=True)
    winner_m = sel["costs"].of_keep(winner.keep)
    return {
        "command": None,
        "parent": {"layout": parent.name, "pattern": parent.pattern, "params": parent_m.params,
                   "heldout_loss": parent_loss, "memory_bytes": parent_m.memory_bytes,
                   "throughput_tokens_per_s": parent_m.throughput_tokens_per_s},
        "student": {"layout": student_layout.name, "pattern": winner.pattern, "keep": winner.keep,
                    "params": winner_m.params, "loss_before_distill": long["heldout_loss_before"],
                    "loss_after_distill": long["heldout_loss_after"],
                    "loss_from_scratch": scratch["heldout_loss_after"],
                    "memory_bytes": winner_m.memory_bytes,
                    "memory_bytes_saved": parent_m.memory_bytes - winner_m.memory_bytes,
                    "predicted_speedup": winner_m.throughput_tokens_per_s / parent_m.throughput_tokens_per_s,
                    "tokens": long["tokens"], "distill_curve": long["loss_curve"],
                    "scratch_curve": scratch["loss_curve"]},
        "mip_vs_greedy": mip_vs_greedy(sel["mip"], sel["greedy"]),
        "candidates": rows,
        "importance": {"metric": doc.get("metric"), "scores": scores.tolist(),
                       "kinds": list(parent.pattern), "ranking": sel["ranking"],
                       "layers": layer},
        "budget": {"memory_bytes": budget, "keep_fraction": keep_fraction, "rules": sel["rules"],
                   "feasible_count_vectors": sel["feasible_count_vectors"], "assumptions": a.to_dict()},
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "assumptions"},
        "timings_s": timings,
    }


def check_settings(settings: PuzzleSettings, names: dict[str, str] | None = None) -> None:
    """The distillation settings (temperature, lr, hidden-MSE weight, steps, sizes) checked as the stages will
    check them, before any model runs: DistillError (`names`: as distill.check_run)."""
    from designer.search.puzzle.distill import RunSettings, check_run
    for steps in (settings.short_steps, settings.long_steps):
        rs = RunSettings(kind="distill", steps=steps, batch_size=settings.batch_size, seq_len=settings.seq_len,
                         lr=settings.lr, temperature=settings.temperature,
                         hidden_mse_weight=settings.hidden_mse_weight, seed=settings.seed)
        check_run(rs, names)
        rs.trainer_config()


def write_outputs(doc: dict, out_dir, html_path=None, json_path=None) -> list[str]:
    """minipuzzle.json under out_dir (and/or at json_path), atomically, then the HTML report when plotly imports
    (designer.present.puzzle is imported only here: the pipeline runs without plotly). Returns notes."""
    import json
    from pathlib import Path

    from designer.layout import atomic_write_text
    text = json.dumps(doc, indent=1, default=str) + "\n"
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "minipuzzle.json", text)
    if json_path is not None:
        atomic_write_text(json_path, text)
    notes = []
    if html_path is not None:
        try:
            import plotly  # noqa: F401
        except ImportError:
            return [f"plotly not installed: no HTML ({html_path} not written)"]
        from designer.present.puzzle import report_html
        atomic_write_text(html_path, report_html(doc))
    return notes


def train_parent(base: Layout, out_dir, *, hidden: int, layers: int, steps: int, batch_size: int, seq_len: int,
                 lr: float = 3e-3, device: str = "cpu", seed: int = 0, progress=None) -> dict[str, Any]:
    """A proxy of `base` (designer.measure.proxy) trained on the text task into out_dir with its weights
    (model.pt), ready for load_model_dir: the parent of a MiniPuzzle run. Returns the trainer's metrics."""
    from pathlib import Path

    from designer.measure.proxy import load_trainer, write_proxy_files
    out = Path(out_dir)
    config = write_proxy_files(base, out, hidden=hidden, layers=layers, copy_model=True, tasks={"text": {}},
                               steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, device=device,
                               seed=seed, save_weights="model.pt", eval_batches=4, eval_batch_size=16)
    trainer = load_trainer()
    cfg = trainer.config_from_dict(config, source=str(out / "proxy.yaml"))
    return trainer.train(cfg, root=out, quiet=True, progress=progress)
