"""The app's Search page through Streamlit's AppTest: it runs the library's search, shows a candidate beside
the base, and sends it to the Editor."""
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from designer.present.format import fmt_count  # noqa: E402
from designer.search import search  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def open_search(monkeypatch) -> AppTest:
    monkeypatch.setenv("DESIGNER_LAYOUT", "nemotron-h-8b")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.segmented_control(key="page").set_value("Search").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_search_page_runs_the_librarys_search_and_sends_a_candidate_to_the_editor(monkeypatch):
    at = open_search(monkeypatch)
    assert any("Run search" in i.value for i in at.info)
    at.selectbox(key="se.precision").set_value("fp8")
    at.number_input(key="se.max_memory_gib").set_value(20.0)
    at.number_input(key="se.top").set_value(4)
    at.button(key="se.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    expected = search("nemotron-h-8b", hardware="h100-sxm", precision="fp8", max_memory=20 * 2**30, top=4)
    assert any(f"{expected.evaluated:,} candidates" in s.value for s in at.success)
    # pick the second candidate: its numbers are the library's, beside the base
    at.selectbox(key="se.pick").set_value(1).run()
    cand = expected.front[1]
    params = next(m for m in at.metric if m.label == "Parameters")
    assert params.value == fmt_count(cand.metrics["params"])
    assert any(cand.layout.pattern in md.value for md in at.markdown)
    at.button(key="se.send").click().run()
    assert not at.exception
    assert at.session_state["page"] == "Editor"
    assert any(f"designer · {cand.layout.name}" in md.value for md in at.markdown)


def test_search_page_reports_bad_budgets_and_empty_fronts_without_a_traceback(monkeypatch):
    at = open_search(monkeypatch)
    at.number_input(key="se.max_memory_gib").set_value(1000.0)       # more than an H100 has
    at.button(key="se.run").click().run()
    assert not at.exception
    assert any("Cannot search" in e.value and "more than the h100-sxm" in e.value for e in at.error)
    at.number_input(key="se.max_memory_gib").set_value(1.0)          # nothing fits in 1 GiB
    at.button(key="se.run").click().run()
    assert not at.exception
    assert any("No candidate meets" in w.value for w in at.warning)
