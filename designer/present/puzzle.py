"""Figures and pages of the MiniPuzzle stages (designer importance, designer minipuzzle; docs/minipuzzle.md):
importance by depth per kind, the candidates' memory vs held-out loss, the learning curves, the report.
plotly (and designer.present.figures, which needs it) is imported by the figure functions only: summary_rows
works without it."""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from designer.layout import atomic_write_text

if TYPE_CHECKING:
    import plotly.graph_objects as go


def _plotly():
    import plotly.graph_objects as go

    from designer.present.figures import KIND_COLOURS, KIND_LABELS
    return go, KIND_COLOURS, KIND_LABELS


def importance_figure(doc: dict[str, Any]) -> go.Figure:
    """Two panels sharing the depth axis: the pre-LM-head MSE with the layer ablated (log scale) and the
    change of the next-token loss; one trace per layer kind, so the kinds rank side by side."""
    from plotly.subplots import make_subplots
    go, KIND_COLOURS, KIND_LABELS = _plotly()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("pre-LM-head MSE with the layer's output zeroed",
                                        "next-token loss change (nats per token)"))
    rows = doc["layers"]
    for kind in KIND_COLOURS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        x = [r["index"] for r in mine]
        style = {"mode": "markers", "marker": {"color": KIND_COLOURS[kind], "size": 9}, "legendgroup": kind}
        fig.add_trace(go.Scatter(x=x, y=[r["mse"] for r in mine], name=KIND_LABELS[kind],
                                 hovertemplate="layer %{x}: MSE %{y:.3g}<extra></extra>", **style), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[r["loss_change"] for r in mine], name=KIND_LABELS[kind], showlegend=False,
                                 hovertemplate="layer %{x}: loss %{y:+.4f}<extra></extra>", **style), row=2, col=1)
    positive = [r["mse"] for r in rows if r["mse"] > 0]
    fig.update_yaxes(type="log" if positive and max(positive) / min(positive) > 100 else "linear", row=1, col=1)
    fig.update_xaxes(title_text="layer (depth)", row=2, col=1)
    fig.update_layout(title=f"{doc.get('base', '')}: layer importance by depth ({doc.get('samples', '?')} samples "
                            f"x {doc.get('seq_len', '?')} tokens, base loss {doc.get('base_loss', float('nan')):.4f})",
                      template="plotly_white", height=640, hovermode="closest")
    return fig


def write_importance_html(path: str | Path, doc: dict[str, Any]) -> None:
    """The importance figure as a standalone HTML page (plotly.js inlined), written atomically."""
    page = importance_figure(doc).to_html(include_plotlyjs=True, full_html=True)
    note = f"<p style='font-family:sans-serif'>metric: {html.escape(str(doc.get('metric', '')))}</p>"
    atomic_write_text(path, page.replace("<body>", "<body>" + note, 1))


def kept_importance_figure(doc: dict[str, Any]) -> go.Figure:
    """A MiniPuzzle run's layer importance by depth per kind, the dropped layers outlined."""
    go, KIND_COLOURS, KIND_LABELS = _plotly()
    imp = doc["importance"]
    kept = set(doc["student"]["keep"])
    fig = go.Figure()
    for kind in dict.fromkeys(imp["kinds"]):
        idx = [i for i, k in enumerate(imp["kinds"]) if k == kind]
        # width 0.8 per bar: with barmode overlay plotly would size each kind's bars by its own spacing
        fig.add_bar(x=idx, y=[imp["scores"][i] for i in idx], name=KIND_LABELS.get(kind, kind), width=0.8,
                    marker_color=KIND_COLOURS.get(kind), marker_line_color="#222",
                    marker_line_width=[0 if i in kept else 2 for i in idx],
                    marker_opacity=[1.0 if i in kept else 0.35 for i in idx],
                    hovertext=["kept" if i in kept else "dropped" for i in idx])
    fig.update_layout(title="Layer importance by depth (pre-LM-head MSE with the layer zeroed; faded and outlined "
                            "= dropped)",
                      xaxis_title="layer", yaxis_title="importance", yaxis_type="log", barmode="overlay")
    return fig


def candidates_figure(doc: dict[str, Any]) -> go.Figure:
    go = _plotly()[0]
    rows = doc["candidates"]
    fig = go.Figure()
    fig.add_scatter(x=[r["memory_bytes"] / 2**20 for r in rows], y=[r["loss_after_short_distill"] for r in rows],
                    mode="markers+text", text=[r["pattern"] for r in rows], textposition="top center",
                    marker=dict(size=[14 if r.get("winner") else 9 for r in rows]), name="candidates")
    p = doc["parent"]
    fig.add_scatter(x=[p["memory_bytes"] / 2**20], y=[p["heldout_loss"]], mode="markers", name="parent",
                    marker=dict(symbol="star", size=14))
    fig.update_layout(title="Candidates: predicted memory vs held-out loss after the short distillation",
                      xaxis_title="memory at the serving scenario (MiB)", yaxis_title="held-out loss (nats/byte)")
    return fig


def curves_figure(doc: dict[str, Any]) -> go.Figure:
    go = _plotly()[0]
    fig = go.Figure()
    s = doc["student"]
    fig.add_scatter(y=s["distill_curve"], name="winner: distillation loss (KL)")
    fig.add_scatter(y=s["scratch_curve"], name="same student from scratch (cross-entropy)")
    for r in doc["candidates"]:
        fig.add_scatter(y=r["loss_curve"], name=f"candidate {r['pattern']} (KL)", line=dict(dash="dot"))
    fig.update_layout(title="Learning curves", xaxis_title="step", yaxis_title="training loss", yaxis_type="log")
    return fig


def summary_rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    p, s = doc["parent"], doc["student"]
    mg = doc["mip_vs_greedy"]
    rows = [("parent", f"{p['pattern']} ({p['params']:,} params), held-out loss {p['heldout_loss']:.4f}"),
            ("student", f"{s['pattern']} ({s['params']:,} params)"),
            ("held-out loss", f"before distillation {s['loss_before_distill']:.4f}, after "
                              f"{s['loss_after_distill']:.4f}, from scratch {s['loss_from_scratch']:.4f}"),
            ("memory saved", f"{s['memory_bytes_saved'] / 2**20:.2f} MiB; predicted speed-up "
                             f"{s['predicted_speedup']:.3f}x")]
    for name in ("mip", "greedy"):
        sel = mg.get(name)
        rows.append((name, "no selection" if sel is None else
                     f"{sel['pattern']}: retained importance {sel['retained_importance']:.4f}, memory "
                     f"{sel['memory_bytes'] / 2**20:.2f} MiB"))
    return rows


def report_html(doc: dict[str, Any]) -> str:
    from designer.present.figures import figure_divs
    figs = [kept_importance_figure(doc), candidates_figure(doc), curves_figure(doc)]
    parts = figure_divs(figs)
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary_rows(doc))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>MiniPuzzle report</title></head><body>"
            f"<h1>MiniPuzzle: {html.escape(doc['parent']['layout'])}</h1><table>{table}</table>"
            + "".join(parts) + "</body></html>")
