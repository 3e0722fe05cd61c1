"""HTML report of a comparison: a summary table and plotly figures built from `analytic.sweep` series.

Figures: memory vs context stacked by weights / KV cache / SSM state (one panel per layout, usable
memory as a line); TTFT and TPOT vs context; throughput vs batch; max batch vs context.
plotly is imported here only, and only when a report is written. plotly.js is embedded once, so the
file opens offline.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from designer.layout import atomic_write_text
from designer.profile.cli import ROWS, row_value, setup_line

GIB = 2 ** 30
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
STACK = (("weights_bytes", "weights", "#7f7f7f"), ("kv_cache_bytes", "KV cache", "#d62728"),
         ("ssm_state_bytes", "SSM + conv state", "#2ca02c"), ("activation_bytes", "activations", "#bcbd22"))


def memory_figure(sweeps: list[dict[str, Any]]) -> Any:
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go
    fig = make_subplots(rows=1, cols=len(sweeps), shared_yaxes=True, subplot_titles=[s["layout"] for s in sweeps])
    for col, s in enumerate(sweeps, start=1):
        m = s["memory_vs_context"]
        for key, label, color in STACK:
            fig.add_trace(go.Scatter(x=m["context"], y=[v / GIB for v in m[key]], name=label, legendgroup=label,
                                     showlegend=col == 1, stackgroup=f"s{col}", line={"color": color}),
                          row=1, col=col)
        fig.add_trace(go.Scatter(x=m["context"], y=[m["capacity_bytes"] / GIB] * len(m["context"]),
                                 name="usable GPU memory", legendgroup="cap", showlegend=col == 1,
                                 line={"color": "black", "dash": "dash"}), row=1, col=col)
        fig.update_xaxes(type="log", title_text="context (tokens)", row=1, col=col)
    fig.update_yaxes(title_text="memory per GPU (GiB)", row=1, col=1)
    fig.update_layout(title="Memory vs context (batch as profiled)", height=450)
    return fig


def latency_figure(sweeps: list[dict[str, Any]]) -> Any:
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go
    fig = make_subplots(rows=1, cols=2, subplot_titles=["TTFT vs prompt length", "TPOT vs context"])
    for i, s in enumerate(sweeps):
        lat, color = s["latency_vs_context"], COLORS[i % len(COLORS)]
        fig.add_trace(go.Scatter(x=lat["context"], y=lat["ttft_s"], name=s["layout"], legendgroup=s["layout"],
                                 line={"color": color}), row=1, col=1)
        fig.add_trace(go.Scatter(x=lat["context"], y=[t * 1e3 for t in lat["tpot_s"]], name=s["layout"],
                                 legendgroup=s["layout"], showlegend=False, line={"color": color}), row=1, col=2)
    fig.update_xaxes(type="log", title_text="tokens")
    fig.update_yaxes(type="log", title_text="TTFT (s)", row=1, col=1)
    fig.update_yaxes(title_text="TPOT (ms)", row=1, col=2)
    fig.update_layout(title="Latency vs context", height=450)
    return fig


def throughput_figure(sweeps: list[dict[str, Any]], prompt: int, gen: int) -> Any:
    import plotly.graph_objects as go
    fig = go.Figure()
    for i, s in enumerate(sweeps):
        t = s["throughput_vs_batch"]
        pts = [(b, v) for b, v in zip(t["batch"], t["output_tokens_per_s_per_gpu"]) if v is not None]
        fig.add_trace(go.Scatter(x=[b for b, _ in pts], y=[v for _, v in pts], mode="lines+markers",
                                 name=f"{s['layout']} (max batch {t['max_batch']})",
                                 line={"color": COLORS[i % len(COLORS)]}))
    fig.update_xaxes(type="log", title_text="batch (concurrent requests)")
    fig.update_yaxes(title_text="output tokens/s per GPU")
    fig.update_layout(title=f"Throughput vs batch ({prompt:,} in / {gen:,} out)", height=450)
    return fig


def max_batch_figure(sweeps: list[dict[str, Any]], gen: int) -> Any:
    import plotly.graph_objects as go
    fig = go.Figure()
    for i, s in enumerate(sweeps):
        m = s["max_batch_vs_context"]
        fig.add_trace(go.Scatter(x=m["context"], y=m["max_batch"], name=s["layout"],
                                 line={"color": COLORS[i % len(COLORS)]}))
    fig.update_xaxes(type="log", title_text="prompt (tokens)")
    fig.update_yaxes(type="log", title_text="largest batch that fits")
    fig.update_layout(title=f"Max batch vs prompt length (+{gen:,} generated)", height=450)
    return fig


def summary_table(profiles: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(p['layout'])}</th>" for p in profiles)
    rows = []
    for _, label, path, fmt in ROWS:
        cells = "".join(f"<td>{html.escape(row_value(p, path, fmt))}</td>" for p in profiles)
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def render_report(profiles: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> str:
    import plotly.io as pio
    setup = profiles[0]["setup"]
    figures = [memory_figure(sweeps), latency_figure(sweeps), throughput_figure(sweeps, setup["prompt"], setup["gen"]),
               max_batch_figure(sweeps, setup["gen"])]
    divs = [pio.to_html(f, full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)]
    notes = "".join(f"<li>{html.escape(a)}</li>" for a in profiles[0]["assumptions"])
    title = "designer compare: " + ", ".join(p["layout"] for p in profiles)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child{text-align:left}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(setup_line(profiles[0]))}</p>"
            f"{summary_table(profiles)}<h2>Assumptions</h2><ul>{notes}</ul>{''.join(divs)}</body></html>")


def write_report(path: str | Path, profiles: list[dict[str, Any]], sweeps: list[dict[str, Any]]) -> None:
    atomic_write_text(path, render_report(profiles, sweeps))
