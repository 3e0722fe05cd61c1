"""One presentation module: `designer compare --html` and the app's Compare page draw the same figures,
built by designer.present.figures.compare_figures."""
import json
import re

import pytest

from designer.present import figures
from designer.present.report import render_report
from designer.profile.analytic import profile, sweep
from designer.profile.scenario import Scenario

LAYOUTS = ("nemotron-h-8b", "llama-3.1-8b")
SCENARIO = Scenario(precision="fp8", prompt=8192, gen=256)


@pytest.fixture(scope="module")
def data():
    profiles = [profile(n, "h100-sxm", SCENARIO).to_dict() for n in LAYOUTS]
    sweeps = [sweep(n, "h100-sxm", SCENARIO) for n in LAYOUTS]
    return profiles, sweeps


def titles(figs) -> list[str]:
    return [f.layout.title.text for f in figs]


def test_the_html_report_embeds_exactly_the_compare_figures(data):
    profiles, sweeps = data
    html = render_report(profiles, sweeps)
    expected = figures.compare_figures(profiles, sweeps)
    assert html.count("Plotly.newPlot") == len(expected) == 4
    # each embedded figure is the builder's, trace for trace
    embedded = [json.loads(m) for m in re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', html, re.S)]
    assert [[t.get("name") for t in fig] for fig in embedded] == \
        [[t.name for t in fig.data] for fig in expected]
    texts = {json.loads(f'"{t}"') for t in re.findall(r'"text":"((?:[^"\\]|\\.)*)"', html)}
    assert set(titles(expected)) <= texts


def test_the_app_compare_page_draws_the_compare_figures(monkeypatch, data):
    pytest.importorskip("streamlit")
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from designer.app import compare
    seen = []
    real = figures.compare_figures

    def spy(profiles, sweeps, names=None):
        out = real(profiles, sweeps, names)
        seen.append(out)
        return out
    monkeypatch.setattr(figures, "compare_figures", spy)
    monkeypatch.setattr(compare, "compare_figures", spy)
    monkeypatch.setenv("DESIGNER_LAYOUT", "nemotron-h-8b")
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=60).run()
    at.segmented_control(key="page").set_value("Compare").run()
    assert not at.exception
    assert seen, "the Compare page did not build its charts with present.figures.compare_figures"
    charts = at.get("plotly_chart")
    drawn = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert drawn == titles(seen[-1])
