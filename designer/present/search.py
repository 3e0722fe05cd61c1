"""Figures and the HTML report of a search (`designer search --html`, the app's Search page).

They draw `SearchResult.to_dict()`; they compute nothing (units only: bytes -> GiB, params -> B).
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from designer.layout import SYMBOLS, atomic_write_text
from designer.present.figures import FONT, KIND_COLOURS, KIND_LABELS, figure_divs
from designer.present.format import GIB
REF_COLOURS = ("#D62728", "#9467BD", "#8C564B", "#E377C2")


def _hover(row: dict[str, Any]) -> str:
    return (f"<b>{html.escape(str(row.get('name', '')))}</b><br>{row['layers']} layers, "
            f"{row['attention_layers']} attention<br>{row['params'] / 1e9:.2f} B params<br>"
            f"{row['memory_bytes'] / GIB:.2f} GiB<br>{row['throughput_tokens_per_s']:.4g} tokens/s")


def front_figure(result: dict[str, Any], *, height: int = 460) -> go.Figure:
    """Throughput against parameters: a sample of feasible candidates, the whole front, the emitted points
    (customdata = their index in result['front']), the base and the references."""
    fig = go.Figure()
    cloud = result.get("cloud") or {}
    if cloud.get("params"):
        fig.add_trace(go.Scattergl(x=[p / 1e9 for p in cloud["params"]], y=cloud["throughput_tokens_per_s"],
                                   mode="markers", name="feasible (sample)", hoverinfo="skip",
                                   marker={"size": 4, "color": "#C7C7C7"}))
    fp = result.get("front_points") or {}
    if fp.get("params"):
        pts = sorted(zip(fp["params"], fp["throughput_tokens_per_s"]))
        fig.add_trace(go.Scatter(x=[p / 1e9 for p, _ in pts], y=[t for _, t in pts], mode="lines+markers",
                                 name=f"Pareto front ({len(pts)})", line={"color": "#4C78A8", "width": 1},
                                 marker={"size": 5, "color": "#4C78A8"}))
    front = result.get("front") or []
    if front:
        fig.add_trace(go.Scatter(
            x=[r["params"] / 1e9 for r in front], y=[r["throughput_tokens_per_s"] for r in front],
            mode="markers+text", name="emitted layouts", text=[str(i + 1) for i in range(len(front))],
            textposition="top center", customdata=list(range(len(front))), hovertext=[_hover(r) for r in front],
            hoverinfo="text", marker={"size": 11, "color": "#F58518", "line": {"color": "white", "width": 1}}))
    base = result.get("base_metrics")
    if base:
        fig.add_trace(go.Scatter(x=[base["params"] / 1e9], y=[base["throughput_tokens_per_s"]], mode="markers+text",
                                 name=f"base {result['base']}", text=[result["base"]], textposition="bottom center",
                                 hovertext=[_hover(base)], hoverinfo="text",
                                 marker={"size": 13, "symbol": "x", "color": "#111111"}))
    for j, ref in enumerate(result.get("references") or []):
        fig.add_trace(go.Scatter(x=[ref["params"] / 1e9], y=[ref["throughput_tokens_per_s"]], mode="markers+text",
                                 name=ref["name"], text=[ref["name"]], textposition="bottom center",
                                 hovertext=[_hover(ref)], hoverinfo="text",
                                 marker={"size": 13, "symbol": "diamond", "color": REF_COLOURS[j % len(REF_COLOURS)]}))
    fig.update_layout(height=height, font=FONT, plot_bgcolor="white", margin={"l": 60, "r": 10, "t": 40, "b": 50},
                      title="Pareto front: throughput vs parameters (within every budget)",
                      xaxis={"title": "parameters (B)", "gridcolor": "#EEEEEE"},
                      yaxis={"title": "output tokens/s", "gridcolor": "#EEEEEE"},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def front_3d_figure(result: dict[str, Any], *, height: int = 520) -> go.Figure:
    fig = go.Figure()
    fp = result.get("front_points") or {}
    if fp.get("params"):
        fig.add_trace(go.Scatter3d(x=[p / 1e9 for p in fp["params"]], y=[m / GIB for m in fp["memory_bytes"]],
                                   z=fp["throughput_tokens_per_s"], mode="markers", name="front",
                                   marker={"size": 3, "color": fp.get("attention_layers"), "colorscale": "Viridis",
                                           "colorbar": {"title": "attention"}}))
    marks = [("base " + result["base"], result.get("base_metrics"), "#111111")]
    marks += [(r["name"], r, REF_COLOURS[j % len(REF_COLOURS)]) for j, r in enumerate(result.get("references") or [])]
    for name, row, colour in marks:
        if row:
            fig.add_trace(go.Scatter3d(x=[row["params"] / 1e9], y=[row["memory_bytes"] / GIB],
                                       z=[row["throughput_tokens_per_s"]], mode="markers", name=name,
                                       marker={"size": 7, "color": colour, "symbol": "diamond"}))
    fig.update_layout(height=height, font=FONT, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      title="Front in 3-D: parameters, memory, throughput (colour: attention layers)",
                      scene={"xaxis_title": "params (B)", "yaxis_title": "memory (GiB)", "zaxis_title": "tokens/s"},
                      legend={"orientation": "h", "y": -0.05})
    return fig


def strips_figure(rows: list[tuple[str, str]], *, title: str = "Patterns") -> go.Figure:
    """One row of coloured cells per (label, pattern)."""
    fig = go.Figure()
    for sym in SYMBOLS:
        xs, ys, hover = [], [], []
        for label, pattern in rows:
            for i, c in enumerate(pattern):
                if c == sym:
                    xs.append(i)
                    ys.append(label)
                    hover.append(f"{label}: layer {i} {KIND_LABELS[sym]}")
        if xs:
            fig.add_trace(go.Bar(x=[1] * len(xs), base=xs, y=ys, orientation="h", name=KIND_LABELS[sym],
                                 marker={"color": KIND_COLOURS[sym], "line": {"width": 0}}, hovertext=hover,
                                 hoverinfo="text", width=0.8))
    fig.update_layout(barmode="overlay", height=80 + 26 * len(rows), font=FONT, plot_bgcolor="white", title=title,
                      margin={"l": 260, "r": 10, "t": 40, "b": 30}, bargap=0.1,
                      xaxis={"title": "layer", "showgrid": False},
                      yaxis={"autorange": "reversed", "type": "category"}, legend={"orientation": "h", "y": 1.02,
                                                                                    "yanchor": "bottom", "x": 0.3})
    return fig


def pattern_rows(result: dict[str, Any], base_pattern: str, references: dict[str, str]) -> list[tuple[str, str]]:
    rows = [(f"base {result['base']}", base_pattern)]
    rows += [(name, pat) for name, pat in references.items()]
    rows += [(f"{i + 1}. {r['name']}", r["pattern"]) for i, r in enumerate(result.get("front") or [])]
    return rows


def _table(result: dict[str, Any]) -> str:
    head = ("<tr><th>#</th><th>file</th><th>layers</th><th>attention</th><th>params (B)</th><th>memory (GiB)</th>"
            "<th>tokens/s</th><th>TTFT (s)</th><th>TPOT (ms)</th><th>vs base</th></tr>")
    base_tps = result["base_metrics"]["throughput_tokens_per_s"]
    body = []
    for i, r in enumerate(result.get("front") or []):
        body.append(f"<tr><td>{i + 1}</td><td>{html.escape(str(r.get('file') or r['name']))}</td><td>{r['layers']}</td>"
                    f"<td>{r['attention_layers']}</td><td>{r['params'] / 1e9:.2f}</td>"
                    f"<td>{r['memory_bytes'] / GIB:.2f}</td><td>{r['throughput_tokens_per_s']:.4g}</td>"
                    f"<td>{r['ttft_s']:.4g}</td><td>{r['tpot_s'] * 1e3:.2f}</td>"
                    f"<td>x{r['throughput_tokens_per_s'] / base_tps:.2f}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _budget_text(key: str, value: float) -> str:
    if key.endswith("_bytes"):
        return f"{value / GIB:.2f} GiB"
    if key.endswith("params"):
        return f"{value / 1e9:.2f} B"
    if key.endswith("_s"):
        return f"{value:.4g} s"
    return f"{value:.4g}"


def reference_line(ref: dict[str, Any]) -> str:
    """One sentence on a reference layout (e.g. the released 47B) against the budgets, the base and the front."""
    return (f"{ref['name']}: {ref['params'] / 1e9:.2f} B params, {ref['memory_bytes'] / GIB:.2f} GiB "
            f"({'meets' if ref['meets_budgets'] else 'breaks'} the budgets), {ref['throughput_tokens_per_s']:.4g} "
            f"tokens/s = x{ref['speedup_vs_base']:.2f} the base; dominated by "
            f"{ref.get('dominated_by_front_points', 'n/a')} front points")


def render_report(result: dict[str, Any], base_pattern: str, references: dict[str, str]) -> str:
    figs = [front_figure(result), front_3d_figure(result),
            strips_figure(pattern_rows(result, base_pattern, references), title="Patterns of the emitted layouts")]
    divs = figure_divs(figs)
    a = result["assumptions"]
    notes = "".join(f"<li>{html.escape(s)}</li>" for s in a.get("sentences", []))
    budgets = "".join(f"<li>{html.escape(k)}: {html.escape(_budget_text(k, v))}</li>"
                      for k, v in result["budgets"].items() if v is not None)
    refs = "".join(f"<li>{html.escape(reference_line(r))}</li>" for r in result.get("references") or [])
    title = f"designer search from {result['base']}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>method {html.escape(result['method'])}: {result['evaluated']:,} "
            f"candidates evaluated ({result['candidates_per_s']:,.0f}/s), {result['feasible']:,} within the rules and "
            f"budgets, {result['front_size']:,} on the Pareto front, {len(result.get('front') or [])} emitted.</p>"
            f"<h2>Assumptions</h2><ul>{notes}</ul><h2>Budgets</h2><ul>{budgets}</ul>"
            f"<h2>References</h2><ul>{refs or '<li>none</li>'}</ul><h2>Emitted layouts</h2>{_table(result)}"
            f"{''.join(divs)}</body></html>")


def write_report(path: "str | Path", result: dict[str, Any], base_pattern: str, references: dict[str, str]) -> None:
    atomic_write_text(path, render_report(result, base_pattern, references))
