"""Compare page: any set of layouts side by side on one serving setup (the `designer compare` numbers).

Default (shared with `designer compare`: designer.present.format.COMPARE_LAYOUTS / COMPARE_PRECISION):
Nemotron-H 8B / 47B / 56B with Llama-3.1-8B as the Transformer reference, FP8 weights on one H100 (the
47B/56B throughput figures of the Nemotron-H paper use FP8 weights; state it next to them). A layout that
fits no batch shows "does not fit" instead of latency and throughput, and what would fit."""
from __future__ import annotations

import csv
import io
from functools import lru_cache

import streamlit as st

from designer.app import controls, state
from designer.layout import Layout, LayoutError, load_layout
from designer.present.figures import compare_figures
from designer.present.fits import not_fit_message
from designer.present.format import (COMPARE_LAYOUTS, COMPARE_PRECISION, DOES_NOT_FIT, ROWS, fits,
                                     ratios_against_first, row_value, setup_line, value_at)
from designer.profile.analytic import profile, sweep
from designer.profile.scenario import Scenario

DEFAULT_LAYOUTS = list(COMPARE_LAYOUTS)
CURRENT = "(current layout)"
MAX_LAYOUTS = 8


@lru_cache(maxsize=64)
def preset(name: str) -> Layout:
    return load_layout(name)


def chosen_layouts(choice: list[str]) -> list[tuple[str, Layout]]:
    """(display name, layout) per choice; the edited layout is shown as 'NAME (current)'."""
    out = []
    for ref in choice:
        if ref == CURRENT:
            lay = state.layout()
            out.append((f"{lay.name} (current)", lay))
        else:
            out.append((ref, preset(ref)))
    return out


def compute(layouts: list[tuple[str, Layout]], hardware: str, scenario: Scenario) -> tuple[list[dict], list[dict]]:
    profiles = [profile(lay, hardware, scenario).to_dict() for _, lay in layouts]
    sweeps = [sweep(lay, hardware, scenario) for _, lay in layouts]
    return profiles, sweeps


def table_rows(names: list[str], profiles: list[dict], reference: int) -> tuple[list[dict], list[dict]]:
    """(display rows, CSV rows): each metric per layout, with its ratio to the reference layout."""
    order = [reference] + [i for i in range(len(profiles)) if i != reference]
    ratios = ratios_against_first([profiles[i] for i in order])
    display, raw = [], []
    for _, label, path, fmt in ROWS:
        key = ".".join(path)
        by_layout = {order[j]: r for j, r in enumerate(ratios[key])}
        row = {"metric": label}
        csv_row = {"metric": key}
        for i, (name, p) in enumerate(zip(names, profiles)):
            r = by_layout[i]
            text = row_value(p, path, fmt)
            row[name] = text if i == reference or r is None else f"{text}  (×{r:.2f})"
            csv_row[name] = value_at(p, path) if fits(p, path) else DOES_NOT_FIT
            csv_row[f"{name} / {names[reference]}"] = "" if r is None else f"{r:.6g}"
        display.append(row)
        raw.append(csv_row)
    return display, raw


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def render() -> None:
    options = [CURRENT] + state.presets()
    state.ensure("cmp.layouts", [n for n in DEFAULT_LAYOUTS if n in options])
    lay = state.layout()
    choice = st.multiselect("Layouts", options, key="cmp.layouts", max_selections=MAX_LAYOUTS,
                            format_func=lambda o: f"current: {lay.name}" if o == CURRENT else o,
                            persist_state=controls.PERSIST,
                            help="presets, or the layout open in the Editor (with your edits)")
    hardware, scenario = controls.setup_controls("cmp", precision=COMPARE_PRECISION)
    st.caption("Default setup: FP8 weights on one H100, as the Nemotron-H paper's 47B/56B throughput figures "
               "(its 8B figure is BF16). Memory and latency curves use the batch above; throughput uses the "
               "largest batch that fits.")
    if not choice:
        st.info("Choose at least one layout.")
        return
    layouts = chosen_layouts(choice)
    names = [n for n, _ in layouts]
    try:
        profiles, sweeps = compute(layouts, hardware, scenario)
    except LayoutError as e:
        st.error(f"Cannot compare with this setup: {e}")
        return
    except Exception as e:  # noqa: BLE001  (never a traceback in the page)
        st.error(f"Cannot compare: {type(e).__name__}: {e}")
        return

    st.markdown(f"**{setup_line(profiles[0])}**")
    for (name, lay_), p in zip(layouts, profiles):
        if p["throughput"]["max_batch"] == 0:
            st.warning(not_fit_message(lay_, hardware, scenario).replace(lay_.name, f"**{name}**", 1)
                       + ". Its latency and throughput are shown as \"does not fit\".")
    memory, latency, throughput, fits = compare_figures(profiles, sweeps, names)   # the HTML report's figures
    st.plotly_chart(memory, key="cmp_memory", config={"displaylogo": False})
    st.plotly_chart(latency, key="cmp_latency", config={"displaylogo": False})
    left, right = st.columns(2, gap="medium")
    left.plotly_chart(throughput, key="cmp_throughput", config={"displaylogo": False})
    right.plotly_chart(fits, key="cmp_fits", config={"displaylogo": False})

    if st.session_state.get("cmp.reference") not in names:
        st.session_state["cmp.reference"] = names[0]
    ref_name = st.selectbox("Ratios against", names, key="cmp.reference")
    reference = names.index(ref_name) if ref_name in names else 0
    display, raw = table_rows(names, profiles, reference)
    st.dataframe(display, hide_index=True, width="stretch", height=36 * (len(display) + 1) + 4,
                 column_config={"metric": st.column_config.TextColumn("metric", width="medium")})
    st.download_button("Download CSV", to_csv(raw), file_name="designer-compare.csv", mime="text/csv",
                       key="cmp_csv", icon=":material/download:")
    with st.expander("Assumptions behind these numbers"):
        for a in profiles[0]["assumptions"]:
            st.markdown(f"- {a}")
