"""`designer presets [--json]`: the published presets with their sizes and sources."""
from __future__ import annotations

import argparse

from designer.cliutil import emit_json
from designer.layout import load_layout, preset_names


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in preset_names():
        lay = load_layout(name)
        rows.append({"name": name, "layers": lay.num_layers, "hidden_size": lay.hidden_size,
                     "counts": lay.counts, "source": lay.source})
    if args.json:
        emit_json({"presets": rows})
        return 0
    from rich.console import Console
    from rich.table import Table
    table = Table(title="presets (profiles/models/*.yaml)")
    for col in ("name", "layers", "hidden", "M / * / - / E", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        c = r["counts"]
        table.add_row(r["name"], str(r["layers"]), str(r["hidden_size"]), f"{c['M']} / {c['*']} / {c['-']} / {c['E']}",
                      r["source"])
    Console().print(table)
    return 0
