"""`designer presets [--json]`: the published presets with their sizes and sources."""
from __future__ import annotations

import argparse

from designer.cliutil import emit_json
from designer.layout import load_layout, preset_names
from designer.present.format import conventional_layers


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in preset_names():
        lay = load_layout(name)
        # "layers": pattern blocks (Megatron-LM's count); "transformer_layers": a mixer with its FFN is one
        rows.append({"name": name, "layers": lay.num_layers, "transformer_layers": conventional_layers(lay.pattern),
                     "hidden_size": lay.hidden_size, "counts": lay.counts, "source": lay.source})
    if args.json:
        emit_json({"presets": rows})
        return 0
    from rich.console import Console
    from rich.table import Table
    table = Table(title="presets (profiles/models/*.yaml)")
    for col in ("name", "blocks", "layers", "hidden", "M / * / - / E", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        c = r["counts"]
        table.add_row(r["name"], str(r["layers"]), str(r["transformer_layers"]), str(r["hidden_size"]),
                      f"{c['M']} / {c['*']} / {c['-']} / {c['E']}", r["source"])
    console = Console()
    console.print(table)
    console.print("blocks: pattern symbols (Megatron-LM and Nemotron-H call each a layer); layers: a mixer with "
                  "the FFN after it counted as one, as Transformer papers do", style="dim")
    return 0
