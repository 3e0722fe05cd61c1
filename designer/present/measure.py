"""`designer measure` as shown: the predicted-vs-measured figure of a timing run and its HTML report."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from designer.layout import atomic_write_text


def timing_figure(result: dict[str, Any]):
    """Two panels: TTFT over prompt length and TPOT over context, one colour per batch size; predicted as
    lines, measured as markers (the same colour), both in milliseconds."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT vs prompt", "TPOT vs context"))
    batches = sorted({p["batch"] for p in result["points"]})
    for i, batch in enumerate(batches):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        for col, (metric, xkey) in enumerate((("ttft", "prompt"), ("tpot", "context")), start=1):
            pts = sorted((p for p in result["points"] if p["metric"] == metric and p["batch"] == batch),
                         key=lambda p: p[xkey])
            if not pts:
                continue
            xs = [p[xkey] for p in pts]
            for kind, mode, dash in (("predicted", "lines+markers", "dash"), ("measured", "markers", None)):
                fig.add_trace(go.Scatter(
                    x=xs, y=[p[f"{kind}_s"] * 1e3 for p in pts], mode=mode, name=f"batch {batch} {kind}",
                    legendgroup=f"{batch}-{kind}", showlegend=col == 1,
                    line={"color": colour, "dash": dash} if dash else None,
                    marker={"color": colour, "symbol": "circle-open" if kind == "predicted" else "x", "size": 9}),
                    row=1, col=col)
    fig.update_xaxes(type="log", title_text="prompt tokens", row=1, col=1)
    fig.update_xaxes(type="log", title_text="context tokens", row=1, col=2)
    fig.update_yaxes(type="log", title_text="ms", row=1, col=1)
    fig.update_yaxes(type="log", title_text="ms", row=1, col=2)
    fig.update_layout(title=f"{result['layout']}: predicted ({result['hardware']}) vs measured "
                            f"({result['device']}, {result['kernels_in_use']} kernels, {result['dtype']})",
                      height=480)
    return fig


def _table(result: dict[str, Any]) -> str:
    rows = []
    for p in result["points"]:
        x = p.get("prompt", p.get("context"))
        err = "n/a" if p["error"] is None else f"{100 * p['error']:+.1f}%"
        rows.append(f"<tr><td>{p['metric']}</td><td>{p['batch']}</td><td>{x}</td>"
                    f"<td>{1e3 * p['predicted_s']:.3f}</td><td>{1e3 * p['measured_s']:.3f}</td><td>{err}</td></tr>")
    return ("<table><tr><th>metric</th><th>batch</th><th>prompt / context</th><th>predicted ms</th>"
            f"<th>measured ms</th><th>error</th></tr>{''.join(rows)}</table>")


def render_timing_report(result: dict[str, Any]) -> str:
    fig = timing_figure(result).to_html(full_html=False, include_plotlyjs=True)
    note = f"<p>{html.escape(result['note'])}</p>" if result.get("note") else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(result['layout'])} measured"
            f"</title></head><body><h1>{html.escape(result['layout'])}: predicted vs measured</h1>{note}"
            f"{fig}{_table(result)}</body></html>")


def write_timing_report(path: str | Path, result: dict[str, Any]) -> None:
    atomic_write_text(path, render_timing_report(result))
