"""`designer importance MODEL_DIR [--samples 128 --seq-len 256 --task text --out importance.json --html F]`:
per-layer ablation importance (pre-LM-head MSE and loss change with the layer's output zeroed) and MLP-neuron
activation importance of a trained model directory; the JSON `designer search --importance` reads."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from designer.cliutil import UsageError, emit_json, positive_int, progress_bar
from designer.commands._paths import check_output_file
from designer.layout import SYMBOLS, LayoutError, atomic_write_text

KIND_STYLE = {"M": "green", "*": "red", "-": "blue", "E": "magenta"}


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="a trained model directory: layout.yaml (or proxy_layout.json / "
                                          "config.json), model.py and model.pt (train_proxy.py --save-weights)")
    parser.add_argument("--weights", metavar="PATH", help="the state_dict file (default: MODEL_DIR/model.pt or "
                                                          "weights.pt)")
    parser.add_argument("--samples", type=positive_int, default=128, help="held-out samples (default 128)")
    parser.add_argument("--seq-len", type=positive_int, default=256, help="tokens per sample (default 256)")
    parser.add_argument("--task", default="text", help="proxy task the samples come from (default text: held-out "
                                                       "Python standard-library bytes)")
    parser.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="samples per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--no-neurons", action="store_true", help="skip the MLP-neuron scores")
    parser.add_argument("--out", metavar="PATH", help="importance JSON (default MODEL_DIR/importance.json)")
    parser.add_argument("--html", metavar="PATH", help="write the importance-by-depth plot (plotly HTML)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _progress(enabled: bool):
    if not enabled:
        return None
    return progress_bar(transient=True)


def compute(args: argparse.Namespace) -> dict[str, Any]:
    """Load the directory, draw the samples, score layers and neurons; the importance document."""
    from designer.search.puzzle.importance import (importance_doc, layer_importance, neuron_importance,
                                                   samples_from_task)
    from designer.search.puzzle.modeldir import check_device, load_model_dir

    check_device(args.device)
    layout, model, _ = load_model_dir(args.model_dir, weights=args.weights, device=args.device)
    if args.seq_len < 2:
        raise UsageError(f"--seq-len: expected at least 2 tokens, got {args.seq_len}")
    try:
        samples = samples_from_task(args.task, n=args.samples, seq_len=args.seq_len, seed=args.seed,
                                    vocab_size=layout.vocab_size)
    except ValueError as e:
        raise UsageError(f"--task {args.task}: {e}") from None
    bar = _progress(not args.json)
    if bar is None:
        layer = layer_importance(model, samples, batch_size=args.batch_size)
    else:
        with bar:
            task = bar.add_task(f"{layout.name}: ablating {layout.num_layers} layers", total=None)
            layer = layer_importance(model, samples, batch_size=args.batch_size,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    neurons = {} if args.no_neurons else neuron_importance(model, samples, batch_size=args.batch_size)
    metric = (f"MSE of the pre-LM-head hidden states (after the final norm) with the layer's output zeroed, "
              f"{layer['samples']} held-out {args.task} samples x {layer['seq_len']} tokens (seed {args.seed}); "
              f"neurons: mean |activation| at the MLP down-projection input")
    return importance_doc(layout, layer, neurons, metric)


def run(args: argparse.Namespace) -> int:
    root = Path(args.model_dir)
    if not root.is_dir():
        raise LayoutError("no such model directory (expected one with layout.yaml, model.py and model.pt)",
                          source=str(root))
    out = Path(args.out) if args.out else root / "importance.json"
    check_output_file(out, "--out")
    if args.html:
        check_output_file(args.html, "--html")
    if args.task.strip() == "":
        raise UsageError("--task: expected a proxy task name, e.g. text")
    doc = compute(args)
    import json
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    if args.html:
        from designer.present.puzzle import write_importance_html
        write_importance_html(args.html, doc)
    if args.json:
        emit_json({**doc, "out": str(out), "html": args.html})
        return 0
    _print_table(doc, out, args.html)
    return 0


def _print_table(doc: dict[str, Any], out: Path, html_path: str | None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False)
    ranks = {i: r for kind in doc["by_kind"].values() for r, i in enumerate(kind["ranked"], 1)}
    t = Table(title=f"{doc['base']}: layer importance ({doc['samples']} samples x {doc['seq_len']} tokens, "
                    f"base loss {doc['base_loss']:.4f} nats/token)")
    for col in ("layer", "kind", "MSE", "loss change", "rank in kind"):
        t.add_column(col, justify="right" if col != "kind" else "left")
    for row in doc["layers"]:
        k = row["kind"]
        t.add_row(str(row["index"]), f"[{KIND_STYLE[k]}]{k}[/] {SYMBOLS[k]}", f"{row['mse']:.4g}",
                  f"{row['loss_change']:+.4f}", f"{ranks[row['index']]}/{len(doc['by_kind'][k]['indices'])}")
    console.print(t)
    for k, kind in doc["by_kind"].items():
        console.print(f"{SYMBOLS[k]}: most important first {kind['ranked'][:12]}"
                      + (" ..." if len(kind["ranked"]) > 12 else ""))
    if doc["neurons"]:
        widths = {len(v) for v in doc["neurons"].values()}
        console.print(f"neuron scores: {len(doc['neurons'])} MLP layers x {', '.join(map(str, sorted(widths)))} "
                      "neurons (mean |activation|)")
    console.print(f"wrote {out}" + (f" and {html_path}" if html_path else ""))
