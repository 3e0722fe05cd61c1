"""Self-contained HTML reports: `designer compare --html` (a summary table and `figures.compare_figures`,
the same charts the app's Compare page draws) and `designer proxy --report` (`figures.proxy_figure`).
plotly.js is embedded once, so a file opens offline.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from designer.layout import atomic_write_text
from designer.present.format import ROWS, row_value, setup_line


def summary_table(profiles: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(p['layout'])}</th>" for p in profiles)
    rows = []
    for _, label, path, fmt in ROWS:
        cells = "".join(f"<td>{html.escape(row_value(p, path, fmt))}</td>" for p in profiles)
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def render_report(profiles: list[dict[str, Any]], sweeps: list[dict[str, Any]], notes: list[str] | None = None) -> str:
    """`notes`: lines shown above the table (e.g. what would fit for a layout that does not)."""
    from designer.present.figures import compare_figures, figure_divs
    figures = compare_figures(profiles, sweeps)
    divs = figure_divs(figures)
    remarks = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes or [])
    assumptions = "".join(f"<li>{html.escape(a)}</li>" for a in profiles[0]["assumptions"])
    title = "designer compare: " + ", ".join(p["layout"] for p in profiles)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child{text-align:left}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(setup_line(profiles[0]))}</p>"
            f"{remarks}{summary_table(profiles)}<h2>Assumptions</h2><ul>{assumptions}</ul>{''.join(divs)}"
            "</body></html>")


def write_report(path: str | Path, profiles: list[dict[str, Any]], sweeps: list[dict[str, Any]],
                 notes: list[str] | None = None) -> None:
    atomic_write_text(path, render_report(profiles, sweeps, notes))


def write_proxy_report(path: str | Path, ranked: list[dict[str, Any]], tasks: list[str], settings: str,
                       pairs: list[dict[str, Any]] | None = None) -> None:
    """Loss curves and per-task accuracy bars of a proxy ranking in one HTML file; with a sweep (rows with
    "sweep", `pairs` the pairwise tests) every seed's curve, mean ± std and the significance of each pair."""
    from designer.present.figures import proxy_figure
    page = proxy_figure(ranked, tasks, settings).to_html(include_plotlyjs=True, full_html=True)
    if pairs is not None:
        rows = "".join(
            f"<tr><td>{html.escape(r['name'])}</td><td>{r['sweep']['lr']:g}</td><td>{r['sweep']['mean']:.4f} ± "
            f"{r['sweep']['std']:.4f}</td><td>{len(r['sweep']['values'])}</td></tr>" for r in ranked)
        tests = "".join(
            f"<tr><td>{html.escape(p['better'])} &lt; {html.escape(p['worse'])}</td><td>"
            f"{'n/a' if p['p'] is None else format(p['p'], '.3g')}</td><td>"
            f"{'yes' if p['significant'] else 'no'}</td></tr>" for p in pairs)
        table = ("<h3>Held-out loss (mean ± std over seeds, best lr per candidate)</h3><table border=1>"
                 "<tr><th>layout</th><th>lr</th><th>held-out loss</th><th>seeds</th></tr>" + rows + "</table>"
                 "<h3>Pairwise ranking: Welch's t-test (two-sided) over seeds</h3><table border=1>"
                 "<tr><th>pair</th><th>p</th><th>significant at 0.05</th></tr>" + tests + "</table>")
        page = page.replace("</body>", table + "</body>", 1)
    atomic_write_text(path, page)
