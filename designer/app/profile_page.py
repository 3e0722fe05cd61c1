"""Profile page: the current layout on one GPU setup. Every number comes from
`designer.profile.analytic` (the same calls as `designer profile`); this page only lays them out."""
from __future__ import annotations

import json

import streamlit as st

from designer.app import controls, state
from designer.layout import LayoutError
from designer.present import figures as charts
from designer.present.fits import what_fits
from designer.present.format import DOES_NOT_FIT, fmt_bytes, fmt_context, fmt_count, fmt_seconds
from designer.present.measured import overlay
from designer.profile.analytic import profile, sweep
from designer.profile.hardware import DEFAULT_KERNELS, KERNEL_BACKENDS
from designer.profile.scenario import Scenario


def compute(layout, hardware: str, scenario: Scenario) -> tuple[dict, dict]:
    """(profile dict, chart sweeps) for one layout and scenario; raises LayoutError on a bad setup."""
    return profile(layout, hardware, scenario).to_dict(), sweep(layout, hardware, scenario)


def fits_summary(prof: dict, hint: str | None = None) -> tuple[str, str]:
    """(kind, markdown) saying what fits on the chosen GPU, for st.success / st.warning / st.error.
    `hint`: what would fit instead (`present.fits.what_fits(...).text()`), when nothing does."""
    m, t, s = prof["memory"], prof["throughput"], prof["setup"]
    per_gpu = f"per GPU ({t['gpus']} GPU{'s' if t['gpus'] > 1 else ''})"
    used = (f"Batch {s['batch']:,} × ({s['prompt']:,} prompt + {s['gen']:,} generated tokens) needs "
            f"**{fmt_bytes(m['total_bytes'])}** of **{fmt_bytes(m['capacity_bytes'])}** usable {per_gpu}")
    if t["max_batch"] == 0:
        advice = (f"It {hint}." if hint else "Nothing tried fits: fp8/fp4 weights, an fp8 KV cache, tensor "
                  "parallel up to 8 or a 1,024-token prompt.")
        return "error", (f"{used}: **does not fit at any batch**. The weights alone take "
                         f"{fmt_bytes(m['weights_bytes'])}. {advice}")
    tail = (f"Largest batch at this length: **{t['max_batch']:,}** "
            f"({t['max_batch_output_tokens_per_s_per_gpu']:,.0f} output tokens/s per GPU). "
            f"Longest context at batch 1: **{fmt_context(t['max_context_tokens'])}** tokens.")
    if m["fits"]:
        return "success", f"{used}: **fits**. {tail}"
    return "warning", f"{used}: **does not fit** at this batch. {tail}"


def render() -> None:
    lay = state.layout()
    st.markdown(f"**Profile of {lay.name}**: analytic roofline on one GPU setup (`designer profile` gives the "
                "same numbers)")
    hardware, scenario = controls.setup_controls("pf", tp=lay.parallel.tensor)
    state.ensure("pf.kernels", DEFAULT_KERNELS)
    kernel_col, measured_col = st.columns([1, 3], vertical_alignment="bottom")
    kernels = kernel_col.selectbox("Kernel backend", list(KERNEL_BACKENDS), key="pf.kernels",
                                   persist_state=controls.PERSIST,
                                   help="the exported model's kernels whose costs the roofline uses: triton "
                                        "(fla-core, the fast path) or torch (plain PyTorch); the hardware profile's "
                                        "`kernels:` block holds each one's terms")
    scenario = scenario.replace(kernels=kernels)
    try:
        prof, sw = compute(lay, hardware, scenario)
    except LayoutError as e:
        st.error(f"Cannot profile {lay.name} with this setup: {e}")
        return
    except Exception as e:  # noqa: BLE001  (never a traceback in the page)
        st.error(f"Cannot profile {lay.name}: {type(e).__name__}: {e}")
        return

    p, m, lat, t = prof["params"], prof["memory"], prof["latency"], prof["throughput"]
    cols = st.columns(4)
    cols[0].metric("Parameters", fmt_count(p["total"]),
                   help=f"active per token: {fmt_count(p['active'])}; embedding {fmt_count(p['embedding'])}")
    cols[1].metric("Weights per GPU", fmt_bytes(m["weights_bytes"]))
    cols[2].metric("KV cache per token", fmt_bytes(m["kv_cache_bytes_per_token"]),
                   help="every attention layer's K and V for one token (per GPU); grows with the context")
    cols[3].metric("SSM state per sequence", fmt_bytes(m["ssm_state_bytes_per_sequence"]),
                   help="Mamba recurrent state (per GPU): a fixed size whatever the context")
    cols = st.columns(4)
    fit = m["fits"]          # latency and throughput at this batch mean nothing when it does not fit
    cols[0].metric("Time to first token", fmt_seconds(lat["ttft_s"]) if fit else DOES_NOT_FIT,
                   help="prefill of the batch's prompts")
    cols[1].metric("Time per output token", fmt_seconds(lat["tpot_s"]) if fit else DOES_NOT_FIT,
                   help="mean decode step over the generation")
    cols[2].metric("Output tokens/s", f"{t['output_tokens_per_s']:,.0f}" if fit else DOES_NOT_FIT,
                   help="at this batch, all GPUs")
    cols[3].metric("Max batch", f"{t['max_batch']:,}" if t["max_batch"] else DOES_NOT_FIT,
                   help="largest batch that fits at prompt + generated tokens")
    hint = None
    if not t["max_batch"]:
        suggestion = what_fits(lay, hardware, scenario)
        hint = suggestion.text() if suggestion else None
    kind, text = fits_summary(prof, hint)
    getattr(st, kind)(text)

    left, right = st.columns(2, gap="medium")
    left.plotly_chart(charts.params_figure(prof), key="pf_params", config={"displaylogo": False})
    right.plotly_chart(charts.memory_breakdown_figure(prof), key="pf_memory", config={"displaylogo": False})
    name = None if t["max_batch"] else f"{lay.name} (does not fit: latency if it did)"
    measured, note = overlay(prof)
    if note:
        measured_col.caption(note)
    st.plotly_chart(charts.latency_with_measured_figure(sw, measured, batch=scenario.batch, name=name) if measured
                    else charts.latency_vs_context_figure([sw], [name] if name else None),
                    key="pf_latency", config={"displaylogo": False})
    left, right = st.columns(2, gap="medium")
    if t["max_batch"]:
        left.plotly_chart(charts.throughput_vs_batch_figure([sw], prompt=scenario.prompt, gen=scenario.gen),
                          key="pf_throughput", config={"displaylogo": False})
    else:
        left.warning("No throughput curve: not even one sequence fits at this prompt + generated length.")
    right.plotly_chart(charts.max_batch_vs_context_figure([sw], gen=scenario.gen), key="pf_fits",
                       config={"displaylogo": False})
    with st.expander("Assumptions behind these numbers"):
        for a in prof["assumptions"]:
            st.markdown(f"- {a}")
        st.download_button("Download profile JSON", json.dumps(prof, indent=1), file_name=f"{lay.name}-profile.json",
                           mime="application/json", key="pf_download")
