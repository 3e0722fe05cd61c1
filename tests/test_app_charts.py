"""The app's figure builders: valid plotly (they skip validation when built, so check here), units on every
axis, and the numbers they plot are the profiler's."""
import plotly.graph_objects as go
import pytest

from designer.present import figures as charts
from designer.layout import load_layout
from designer.profile.analytic import profile, sweep

LAYOUTS = ("nemotron-h-8b", "nemotron-h-56b", "llama-3.1-8b")


@pytest.fixture(scope="module")
def data():
    kw = dict(precision="fp8", batch=1, prompt=65536, gen=1024)
    profiles = [profile(n, "h100-sxm", **kw).to_dict() for n in LAYOUTS]
    sweeps = [sweep(n, "h100-sxm", precision="fp8", batch=1, prompt=65536, gen=1024) for n in LAYOUTS]
    return profiles, sweeps


def all_figures(data):
    profiles, sweeps = data
    names = list(LAYOUTS)
    lay = load_layout("nemotron-h-56b")
    return {
        "strip": charts.pattern_strip(lay, selected=(7, 20), flagged={117: "error", 3: "warning"}),
        "params": charts.params_figure(profiles[1]),
        "memory_breakdown": charts.memory_breakdown_figure(profiles[1]),
        "memory_vs_context": charts.memory_vs_context_figure(sweeps, names),
        "latency": charts.latency_vs_context_figure(sweeps, names),
        "throughput_vs_batch": charts.throughput_vs_batch_figure(sweeps, names, prompt=65536, gen=1024),
        "max_batch": charts.max_batch_vs_context_figure(sweeps, names, gen=1024),
        "throughput_at_max_batch": charts.throughput_at_max_batch_figure(profiles, names),
    }


def test_every_figure_is_valid_plotly(data):
    for name, fig in all_figures(data).items():
        go.Figure(fig.to_dict())          # validates every property; raises on a typo


def test_every_axis_of_a_chart_has_a_title_with_units(data):
    units = ("(tokens)", "(s)", "(ms)", "GiB", "(billions)", "tokens/s", "(sequences)", "(concurrent requests)")
    for name, fig in all_figures(data).items():
        if name == "strip":
            continue
        layout = fig.to_dict()["layout"]
        for axis, spec in layout.items():
            if not axis.startswith(("xaxis", "yaxis")) or spec.get("showticklabels") is False:
                continue
            title = (spec.get("title") or {}).get("text")
            if axis.startswith("yaxis") and spec.get("autorange") == "reversed":
                continue                  # category axis of a horizontal bar chart: the labels are the names
            if title is None and name == "memory_vs_context":
                continue                  # inner panels of the grid share the outer panels' titles
            assert title and any(u in title for u in units), (name, axis, title)


def test_memory_panels_plot_the_profilers_bytes_in_gib(data):
    _, sweeps = data
    fig = charts.memory_vs_context_figure(sweeps, list(LAYOUTS)).to_dict()
    kv = next(t for t in fig["data"] if t["name"] == "KV cache" and t.get("xaxis", "x") == "x3")
    expected = sweeps[2]["memory_vs_context"]["kv_cache_bytes"]
    assert list(kv["y"]) == pytest.approx([v / 2**30 for v in expected])
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles == list(LAYOUTS)


def test_log_ticks_are_1_2_5():
    assert charts.log_ticks(0.013, 150)[1] == ["0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10", "20",
                                                "50", "100"]
    assert charts.log_ticks(3, 3000)[1] == ["5", "10", "20", "50", "100", "200", "500", "1k", "2k"]
    assert charts.log_ticks(1, 1)[0] == [1.0]
