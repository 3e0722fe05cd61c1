"""What a user sees when a set-up does not fit, comparisons of every allowed size, and CLI tables that fit
the terminal: "does not fit" in place of latency/throughput, the first change that fits (from the profiler),
every compare figure drawable at 1..8 layouts, every number printed whole at 80 and 200 columns."""
import io
import os
import subprocess
import sys

import plotly.graph_objects as go
import pytest
from rich.console import Console

from designer.app.compare import MAX_LAYOUTS
from designer.layout import load_layout
from designer.present import figures
from designer.present.fits import what_fits
from designer.present.format import (COMPARE_LAYOUTS, COMPARE_PRECISION, DOES_NOT_FIT, ROWS, ratios_against_first,
                                     row_value)
from designer.present.tables import Row, metric_tables
from designer.profile.analytic import context_points, profile, sweep
from designer.profile.scenario import Scenario

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EIGHT = ("nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b", "llama-3.1-8b", "qwen2.5-7b", "mamba2-2.7b",
         "falcon-mamba-7b", "nemotron-3-nano-30b-a3b")
BF16 = Scenario()                                   # 65,536 + 1,024 tokens, batch 1, one H100


@pytest.fixture(scope="module")
def eight():
    s = Scenario(precision="fp8", prompt=8192, gen=256)
    contexts = context_points(n=8)
    return ([profile(n, "h100-sxm", s).to_dict() for n in EIGHT],
            [sweep(n, "h100-sxm", s, contexts=contexts) for n in EIGHT])


def test_compare_figures_draw_at_every_layout_count_the_page_allows(eight):
    profiles, sweeps = eight
    assert MAX_LAYOUTS == len(EIGHT)
    for k in range(1, MAX_LAYOUTS + 1):
        for fig in figures.compare_figures(profiles[:k], sweeps[:k], list(EIGHT[:k])):
            spec = fig.to_dict()
            go.Figure(spec)                          # plotly's validation: a domain outside [0, 1] raises
            for axis, value in spec["layout"].items():
                if axis.startswith(("xaxis", "yaxis")) and "domain" in value:
                    lo, hi = value["domain"]
                    assert 0 <= lo < hi <= 1, (k, axis, value["domain"])
        memory = figures.memory_vs_context_figure(sweeps[:k], list(EIGHT[:k])).to_dict()
        assert [a["text"] for a in memory["layout"]["annotations"]] == list(EIGHT[:k])


def test_grid_outer_edges_are_exactly_0_and_1():
    for rows in range(1, 7):
        entries, cells = figures.grid(rows, 2, vgap=0.16)
        assert len(cells) == 2 * rows
        assert entries["yaxis"]["domain"][1] == 1.0
        assert entries[f"yaxis{2 * rows - 1}" if rows > 1 else "yaxis"]["domain"][0] == 0.0
        assert entries["xaxis2"]["domain"] == [pytest.approx(0.54), 1.0]


def test_a_setup_that_fits_no_batch_shows_does_not_fit_instead_of_latency():
    p = profile("nemotron-h-56b", "h100-sxm", BF16).to_dict()
    assert p["throughput"]["max_batch"] == 0 and p["latency"]["ttft_s"] > 0       # the profiler has a number...
    shown = {label: row_value(p, path, fmt) for _, label, path, fmt in ROWS}
    for label in ("TTFT", "TPOT (mean)", "end-to-end", "output tokens/s", "max batch at prompt + gen",
                  "output tokens/s/GPU at max batch", "longest context at batch 1"):
        assert shown[label] == DOES_NOT_FIT, label                                  # ...the table does not
    assert shown["parameters"] == "56.32 B" and shown["fits in usable memory"] == "no"
    ok = profile("nemotron-h-8b", "h100-sxm", BF16).to_dict()
    ratios = ratios_against_first([ok, p])
    assert ratios["latency.ttft_s"] == [1.0, None]
    assert ratios["params.total"][1] == pytest.approx(56_324_350_464 / 8_100_852_736)


def test_what_fits_names_the_first_change_the_profiler_finds_room_for():
    hint = what_fits(load_layout("nemotron-h-56b"), "h100-sxm", BF16)
    expected = profile("nemotron-h-56b", "h100-sxm", BF16.replace(precision="fp8")).to_dict()["throughput"]
    assert hint.change == "fp8 weights" and hint.max_batch == expected["max_batch"] == 3
    assert hint.tokens_per_s_per_gpu == pytest.approx(expected["max_batch_output_tokens_per_s_per_gpu"])
    assert hint.text().startswith("fits with fp8 weights (max batch 3,")
    # 70B: fp8 weights are not enough on one H100 at 65,536 tokens; fp4 weights are
    hint = what_fits(load_layout("llama-3.1-70b"), "h100-sxm", BF16)
    assert hint.change == "fp4 weights" and hint.max_batch == 1
    # already fits: nothing to suggest
    assert what_fits(load_layout("nemotron-h-8b"), "h100-sxm", BF16) is None


def test_what_fits_tries_tensor_parallelism_and_shorter_prompts():
    lay = load_layout("llama-3.1-70b")
    fp4 = BF16.replace(precision="fp4", kv_dtype="fp8", prompt=1 << 20)
    hint = what_fits(lay, "h100-sxm", fp4)
    assert profile(lay, "h100-sxm", fp4.replace(tp=2)).to_dict()["throughput"]["max_batch"] == 0
    assert hint.change == "tensor parallel 4"
    assert hint.max_batch == profile(lay, "h100-sxm", fp4.replace(tp=4)).to_dict()["throughput"]["max_batch"] > 0
    hint = what_fits(lay, "h100-sxm", fp4.replace(tp=8, prompt=1 << 23))
    assert hint.change.endswith("-token prompt") and hint.scenario.prompt < 1 << 23


def test_the_what_fits_chart_names_a_layout_it_cannot_draw():
    s = [sweep(n, "h100-sxm", BF16, contexts=context_points(n=8)) for n in ("nemotron-h-8b", "nemotron-h-56b")]
    assert figures.absent_from_fits(s, ["nemotron-h-8b", "nemotron-h-56b"]) == ["nemotron-h-56b"]
    fig = figures.max_batch_vs_context_figure(s, ["nemotron-h-8b", "nemotron-h-56b"], gen=1024).to_dict()
    note = fig["layout"]["annotations"][0]["text"]
    assert "nemotron-h-56b" in note and "nemotron-h-8b" not in note and "not one sequence fits" in note
    assert [t["name"] for t in fig["data"]] == ["nemotron-h-8b", "nemotron-h-56b (does not fit)"]


def test_compare_default_is_one_default():
    from designer.app import compare as page
    from designer.commands import compare as command
    assert list(command.DEFAULT_LAYOUTS) == page.DEFAULT_LAYOUTS == list(COMPARE_LAYOUTS)
    assert COMPARE_PRECISION == "fp8"


# --------------------------------------------------------------------------------------------------
# tables at 80 and 200 columns


def _compare_rows(profiles):
    ratios = ratios_against_first(profiles)
    rows = []
    for _, label, path, fmt in ROWS:
        notes = [None if i == 0 or r is None else f"(x{r:.2f})" for i, r in enumerate(ratios[".".join(path)])]
        rows.append(Row(label, [row_value(p, path, fmt) for p in profiles], notes))
    return rows


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("count", [3, 8])
def test_every_number_of_a_compare_table_is_printed_whole(eight, width, count):
    profiles, _ = eight
    names = list(EIGHT[:count])
    rows = _compare_rows(profiles[:count])
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    for t in metric_tables("compare", "metric", names, rows, width):
        console.print(t)
    lines = console.export_text().splitlines()
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= width
    assert "…" not in text
    for r in rows:
        for v, n in zip(r.values, r.notes):
            assert v in text, v                       # e.g. "3,628,123" or "102.92 GFLOP": on one line, whole
            if n is not None:
                assert n in text, n
    if width == 200 and count == 3:
        assert all(name in text for name in names)    # room enough: names unfolded too


@pytest.mark.parametrize("columns", ["80", "200"])
def test_designer_compare_fits_the_terminal(columns):
    r = subprocess.run([sys.executable, "-m", "designer.cli", "compare", "--precision", "bf16"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": columns})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= int(columns)
    p56 = profile("nemotron-h-56b", "h100-sxm", BF16).to_dict()
    assert "56.32 B" in r.stdout and f"{p56['memory']['total_bytes'] / 2**30:.2f} GiB" in r.stdout
    assert "…" not in r.stdout
    # 47B and 56B fit no batch in bf16: no latency for them, and what would fit
    assert "nemotron-h-56b does not fit at any batch; it fits with fp8 weights (max batch 3" in \
        " ".join(r.stdout.split())


def test_the_html_report_says_which_layouts_a_chart_lacks_and_what_would_fit(tmp_path):
    out = tmp_path / "r.html"
    r = subprocess.run([sys.executable, "-m", "designer.cli", "compare", "--precision", "bf16", "--html", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "No line: nemotron-h-47b, nemotron-h-56b: not one sequence fits at any prompt length" in html
    assert "nemotron-h-56b does not fit at any batch; it fits with fp8 weights (max batch 3," in html
    assert "nemotron-h-47b (does not fit)" in html


@pytest.mark.parametrize("width", [80, 200])
def test_record_tables_print_every_value_whole_wide_or_transposed(width):
    from designer.present.tables import record_tables
    headers = ["#", "layers", "M/*/-", "FFN", "Mamba heads", "params", "memory", "tokens/s", "vs base", "file"]
    records = [[str(i), str(20 + i), f"{i}/1/{i + 3}", "21504", "128", f"{3.63 + i:.2f} B", f"{10.5 + i:.2f} GiB",
                f"{3628.5 * (i + 1):,.1f}", f"x{1 + i / 10:.2f}", f"nemotron-h-8b-search-{i:02d}-1a25l"]
               for i in range(1, 7)]
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    tables = record_tables("front", headers, records, width, text_columns=(9,))
    assert len(tables) == (1 if width == 200 else 2)          # transposed and split at 80 columns
    for t in tables:
        console.print(t)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    for r in records:
        for cell in r[:9]:
            assert cell in text, cell
    if width == 200:
        assert all(r[9] in text for r in records)


def test_presets_list_blocks_and_transformer_layers(run_cli):
    import json
    rows = {r["name"]: r for r in json.loads(run_cli("presets", "--json").stdout)["presets"]}
    assert (rows["llama-3.1-8b"]["layers"], rows["llama-3.1-8b"]["transformer_layers"]) == (64, 32)
    assert (rows["nemotron-h-8b"]["layers"], rows["nemotron-h-8b"]["transformer_layers"]) == (52, 28)
    assert (rows["falcon-mamba-7b"]["layers"], rows["falcon-mamba-7b"]["transformer_layers"]) == (64, 64)
