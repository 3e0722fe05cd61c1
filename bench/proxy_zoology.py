"""Zoology's MQAR set-up (Arora et al. 2023, Fig. 2): two-layer models of three families trained on
multi-query associative recall, accuracy vs width, a learning-rate sweep per model and the best run kept.

    python bench/proxy_zoology.py [--budget-s 540]                 # GPU: writes bench/results/proxy_zoology.json
    python bench/proxy_zoology.py --device cpu --tiny              # CPU check: proxy_zoology_cpu.json
    python bench/proxy_zoology.py --append                        # resume the grid in the next device call
    python bench/proxy_zoology.py --merge A.json B.json -o OUT.json  # one file (and plot) from several lanes

Families (each mixer followed by an MLP, as in a Transformer block): attention `*-*-` (RoPE theta 10,000),
hybrid `M-*-` (one Mamba-2 layer, one attention layer), mamba2 `M-M-` (state size from --state-sizes).
Data: proxy_tasks.mqar (Zoology's generator: keys/values from disjoint vocabulary halves, distinct, power-law
query placement a=0.01, loss on the answers only). Needs torch only (designer/export/templates/*.py).
Runs are appended as they finish and the file is rewritten after each, so a run cut off by --budget-s still
leaves every finished run; the accuracy-vs-width plot (proxy_zoology.html, plotly if installed) is optional.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from proxy_mqar import ROOT, TEMPLATES, load_template_file, write_json  # bench/ is sys.path[0] when run as a script
RESULTS = ROOT / "bench" / "results"

FAMILIES = {"attention": "*-*-", "hybrid": "M-*-", "mamba2": "M-M-"}
# Zoology Fig. 2: vocab 8192, 512 tokens, 64 pairs, widths 64-512, lr swept, ~100k training sequences
# On the H200 (bench/results/proxy_zoology_explore_h200.json) every 2,000-step run at lr 3e-3 / 1e-2 stayed on the
# ln(V/2) plateau; lr 1e-3 with a long cosine and short curriculum sequences (tokens_per_pair 16) took a 2-layer
# Transformer past it between steps 1,000 and 2,000 (100% from 4,000), a hybrid from step ~1,500 (47.5% at 3,000)
# 4,000 steps were too short (the transition came at a random step 1,500-3,000+, after the cosine had decayed);
# the 8,000-step grid (bench/results/proxy_zoology.json) took attention 128/256 and the hybrid at 256 to 99-100%
FULL = {"vocab": 8192, "seq_len": 512, "pairs": 64, "widths": "64,128,256,512", "lrs": "1e-3",
        "state_sizes": "16,64", "steps": 8000, "batch": 64, "seeds": "0", "min_kv_pairs": 4, "tokens_per_pair": 16}
TINY = {"vocab": 256, "seq_len": 64, "pairs": 8, "widths": "64", "lrs": "3e-3", "state_sizes": "16",
        "min_kv_pairs": 0, "tokens_per_pair": 0,
        "steps": 150, "batch": 32, "seeds": "0"}


def layout(family: str, width: int, state_size: int, vocab: int, seq_len: int, rope_theta: float | None,
           heads: int = 1, tie: bool = False) -> dict:
    """A two-mixer layout for model.py: `heads` attention heads (Zoology's MQAR attention has one), MLP
    2x width, Mamba-2 expand 2 with head_dim 16 (32 from width 128), the output head tied to the token
    embedding (`tie`, as in Zoology's language model) or separate (the default: tied 2-layer attention stayed
    at 0.2-1% on the H200, widths 64/128/256 at 4,000 steps and 64 at 8,000, where the untied one
    reached 100% at 128 and 256)."""
    head_dim = 16 if width < 128 else 32
    return {"name": f"zoology-{family}-{width}", "family": "nemotron_h", "hidden_size": width,
            "vocab_size": vocab, "tie_word_embeddings": tie, "norm_eps": 1e-5, "pattern": FAMILIES[family],
            "max_position_embeddings": seq_len,
            "mamba": {"version": 2, "num_heads": 2 * width // head_dim, "head_dim": head_dim, "n_groups": 1,
                      "state_size": state_size, "conv_kernel": 4, "conv_bias": True, "proj_bias": False,
                      "chunk_size": min(64, seq_len)},
            "attention": {"num_heads": heads, "num_kv_heads": heads, "head_dim": width // heads,
                          "qkv_bias": False, "rope_theta": rope_theta},
            "mlp": {"intermediate_size": 2 * width, "activation": "swiglu"}}


RUN_KEY = ("family", "width", "state_size", "num_kv_pairs", "seq_len", "vocab", "batch", "lr", "seed", "steps",
           "min_kv_pairs", "tokens_per_pair", "power_a", "rope_theta", "heads", "tie_embeddings", "learned_positions")


def run_key(run: dict, file: dict | None = None) -> tuple:
    """What makes two runs the same run (so --append can resume a grid). Rows of files written before a run
    recorded all of it take the missing settings from their file (`file`: its top level)."""
    file = file or {}
    settings = file.get("settings") or {}
    fallback = {"vocab": settings.get("vocab"), "batch": settings.get("batch"), "tokens_per_pair": 0,
                "min_kv_pairs": file.get("min_kv_pairs", settings.get("min_kv_pairs")),
                "power_a": file.get("power_a"), "rope_theta": file.get("rope_theta"), "heads": file.get("heads"),
                "tie_embeddings": file.get("tie_embeddings", False),
                "learned_positions": file.get("learned_positions", False)}
    return tuple(run[k] if k in run else fallback.get(k) for k in RUN_KEY)


def keyed_runs(file: dict) -> list[tuple[tuple, dict]]:
    """A result file's runs with their keys, each row completed with its whole setting (run_key)."""
    return [(key, {**dict(zip(RUN_KEY, key)), **r}) for r in file["runs"] for key in [run_key(r, file)]]


def add_learned_positions(model, seq_len: int) -> None:
    """Zoology's position signal: a learned absolute position embedding (GPT-2's) added to the token embedding,
    as `model.position_embedding` (so the optimiser and `.to()` see it). Positions count from 0 on every call:
    right for training and evaluation on whole sequences, not for decoding with a cache (unused here)."""
    import torch.nn as nn
    emb = model.body.embedding
    model.position_embedding = nn.Embedding(seq_len, emb.embedding_dim, device=emb.weight.device,
                                            dtype=emb.weight.dtype)
    nn.init.normal_(model.position_embedding.weight, std=0.02)
    emb.register_forward_hook(lambda _m, _inputs, out: out + model.position_embedding.weight[:out.shape[1]])


def gpu_name(device: str) -> str:
    import torch
    return torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else "cpu"


def series_name(run: dict) -> str:
    """One line of the plot: family, state size (Mamba-2 layers), tied output head, step count."""
    state = f", state {run['state_size']}" if run["family"] != "attention" and run.get("state_size") else ""
    tied = ", tied head" if run.get("tie_embeddings") else ""
    learned = ", learned positions" if run.get("learned_positions") else ""
    return f"{run['family']}{state}{tied}{learned}, {run['steps']} steps"


def best_by_family(runs: list[dict]) -> list[dict]:
    """The best run per (family, width, state size) over learning rate, seed, output head and step count, as
    Zoology reports each point (best of its lr sweep), with the setting that reached it."""
    best: dict[tuple, dict] = {}
    for r in runs:   # runs of another task size (pairs, length, vocabulary) are other points
        key = (r["family"], r["width"], r.get("state_size"), r.get("num_kv_pairs"), r.get("seq_len"), r.get("vocab"))
        if key not in best or r["accuracy"] > best[key]["accuracy"]:
            best[key] = r
    fields = ("family", "width", "state_size", "num_kv_pairs", "seq_len", "vocab", "accuracy", "lr", "seed", "steps",
              "heads", "tie_embeddings", "learned_positions")
    return [{k: best[key].get(k) for k in fields}
            for key in sorted(best, key=lambda k: tuple(v if v is not None else 0 for v in k))]


def plot(runs: list[dict], path: Path, gpu: str | None = None) -> None:
    """Best accuracy (over lr and seed) vs width, one line per family / state size / set-up, and every run's
    accuracy over its training steps. plotly.js embedded: the report opens offline."""
    try:
        from plotly.colors import qualitative
        from plotly.subplots import make_subplots
    except ImportError:
        return
    best: dict[str, dict[int, float]] = {}
    for r in runs:
        pts = best.setdefault(series_name(r), {})
        pts[r["width"]] = max(pts.get(r["width"], 0.0), r["accuracy"])
    fig = make_subplots(rows=1, cols=3, subplot_titles=("accuracy vs width (best lr / seed / heads)",
                                                        "accuracy during training",
                                                        "pure Mamba-2: accuracy vs state size"))
    palette = qualitative.Plotly
    color = {name: palette[i % len(palette)] for i, name in enumerate(sorted(best))}   # one per line, both panels
    for name, pts in sorted(best.items()):
        w = sorted(pts)
        fig.add_scatter(x=w, y=[pts[x] for x in w], mode="lines+markers", name=name, legendgroup=name,
                        line={"color": color[name]}, row=1, col=1)
    for r in runs:
        hist = r.get("accuracy_history") or []
        fig.add_scatter(x=[h["step"] for h in hist], y=[h["mqar"] for h in hist], mode="lines",
                        name=f"{series_name(r)}, width {r['width']}, lr {r['lr']:g}", showlegend=False,
                        legendgroup=series_name(r), line={"width": 1, "color": color[series_name(r)]},
                        row=1, col=2)
    # pure Mamba-2's rise with state size is a matter of percents: a log accuracy axis (floored at 1e-4) shows it
    by_state: dict[int, dict[int, float]] = {}   # width -> state size -> best accuracy
    for b in best_by_family(runs):
        if b["family"] == "mamba2" and b.get("state_size"):
            by_state.setdefault(b["width"], {})[b["state_size"]] = b["accuracy"]
    for width, pts in sorted(by_state.items()):
        s = sorted(pts)
        fig.add_scatter(x=s, y=[max(pts[x], 1e-4) for x in s], mode="lines+markers", name=f"mamba2, width {width}",
                        line={"dash": "dot"}, row=1, col=3)
    widths = sorted({r["width"] for r in runs})
    fig.update_xaxes(type="log", title_text="model width", tickvals=widths, ticktext=[str(w) for w in widths],
                     row=1, col=1)
    fig.update_xaxes(title_text="training step", row=1, col=2)
    states = sorted({st for pts in by_state.values() for st in pts})
    fig.update_xaxes(type="log", title_text="state size", tickvals=states, ticktext=[str(v) for v in states],
                     row=1, col=3)
    fig.update_yaxes(type="log", range=[-4, 0.01], title_text="accuracy (log)", row=1, col=3)
    at = sorted({f"{r['num_kv_pairs']} pairs, {r['seq_len']} tokens" for r in runs})
    fig.update_yaxes(range=[0, 1.02], title_text=f"MQAR accuracy ({' / '.join(at)})", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    gpus = sorted({r.get("gpu") or gpu for r in runs} - {None, ""}) if runs else []
    fig.update_layout(title="Zoology MQAR" + (" on " + ", ".join(gpus) if gpus else ""), height=520, width=1500)
    fig.write_html(path, include_plotlyjs=True)


def merge(paths: list[str], out: Path) -> int:
    """One result file from several (lanes of a device call, or calls): every run keeps its whole setting
    (run_key, with its own file's top level as fallback); a run in several files is kept once (the first)."""
    merged = {"command": [], "gpu": None, "torch": None, "merged_from": [], "runs": [], "skipped": []}
    seen, skipped = set(), []
    for p in paths:
        try:
            d = json.loads(Path(p).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            print(f"{p}: cannot read it as a result file: {e}", file=sys.stderr)
            return 2
        if not isinstance(d, dict) or not isinstance(d.get("runs"), list) or "command" not in d:
            print(f"{p}: not a proxy_zoology result file (needs 'command' and a list 'runs')", file=sys.stderr)
            return 2
        merged["command"].append(d["command"])
        merged["merged_from"].append(Path(p).name)
        merged["gpu"] = merged["gpu"] or d.get("gpu")
        merged["torch"] = merged["torch"] or d.get("torch")
        for key, r in keyed_runs(d):
            if key not in seen:
                seen.add(key)
                merged["runs"].append({**r, "gpu": d.get("gpu")})
        skipped += [(run_key(r, d), r) for r in d.get("skipped", [])]
    # runs a lane skipped for time stay listed unless another file has them: the merged grid says what is missing
    merged["skipped"] = [r for key, r in dict(skipped).items() if key not in seen]
    merged["command"] = " ; ".join(merged["command"])
    merged["best"] = best_by_family(merged["runs"])
    write_json(out, merged)
    plot(merged["runs"], out.with_suffix(".html"), merged["gpu"])
    print(f"{len(merged['runs'])} runs from {len(paths)} files -> {out}")
    return 0


def values(text, kind=int) -> list:
    """A comma-separated setting ("64,128" or one number) as a list of `kind`."""
    return [kind(v) for v in str(text).split(",")]


def grid_problem(settings: dict, only: str | None, heads: int = 1) -> str | None:
    """What is wrong with a grid's settings (one line), or None: families known, widths / state sizes / seeds
    positive integers, learning rates positive numbers, all as comma-separated lists, and every width a
    multiple of the attention heads."""
    unknown = [f for f in (only or "").split(",") if only and f not in FAMILIES]
    if unknown:
        return f"--only: unknown family {unknown[0]!r} (allowed: {', '.join(FAMILIES)})"
    for key, kind in (("widths", int), ("state_sizes", int), ("seeds", int), ("lrs", float)):
        try:
            parsed = values(settings[key], kind)
        except ValueError:
            return f"--{key.replace('_', '-')}: {settings[key]!r} is not a comma-separated list of {kind.__name__}s"
        if any(v < 0 or (v == 0 and key != "seeds") for v in parsed):
            return f"--{key.replace('_', '-')}: {settings[key]!r} has a value that is not positive"
    uneven = [w for w in values(settings["widths"]) if heads < 1 or w % heads]
    if uneven:
        return f"--heads {heads}: must be at least 1 and divide every width ({uneven[0]} does not split evenly)"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized setting (vocab 256, 64 tokens, 16 pairs)")
    ap.add_argument("--only", help="comma-separated families: " + ",".join(FAMILIES))
    for key in FULL:
        ap.add_argument("--" + key.replace("_", "-"), type=type(FULL[key]))
    ap.add_argument("--rope-theta", type=float, default=10000.0, help="attention RoPE base (0 = no RoPE)")
    ap.add_argument("--heads", type=int, default=1, help="attention heads (head_dim = width / heads)")
    ap.add_argument("--tied", action="store_true",
                    help="tie the output head to the token embedding (as in Zoology's LM; default: a separate head)")
    ap.add_argument("--learned-positions", action="store_true",
                    help="add a learned absolute position embedding (Zoology's GPT-2 embeddings); pair with --rope-theta 0")
    ap.add_argument("--power-a", type=float, default=0.01, help="query placement power law (1 = uniform)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="start no run that would end after this many seconds (judged by the last run)")
    ap.add_argument("-o", "--out", help="result JSON (default bench/results/proxy_zoology[_cpu].json)")
    ap.add_argument("--append", action="store_true",
                    help="keep the runs already in --out, skip those already there and add the rest "
                         "(a grid resumed over several device calls)")
    ap.add_argument("--merge", nargs="+", metavar="FILE",
                    help="only merge these result files (lanes or calls) into --out and plot them")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out) if args.out else RESULTS / "proxy_zoology.json")
    s = {k: (getattr(args, k) if getattr(args, k) is not None else (TINY if args.tiny else FULL)[k]) for k in FULL}
    problem = grid_problem(s, args.only, args.heads)
    if args.learned_positions and args.rope_theta:
        problem = "--learned-positions replaces RoPE: add --rope-theta 0"
    if problem:
        print(f"proxy_zoology: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else RESULTS / ("proxy_zoology_cpu.json" if args.device == "cpu"
                                                      else "proxy_zoology.json")
    trainer = load_template_file("zoology_train_proxy", "train_proxy.py")
    model_py = trainer.load_module(TEMPLATES / "model.py")
    import torch

    families = args.only.split(",") if args.only else list(FAMILIES)
    result = {"command": "python bench/proxy_zoology.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "gpu": gpu_name(args.device), "torch": torch.__version__, "settings": s,
              "rope_theta": args.rope_theta or None, "heads": args.heads, "power_a": args.power_a,
              "tie_embeddings": args.tied, "learned_positions": args.learned_positions, "runs": [], "skipped": []}
    done = set()
    if args.append and out.exists():
        old = json.loads(out.read_text())
        # every row keeps its whole setting, so rows of files with other top-level settings stay readable
        keyed = keyed_runs(old)
        result["runs"] = [r for _, r in keyed] + result["runs"]
        done = {key for key, _ in keyed}
        result["command"] = old["command"] + " && " + result["command"]
        result["earlier_settings"] = old.get("earlier_settings", []) + [old.get("settings")]
    t0, last_s = time.perf_counter(), 0.0
    # the learning rate is the outer loop: one pass over every family and width comes first, the sweep's
    # other rates after it, so a budget that runs out still leaves the whole accuracy-vs-width picture
    for lr in values(s["lrs"], float):
        for family in families:
            for width in values(s["widths"]):
                for state in (values(s["state_sizes"]) if family != "attention" else [0]):
                    for seed in values(s["seeds"]):
                        run = {"family": family, "layout": FAMILIES[family], "width": width,
                               "state_size": state or None, "num_kv_pairs": s["pairs"], "seq_len": s["seq_len"],
                               "vocab": s["vocab"], "batch": s["batch"], "lr": lr, "seed": seed, "steps": s["steps"],
                               "min_kv_pairs": s["min_kv_pairs"], "tokens_per_pair": s["tokens_per_pair"],
                               "power_a": args.power_a, "rope_theta": args.rope_theta or None, "heads": args.heads,
                               "tie_embeddings": args.tied, "learned_positions": args.learned_positions}
                        if run_key(run) in done:   # --append: this run is already in the file
                            continue
                        if time.perf_counter() - t0 + last_s > args.budget_s:   # the next run would not fit
                            result["skipped"].append(run)
                            continue
                        d = layout(family, width, state or 16, s["vocab"], s["seq_len"], args.rope_theta or None, args.heads,
                                   tie=args.tied)
                        cfg = trainer.config_from_dict({
                            "name": f"{family}-{width}-s{state}-lr{lr:g}", "metrics": "",
                            "tasks": {"mqar": {"num_kv_pairs": s["pairs"], "min_kv_pairs": s["min_kv_pairs"],
                                               "power_a": args.power_a, "tokens_per_pair": s["tokens_per_pair"]}},
                            "vocab_size": s["vocab"], "seq_len": s["seq_len"], "steps": s["steps"],
                            "batch_size": s["batch"], "lr": lr, "warmup_steps": s["steps"] // 10,
                            "eval_every": max(1, s["steps"] // 8), "eval_batches": 2, "eval_batch_size": 64,
                            "seed": seed, "device": args.device})
                        torch.manual_seed(seed)
                        model = model_py.build_model(args=model_py.ModelArgs.from_dict(d))
                        if args.learned_positions:
                            add_learned_positions(model, s["seq_len"])
                        t_run = time.perf_counter()
                        m = trainer.train(cfg, model=model, quiet=True)
                        last_s = time.perf_counter() - t_run
                        run.update(accuracy=m["accuracy"]["mqar"], final_loss=m["final_loss"],
                                   eval_loss=m["eval"]["mqar"]["loss"], params=m["params"],
                                   tokens_per_s=m["tokens_per_s"], kernels=m["kernels"], data_wait_share=m["data_wait_share"],
                                   accuracy_history=m["accuracy_history"],
                                   loss_every=[round(v, 4) for v in m["loss"][::max(1, s["steps"] // 40)]])
                        result["runs"].append(run)
                        result["elapsed_s"] = round(time.perf_counter() - t0, 1)
                        print(f"{cfg.name}: accuracy {run['accuracy']:.3f}, eval loss {run['eval_loss']:.3f} "
                              f"({result['elapsed_s']} s)", flush=True)
                        write_json(out, result)
    write_json(out, result)
    plot(result["runs"], out.with_suffix(".html"), result["gpu"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
