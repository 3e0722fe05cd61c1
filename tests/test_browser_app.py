"""Real-browser tests: Playwright drives Debian's chromium against `streamlit run app.py`.

Screenshots (1280x900) go to test-artifacts/ at the repository root. Skipped, with the reason, only when
chromium or the playwright package is missing (CI installs both: scripts/setup.sh --dev)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:          # pragma: no cover
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="the playwright Python package is not installed "
                       "(scripts/setup.sh --dev installs it)"),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (scripts/setup.sh --dev "
                       "apt-installs it; never `playwright install`)"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000
if sync_playwright is not None:
    # every expect() waits as long as a page action may: on a loaded machine a rerun can keep the previous run's
    # widgets beside the new ones for more than the default 5 s (seen once in CI: two "through layer" inputs)
    expect.set_options(timeout=TIMEOUT_MS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    """`streamlit run app.py` on a free port, headless, on 127.0.0.1; stopped after the module."""
    port = _free_port()
    env = {**os.environ, "DESIGNER_LAYOUT": "nemotron-h-8b"}
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}); see test-artifacts/streamlit.log")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    p.goto(app_url)
    settle(p)
    yield p
    context.close()


def settle(page, ms: int = 400) -> None:
    """Wait until Streamlit has finished the current run (no 'running' status widget), then a little more."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    page.wait_for_timeout(ms)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(1270, 890)          # no tooltip over the page
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def goto_page(page, name: str) -> None:
    """Click a page of the top navigation (a segmented control)."""
    page.get_by_test_id("stButtonGroup").get_by_text(name, exact=True).click()


def violations(page):
    return page.locator('[class*="st-key-violation_"]')


def test_editor_56b_last_layer_attention_is_flagged_and_fixed(page):
    expect(page.get_by_text("designer · nemotron-h-8b")).to_be_visible()
    shot(page, "01-editor-8b")

    preset = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox")
    preset.click()
    page.get_by_role("option", name="nemotron-h-56b", exact=True).click()
    expect(page.get_by_text("designer · nemotron-h-56b")).to_be_visible()
    settle(page)

    layer = page.get_by_role("spinbutton", name="Layer", exact=True)
    layer.fill("117")
    layer.press("Enter")
    settle(page)
    expect(page.get_by_role("spinbutton", name="through layer")).to_have_value("117")
    kind = page.get_by_test_id("stSelectbox").filter(has_text="Kind")
    kind.click()
    page.get_by_role("option", name="Attention (*)").click()
    settle(page, 200)
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.get_by_text("NH002", exact=True)).to_be_visible()
    settle(page)
    flagged = violations(page)
    nh002 = flagged.filter(has_text="NH002")
    nh003 = flagged.filter(has_text="NH003")
    expect(nh002).to_contain_text("layer 117")
    expect(nh003).to_contain_text("layer 117")
    shot(page, "02-editor-56b-flagged")

    page.get_by_role("button", name="Fix NH002 at layer 117").click()
    expect(page.get_by_text("Fixed NH002")).to_be_visible()
    settle(page)
    expect(flagged.filter(has_text="NH002")).to_have_count(0)
    expect(flagged.filter(has_text="NH003")).to_have_count(0)
    # an edited preset is named as an edit; the sidebar shows blocks and Transformer-counted layers
    expect(page.get_by_text("nemotron-h-56b-edited · 119 blocks · 65 layers")).to_be_visible()
    shot(page, "03-editor-56b-fixed")


def test_bad_upload_shows_a_message_and_keeps_the_layout(page, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\npattern: [M-\n  hidden_size: 3\n")
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(bad))
    expect(page.get_by_text("malformed YAML")).to_be_visible()
    settle(page)
    expect(page.get_by_text("The previous layout is unchanged")).to_be_visible()
    expect(page.get_by_text("designer · nemotron-h-8b")).to_be_visible()
    shot(page, "04-bad-upload")


PLOT_DATA_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
    traces: (gd.data || []).map(t => ({name: t.name || '', type: t.type, xaxis: t.xaxis || 'x',
        x: Array.from(t.x || []).map(String), n: (t.y || []).filter(v => v !== null).length})),
    titles: ((gd.layout && gd.layout.annotations) || []).map(a => a.text)}))"""
THREE = ("nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b")


def test_compare_shows_three_charts_with_data_for_8b_47b_56b(page):
    goto_page(page, "Compare")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(4, timeout=TIMEOUT_MS)
    settle(page, 1500)
    shot(page, "05-compare")
    memory, latency, _throughput, _fits = page.evaluate(PLOT_DATA_JS)

    # memory vs context: one panel per layout (its title), each with weights / KV / SSM state plotted
    assert [t for t in memory["titles"] if t in THREE] == list(THREE)
    for k, name in enumerate(THREE):
        axis = "x" if k == 0 else f"x{k + 1}"
        stacked = {t["name"] for t in memory["traces"] if t["xaxis"] == axis and t["n"] > 0}
        assert {"weights", "KV cache", "SSM + conv state"} <= stacked, (name, stacked)
    # latency vs context: a TTFT and a TPOT line per layout
    for name in THREE:
        assert sum(t["name"] == name and t["n"] > 0 for t in latency["traces"]) == 2, name
    # throughput at max batch: one bar per layout, each above zero
    bars = page.evaluate("() => { const t = document.querySelectorAll('.js-plotly-plot')[2].data[0];"
                         " return {names: Array.from(t.y), values: Array.from(t.x)}; }")
    assert set(THREE) <= set(bars["names"]) and all(v > 0 for v in bars["values"])

    charts = page.get_by_test_id("stPlotlyChart")
    for i, name in enumerate(("memory", "latency", "throughput")):
        charts.nth(i).scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        charts.nth(i).screenshot(path=str(ARTIFACTS / f"06-compare-{name}.png"))
    table = page.get_by_test_id("stDataFrame")
    table.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    shot(page, "07-compare-table")


def test_profile_page_renders_its_charts(page):
    goto_page(page, "Profile")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(5, timeout=TIMEOUT_MS)
    settle(page, 1500)
    expect(page.get_by_text("fits").first).to_be_visible()
    shot(page, "08-profile")
    page.get_by_test_id("stPlotlyChart").nth(2).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    shot(page, "09-profile-charts")


EXTRA = ("qwen2.5-7b", "mamba2-2.7b", "falcon-mamba-7b", "llama-3.1-70b")


def test_compare_draws_the_largest_selection_the_page_allows(page):
    from designer.app.compare import DEFAULT_LAYOUTS, MAX_LAYOUTS
    goto_page(page, "Compare")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(4, timeout=TIMEOUT_MS)
    settle(page)
    chosen = list(DEFAULT_LAYOUTS) + list(EXTRA)
    assert len(chosen) == MAX_LAYOUTS == 8
    select = page.get_by_test_id("stMultiSelect").filter(has_text="Layouts")
    for name in EXTRA:
        box = select.locator("input")
        box.click()
        box.fill(name)
        page.get_by_role("option", name=name, exact=True).click()
        settle(page, 300)
    page.keyboard.press("Escape")
    settle(page, 1500)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(4, timeout=TIMEOUT_MS)
    memory, latency, _throughput, fits = page.evaluate(PLOT_DATA_JS)
    # one memory panel per layout, each with data; two latency lines per layout
    assert [t for t in memory["titles"] if t in chosen] == chosen
    for k in range(len(chosen)):
        axis = "x" if k == 0 else f"x{k + 1}"
        assert any(t["xaxis"] == axis and t["n"] > 0 for t in memory["traces"]), chosen[k]
    assert sum(t["n"] > 0 for t in latency["traces"]) == 2 * len(chosen)
    bars = page.evaluate("() => { const t = document.querySelectorAll('.js-plotly-plot')[2].data[0];"
                         " return {names: Array.from(t.y), text: Array.from(t.text)}; }")
    assert bars["names"] == chosen
    # Llama-3.1-70B in fp8 fits no batch on one H100: said in words, with what would fit, never as a number
    assert bars["text"][chosen.index("llama-3.1-70b")] == "does not fit"
    expect(page.get_by_text("llama-3.1-70b does not fit at any batch; it fits with fp4 weights",
                            exact=False)).to_be_visible()
    # "What fits": a line per layout (70B fits shorter prompts), none dropped
    assert [t["name"] for t in fits["traces"]] == chosen
    table = page.get_by_test_id("stDataFrame")
    expect(table).to_be_visible()
    shot(page, "10-compare-eight-layouts")
