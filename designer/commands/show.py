"""`designer show FILE|PRESET [--json]`: the pattern drawn as coloured blocks with layer indices and counts."""
from __future__ import annotations

import argparse

from designer.cliutil import emit_json, load_or_fail
from designer.layout import SYMBOLS

COLOURS = {"M": "green", "*": "red", "-": "blue", "E": "magenta"}
PER_ROW = 50


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    lay = load_or_fail(args.layout)
    if args.json:
        emit_json({"layout": lay.name, "pattern": lay.pattern, "num_layers": lay.num_layers,
                   "counts": {SYMBOLS[s]: n for s, n in lay.counts.items()},
                   "attention_layers": lay.indices("*"), "attention_fraction": lay.attention_fraction})
        return 0
    from rich.console import Console
    console = Console(highlight=False)
    console.print(f"[bold]{lay.name}[/]  {lay.num_layers} layers, hidden {lay.hidden_size}"
                  + (f"  ({lay.source})" if lay.source else ""))
    for start in range(0, lay.num_layers, PER_ROW):
        chunk = lay.pattern[start:start + PER_ROW]
        ruler = "".join(str((start + k) // 10 % 10) if (start + k) % 10 == 0 else " " for k in range(len(chunk)))
        console.print(f"{start:>4} [dim]{ruler}[/]")
        console.print("     " + "".join(f"[bold white on {COLOURS[s]}]{s}[/]" for s in chunk))
    legend = "  ".join(f"[bold white on {COLOURS[s]}]{s}[/] {SYMBOLS[s]} x{n}" for s, n in lay.counts.items() if n)
    console.print(legend)
    console.print(f"attention at {lay.indices('*')} ({lay.attention_fraction:.1%} of layers)")
    return 0
