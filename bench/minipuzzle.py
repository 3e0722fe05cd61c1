"""The MiniPuzzle must-show (issue 15) in one GPU call: a Nemotron-H-56B-shaped parent proxy trained on the text
task, then `designer minipuzzle` under a budget that forces about the 56B -> 47B cut (fewer attention layers
and fewer layers overall), writing bench/results/minipuzzle.json and .html.

    python bench/minipuzzle.py --device cuda --budget-s 530   # H200: scaled to end inside 530 s
    python bench/minipuzzle.py --device cuda          # H200, torch kernels, the full step counts below
    python bench/minipuzzle.py --tiny                 # CPU check, well under 2 minutes

Needs PuLP (the integer programs); it is checked before the parent is trained. plotly is optional: without
it the JSON is written and the HTML report skipped.

GPU defaults (estimates, not yet measured): parent hidden 512, 30 layers -> 31 layers `M-M-M*-...` with 3
attention layers, 57.5M parameters; 1,500 steps x 32 x 512 tokens (24.6M tokens) at ~200k tokens/s ~ 2 min;
importance 128 samples x 32 ablations ~ 10 s; 3 candidates x 150 steps and the winner's 600 steps of
distillation (teacher forward + student step ~ 1.4x a training step) plus 600 from-scratch steps ~ 3-4 min.
Every step count is an option; `timings_s` in the JSON says where the time went.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a CPU-sized check (hidden 32, a few steps)")
    ap.add_argument("--device", default=None, help="cuda | cpu (default cuda, cpu with --tiny)")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--parent-steps", type=int, default=None)
    ap.add_argument("--short-steps", type=int, default=None)
    ap.add_argument("--distill-steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--keep-fraction", type=float, default=None,
                    help="budget as a share of the parent's memory (default 0.80: 56B -> 47B is 0.75 at the "
                         "search's scenario)")
    ap.add_argument("--context", type=int, default=None, help="serving context of the memory budget")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="fit the run into this many seconds: a 40-step probe of the parent measures tokens/s, then "
                         "the parent, candidate and winner step counts are scaled down together (never up) so the "
                         "whole run is predicted to end inside the budget")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "minipuzzle"))
    ap.add_argument("--results", default=str(ROOT / "bench" / "results"),
                    help="where minipuzzle[_tiny].json and .html go (default bench/results)")
    args = ap.parse_args(argv)
    tiny = args.tiny
    d = dict(device="cpu" if tiny else "cuda", hidden=32 if tiny else 512, layers=12 if tiny else 30,
             parent_steps=20 if tiny else 1500, short_steps=3 if tiny else 150, distill_steps=10 if tiny else 600,
             batch_size=4 if tiny else 32, seq_len=32 if tiny else 512, keep_fraction=0.95 if tiny else 0.80,
             context=2048 if tiny else 65536 + 1024)
    o = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in d.items()}
    try:
        import pulp  # noqa: F401
    except ImportError:
        print("error: PuLP is not installed (the layer selection's integer programs need it): carry the pulp wheel "
              "(.whl/extra/pulp-*.whl) and pip install it before running this bench", file=sys.stderr)
        return 2

    import torch

    from designer.layout import load_layout
    from designer.search.assumptions import Assumptions
    from designer.search.puzzle.pipeline import PuzzleSettings, run_minipuzzle, train_parent, write_outputs
    out = Path(args.out + ("-tiny" if tiny else ""))
    t0 = time.perf_counter()
    plan = None
    if args.budget_s:
        probe = train_parent(load_layout("nemotron-h-56b"), out / "probe", hidden=o["hidden"], layers=o["layers"],
                             steps=40, batch_size=o["batch_size"], seq_len=o["seq_len"], device=o["device"])
        o, plan = fit_budget(o, args.budget_s - (time.perf_counter() - t0), probe["tokens_per_s"],
                             candidates=2 if tiny else 3)
        print(f"probe: {probe['tokens_per_s']:,.0f} tokens/s -> parent {o['parent_steps']} steps, candidates "
              f"{o['short_steps']}, winner {o['distill_steps']} (predicted {plan['predicted_s']:.0f} s)", flush=True)
    t_parent = time.perf_counter()
    metrics = train_parent(load_layout("nemotron-h-56b"), out / "parent", hidden=o["hidden"], layers=o["layers"],
                           steps=o["parent_steps"], batch_size=o["batch_size"], seq_len=o["seq_len"],
                           device=o["device"])
    parent_s = time.perf_counter() - t_parent
    print(f"parent: {metrics['params']:,} params, held-out {metrics['heldout_loss']['text']:.4f} nats/byte, "
          f"{metrics['tokens_per_s']:,.0f} tokens/s, {parent_s:.1f} s", flush=True)
    settings = PuzzleSettings(samples=8 if tiny else 128, sample_len=o["seq_len"], candidates=2 if tiny else 3,
                              short_steps=o["short_steps"], long_steps=o["distill_steps"],
                              batch_size=o["batch_size"], seq_len=o["seq_len"], lr=1e-3, device=o["device"],
                              seed=0, assumptions=Assumptions(context=o["context"]))
    doc = run_minipuzzle(out / "parent", keep_fraction=o["keep_fraction"], settings=settings, out_dir=out,
                         say=lambda s: print(s, flush=True))
    doc["command"] = "python bench/minipuzzle.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc["gpu"] = torch.cuda.get_device_name(0) if o["device"].startswith("cuda") else None
    doc["machine"] = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
                      "device": o["device"]}
    doc["parent"]["training"] = {k: metrics[k] for k in ("steps", "batch_size", "seq_len", "tokens_per_s", "train_s",
                                                         "kernels", "dtype")}
    doc["timings_s"]["parent_s"] = parent_s
    doc["budget_plan"] = plan
    doc["timings_s"]["total_s"] = time.perf_counter() - t0
    name = "minipuzzle_tiny" if tiny else "minipuzzle"
    results = Path(args.results)
    for note in write_outputs(doc, None, str(results / f"{name}.html"), json_path=results / f"{name}.json"):
        print(note, flush=True)
    s, p, mg = doc["student"], doc["parent"], doc["mip_vs_greedy"]
    print(f"parent {p['pattern']} loss {p['heldout_loss']:.4f}; student {s['pattern']} ({s['params']:,} params): "
          f"{s['loss_before_distill']:.4f} -> {s['loss_after_distill']:.4f} distilled, {s['loss_from_scratch']:.4f} "
          f"from scratch; saves {s['memory_bytes_saved'] / 2**20:.1f} MiB, {s['predicted_speedup']:.3f}x; "
          f"MIP {mg['mip']['retained_importance']:.4f} vs greedy "
          f"{mg['greedy']['retained_importance'] if mg['greedy'] else float('nan'):.4f}; "
          f"{doc['timings_s']['total_s']:.0f} s -> {results / name}.json")
    return 0


# Cost of each stage in parent-step equivalents, per step of that stage: a distillation step runs the teacher's
# forward beside the student's step (~1.45x), the student is ~0.85x the parent; evaluations and importance are
# the fixed overhead. Rough by design: the plan only has to land inside the budget.
DISTILL_STEP_COST = 1.45 * 0.85
SCRATCH_STEP_COST = 0.85
FIXED_OVERHEAD_S = 45.0


def fit_budget(o: dict, seconds_left: float, tokens_per_s: float, candidates: int = 3) -> tuple[dict, dict]:
    """Scale the step counts in `o` by one factor (<= 1) so the predicted run time fits `seconds_left`."""
    step_s = o["batch_size"] * o["seq_len"] / tokens_per_s

    def cost_steps(d: dict) -> float:
        return (d["parent_steps"] + DISTILL_STEP_COST * (candidates * d["short_steps"] + d["distill_steps"])
                + SCRATCH_STEP_COST * d["distill_steps"])
    factor = min(1.0, max(0.05, (seconds_left - FIXED_OVERHEAD_S) / (cost_steps(o) * step_s)))
    new = {**o, **{k: max(min(o[k], 10), int(o[k] * factor)) for k in ("parent_steps", "short_steps", "distill_steps")}}
    predicted_s = FIXED_OVERHEAD_S + cost_steps(new) * step_s
    return new, {"probe_tokens_per_s": tokens_per_s, "factor": factor, "seconds_left": seconds_left,
                 "predicted_s": predicted_s, "fits": predicted_s <= seconds_left}


if __name__ == "__main__":
    raise SystemExit(main())
