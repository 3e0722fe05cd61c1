"""Profile, Compare and Export pages through Streamlit's AppTest: they show the library's numbers."""
import csv
import io
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from designer.app import compare  # noqa: E402
from designer.profile.analytic import profile  # noqa: E402
from designer.present.format import fmt_bytes, fmt_count  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def open_page(monkeypatch, page: str, layout: str = "nemotron-h-8b") -> AppTest:
    monkeypatch.setenv("DESIGNER_LAYOUT", layout)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.segmented_control(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_profile_shows_the_profilers_numbers(monkeypatch):
    at = open_page(monkeypatch, "Profile")
    expected = profile("nemotron-h-8b", "h100-sxm", precision="bf16", batch=1, prompt=65536, gen=1024).to_dict()
    assert metric(at, "Parameters") == fmt_count(expected["params"]["total"])
    assert metric(at, "KV cache per token") == fmt_bytes(expected["memory"]["kv_cache_bytes_per_token"])
    assert metric(at, "Max batch") == f"{expected['throughput']['max_batch']:,}"
    assert any("**fits**" in s.value for s in at.success)
    charts = at.get("plotly_chart")
    assert len(charts) == 5


def test_profile_setup_changes_update_the_numbers(monkeypatch):
    at = open_page(monkeypatch, "Profile", "nemotron-h-56b")
    # 56B in bf16 is ~112 GB of weights: no batch fits on one 80 GB H100
    assert any("does not fit at any batch" in e.value for e in at.error)
    at.selectbox(key="pf.precision").set_value("fp8").run()
    assert not at.exception and any("**fits**" in s.value for s in at.success)
    at.number_input(key="pf.tp").set_value(2).run()
    expected = profile("nemotron-h-56b", "h100-sxm", precision="fp8", tp=2).to_dict()
    assert metric(at, "Weights per GPU") == fmt_bytes(expected["memory"]["weights_bytes"])
    at.selectbox(key="pf.hardware").set_value("h200").run()
    assert not at.exception


def test_profiler_errors_are_a_message_not_a_traceback(monkeypatch):
    from designer.app import profile_page
    from designer.layout import LayoutError

    at = open_page(monkeypatch, "Profile")

    def refuse(*args, **kwargs):
        raise LayoutError("pp=200 is more pipeline stages than the 52 layers")
    monkeypatch.setattr(profile_page, "profile", refuse)
    at.run()
    assert not at.exception
    assert any("Cannot profile nemotron-h-8b with this setup: pp=200" in e.value for e in at.error)

    def crash(*args, **kwargs):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(profile_page, "profile", crash)
    at.run()
    assert not at.exception
    assert any("ZeroDivisionError" in e.value for e in at.error)


def test_settings_survive_a_page_switch(monkeypatch):
    at = open_page(monkeypatch, "Profile")
    at.number_input(key="pf.batch").set_value(8).run()
    at.segmented_control(key="page").set_value("Editor").run()
    at.segmented_control(key="page").set_value("Profile").run()
    assert at.number_input(key="pf.batch").value == 8


def test_compare_defaults_to_nemotron_h_and_llama_with_ratio_table(monkeypatch):
    at = open_page(monkeypatch, "Compare")
    assert at.multiselect(key="cmp.layouts").value == compare.DEFAULT_LAYOUTS
    charts = at.get("plotly_chart")
    assert len(charts) == 4
    table = at.dataframe[0].value
    assert list(table.columns) == ["metric"] + compare.DEFAULT_LAYOUTS
    params = table[table["metric"] == "parameters"].iloc[0]
    assert params["nemotron-h-8b"] == "8.10 B" and "(×" in params["nemotron-h-56b"]


def test_compare_csv_has_values_and_ratios():
    names = ["nemotron-h-8b", "nemotron-h-56b"]
    profiles = [profile(n, "h100-sxm", precision="fp8").to_dict() for n in names]
    _, raw = compare.table_rows(names, profiles, reference=0)
    rows = list(csv.DictReader(io.StringIO(compare.to_csv(raw))))
    by_metric = {r["metric"]: r for r in rows}
    p = by_metric["params.total"]
    assert int(p["nemotron-h-8b"]) == profiles[0]["params"]["total"]
    ratio = float(p["nemotron-h-56b / nemotron-h-8b"])
    assert ratio == pytest.approx(profiles[1]["params"]["total"] / profiles[0]["params"]["total"], rel=1e-5)


def test_compare_includes_the_edited_layout(monkeypatch):
    at = open_page(monkeypatch, "Compare")
    at.multiselect(key="cmp.layouts").set_value([compare.CURRENT, "llama-3.1-8b"]).run()
    assert not at.exception
    assert list(at.dataframe[0].value.columns) == ["metric", "nemotron-h-8b (current)", "llama-3.1-8b"]
    at.selectbox(key="cmp.reference").set_value("llama-3.1-8b").run()
    row = at.dataframe[0].value.iloc[0]
    assert "(×" in row["nemotron-h-8b (current)"] and "(×" not in row["llama-3.1-8b"]


@pytest.mark.slow
def test_export_gives_a_zip_of_the_export_directory(monkeypatch):
    pytest.importorskip("torch")
    at = open_page(monkeypatch, "Export", "nemotron-h-4b")
    at.button(key="btn_export").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    result = at.session_state["ex.result"]
    names = zipfile.ZipFile(io.BytesIO(result["zip"])).namelist()
    assert "nemotron-h-4b/model.py" in names and "nemotron-h-4b/layout.yaml" in names
    assert any("Exported nemotron-h-4b" in s.value for s in at.success)


def test_export_is_disabled_with_rule_errors_and_says_why(monkeypatch):
    at = open_page(monkeypatch, "Editor")
    at.text_area(key="pattern_text").input("M-M*").run()          # NH002 / NH003
    at.segmented_control(key="page").set_value("Export").run()
    assert any("rule error" in w.value for w in at.warning)
    button = at.button(key="btn_export")
    assert button.disabled
    reason = next(c.value for c in at.caption if c.value.startswith("Disabled"))
    assert "2 rule error(s)" in reason and "NH002 (layer 3)" in reason and "NH003 (layer 3)" in reason
    assert "--" not in reason                                     # no CLI flags in the app
    at.checkbox(key="ex.allow").check().run()
    assert not at.button(key="btn_export").disabled


def test_the_exporters_refusal_is_worded_for_the_app():
    from designer.app.export_page import refusal_message
    text = refusal_message("x-edited", [{"rule": "NH002", "severity": "error", "layer": 3},
                                        {"rule": "NH005", "severity": "warning", "layer": None}])
    assert text.startswith("Not exported: x-edited has 1 rule error(s): NH002 (layer 3).")
    assert "designer fix" not in text and "--allow-violations" not in text and "Editor page" in text


def test_export_previews_config_megatron_and_model_before_download(monkeypatch):
    import json

    from designer.hf import hf_config_from_layout
    from designer.layout import load_layout
    at = open_page(monkeypatch, "Export", "nemotron-h-4b")
    codes = {c.language: c.value for c in at.code}
    assert json.loads(codes["json"]) == hf_config_from_layout(load_layout("nemotron-h-4b"))
    assert json.loads(codes["json"])["hidden_size"] == 3072
    assert "--hybrid-override-pattern" in codes["bash"] and "torchrun" in codes["bash"]
    assert "def build_model" in codes["python"]
    assert not at.button(key="btn_export").disabled


def test_a_setup_that_fits_no_batch_shows_no_latency_and_says_what_fits(monkeypatch):
    at = open_page(monkeypatch, "Profile", "nemotron-h-56b")          # bf16 on one H100: 105 GiB of weights
    for label in ("Time to first token", "Time per output token", "Output tokens/s", "Max batch"):
        assert metric(at, label) == "does not fit", label
    fp8 = profile("nemotron-h-56b", "h100-sxm", precision="fp8").to_dict()["throughput"]
    error = next(e.value for e in at.error if "does not fit at any batch" in e.value)
    assert f"It fits with fp8 weights (max batch {fp8['max_batch']}," in error


def test_compare_in_bf16_says_which_layouts_do_not_fit_and_shows_no_numbers_for_them(monkeypatch):
    at = open_page(monkeypatch, "Compare")
    at.selectbox(key="cmp.precision").set_value("bf16").run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    for name in ("nemotron-h-47b", "nemotron-h-56b"):
        assert any(w.startswith(f"**{name}** does not fit at any batch; it fits with fp8 weights") for w in warnings)
    table = at.dataframe[0].value
    ttft = table[table["metric"] == "TTFT"].iloc[0]
    assert ttft["nemotron-h-56b"] == "does not fit" and ttft["nemotron-h-8b"].endswith(" s")
    assert not any("nemotron-h-8b" in w for w in warnings)
