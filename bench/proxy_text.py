"""Real-text proxy ranking: byte-level language modelling on the Python standard library's own source
(proxy_tasks.text), nemotron-h-8b's proxy vs a pure Mamba-2 proxy vs a Transformer proxy of equal parameter
count, several seeds each, held-out loss in nats per byte.

    python bench/proxy_text.py [--budget-s 540] [--seeds 3]   # GPU: bench/results/proxy_text.json
    python bench/proxy_text.py --device cpu --tiny             # CPU check: bench/results/proxy_text_cpu.json
    python bench/proxy_text.py --write-layouts                 # rebuild bench/proxy_text_layouts.json (designer)

The proxy layouts are committed in bench/proxy_text_layouts.json ("full": hidden 256, nemotron-h-8b at 12
layers; "tiny": hidden 64 at 4 layers), so a run needs torch only. The held-out split is by file (crc32 of the
relative path); every seed is scored on the same held-out windows (eval_batches x eval_batch_size x seq_len
bytes). The corpus is the running interpreter's: its Python version, file count and byte counts are recorded.
Seeds are interleaved over candidates (seed 0 of each, then seed 1, ...) so a cut by --budget-s keeps the
comparison balanced; the file is rewritten after every run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from proxy_mqar import ROOT, TEMPLATES, load_template_file, write_json  # bench/ is sys.path[0] when run as a script
LAYOUTS = ROOT / "bench" / "proxy_text_layouts.json"
RESULTS = ROOT / "bench" / "results"
CANDIDATES = {"hybrid": "nemotron-h-8b", "mamba2": "mamba2-2.7b", "transformer": "llama-3.1-8b"}
SIZES = {"full": {"hidden": 256, "layers": 12, "seq_len": 512}, "tiny": {"hidden": 64, "layers": 4, "seq_len": 64}}
FULL = {"steps": 400, "batch": 64, "lrs": "1e-3", "eval_batches": 8, "eval_batch_size": 64}   # 13M tokens per run
TINY = {"steps": 60, "batch": 16, "lrs": "3e-3", "eval_batches": 2, "eval_batch_size": 32}


def write_layouts(path: Path = LAYOUTS) -> None:
    """Proxies at each size: nemotron-h-8b at the given depth, then mamba2-2.7b and llama-3.1-8b at the depth
    whose parameter count is closest (needs designer)."""
    sys.path.insert(0, str(ROOT))
    from designer.layout import layout_to_dict, load_layout
    from designer.measure.proxy import proxy_layout
    model_py = load_template_file("text_model", "model.py")

    def params(d: dict) -> int:
        return model_py.build_model(args=model_py.ModelArgs.from_dict(d), device="meta").num_params()

    out = {"about": "proxy layouts for bench/proxy_text.py; regenerate with --write-layouts", "sizes": {}}
    for size, s in SIZES.items():
        def make(name: str, layers: int) -> dict:
            d = layout_to_dict(proxy_layout(load_layout(name), hidden=s["hidden"], layers=layers, vocab_size=256,
                                            seq_len=s["seq_len"]), full=True)
            if d.get("mamba"):   # the SSD chunk changes the scan's speed, not what it computes
                d["mamba"]["chunk_size"] = min(d["mamba"]["chunk_size"], 128)
            return d
        layouts = {"hybrid": make(CANDIDATES["hybrid"], s["layers"])}
        target = params(layouts["hybrid"])
        for role in ("mamba2", "transformer"):
            layouts[role] = min((make(CANDIDATES[role], n) for n in range(1, 4 * s["layers"])),
                                key=lambda d: abs(params(d) - target))
        out["sizes"][size] = {**s, "params": {r: params(d) for r, d in layouts.items()}, "layouts": layouts}
        for role, d in layouts.items():
            print(f"{size:5s} {role:12s} {params(d):>11,} params  {d['pattern']}")
    path.write_text(json.dumps(out, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized proxies and run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", help="comma-separated roles: " + ",".join(CANDIDATES))
    for key in FULL:
        ap.add_argument("--" + key.replace("_", "-"), type=type(FULL[key]))
    ap.add_argument("--budget-s", type=float, default=540.0, help="start no run that would end after this many seconds (judged by the last run)")
    ap.add_argument("--write-layouts", action="store_true")
    ap.add_argument("-o", "--out")
    args = ap.parse_args(argv)
    if args.write_layouts:
        write_layouts()
        return 0
    s = {k: (getattr(args, k) if getattr(args, k) is not None else (TINY if args.tiny else FULL)[k]) for k in FULL}
    size = json.loads(LAYOUTS.read_text())["sizes"]["tiny" if args.tiny else "full"]
    out = Path(args.out) if args.out else RESULTS / ("proxy_text_cpu.json" if args.device == "cpu"
                                                      else "proxy_text.json")
    trainer = load_template_file("text_train_proxy", "train_proxy.py")
    model_py = trainer.load_module(TEMPLATES / "model.py")
    import torch

    roles = args.only.split(",") if args.only else list(CANDIDATES)
    lrs = [float(v) for v in str(s["lrs"]).split(",")]
    cands = {r: {"role": r, "layout": size["layouts"][r]["name"], "pattern": size["layouts"][r]["pattern"],
                 "params": size["params"][r], "lr": {}, "heldout_loss": [], "heldout_accuracy": [],
                 "tokens_per_s": [], "seeds": [], "loss_curves": []} for r in roles}
    result = {"command": "python bench/proxy_text.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
              "torch": torch.__version__, "settings": {**s, "seq_len": size["seq_len"], "hidden": size["hidden"]},
              "metric": "held-out loss, nats per byte (mean cross-entropy of the next byte on held-out files)",
              "corpus": None, "candidates": list(cands.values()), "skipped": []}
    t0, last_s = time.perf_counter(), 0.0
    for seed in range(args.seeds):
        for role in roles:
            for lr in lrs:
                if time.perf_counter() - t0 + last_s > args.budget_s:   # the next run would not fit
                    result["skipped"].append({"role": role, "seed": seed, "lr": lr})
                    continue
                cfg = trainer.config_from_dict({
                    "name": f"{role}-lr{lr:g}-seed{seed}", "metrics": "", "tasks": {"text": {}}, "vocab_size": 256,
                    "seq_len": size["seq_len"], "steps": s["steps"], "batch_size": s["batch"], "lr": lr,
                    "warmup_steps": s["steps"] // 10, "eval_batches": s["eval_batches"],
                    "eval_batch_size": s["eval_batch_size"], "seed": seed, "device": args.device})
                torch.manual_seed(seed)
                model = model_py.build_model(args=model_py.ModelArgs.from_dict(size["layouts"][role]))
                t_run = time.perf_counter()
                m = trainer.train(cfg, model=model, quiet=True)
                last_s = time.perf_counter() - t_run
                c = cands[role]
                c["lr"].setdefault(f"{lr:g}", []).append(m["heldout_loss"]["text"])
                if lr == lrs[0]:   # heldout_loss: one per seed, at the first lr of the grid
                    c["heldout_loss"].append(m["heldout_loss"]["text"])
                    c["heldout_accuracy"].append(m["accuracy"]["text"])
                    c["tokens_per_s"].append(m["tokens_per_s"])
                    c["seeds"].append(seed)
                    c["loss_curves"].append([round(v, 4) for v in m["loss"][::max(1, s["steps"] // 50)]])
                c["kernels"] = m["kernels"]
                result["corpus"] = m["corpus"]
                result["elapsed_s"] = round(time.perf_counter() - t0, 1)
                print(f"{cfg.name}: held-out {m['heldout_loss']['text']:.4f} nats/byte, "
                      f"{m['tokens_per_s']:,.0f} tokens/s ({result['elapsed_s']} s)", flush=True)
                write_json(out, result)
    try:
        result["ranking"] = ranking(result)
    except ImportError as e:    # a machine with torch alone: add it later with --summarise
        print(f"no ranking ({e}); run python bench/proxy_text.py --summarise {out}", file=sys.stderr)
    write_json(out, result)
    return 0


def ranking(result: dict, alpha: float = 0.05) -> dict:
    """Candidates by mean held-out loss over seeds (mean, sample std) and Welch's t-test for every pair:
    the must-show's ranking with its spread and whether each ordering is significant at `alpha`."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from designer.measure.runs import mean_std, welch_t_test
    rows = []
    for c in result["candidates"]:
        if c["heldout_loss"]:
            m, sd = mean_std(c["heldout_loss"])
            rows.append({"layout": c["layout"], "role": c["role"], "params": c["params"], "mean": m, "std": sd,
                         "seeds": len(c["heldout_loss"]), "losses": c["heldout_loss"]})
    rows.sort(key=lambda r: r["mean"])
    pairs = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            t = welch_t_test(a["losses"], b["losses"])
            pairs.append({"better": a["layout"], "worse": b["layout"], **t,
                          "significant": t["p"] is not None and t["p"] < alpha})
    for r in rows:
        del r["losses"]
    return {"order": rows, "pairs": pairs, "alpha": alpha, "test": "Welch's t-test over seeds, two-sided"}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--summarise":    # add the ranking to a saved result
        doc = json.loads(Path(sys.argv[2]).read_text())
        doc["ranking"] = ranking(doc)
        write_json(Path(sys.argv[2]), doc)
        print(json.dumps(doc["ranking"], indent=1))
        raise SystemExit(0)
    raise SystemExit(main())
