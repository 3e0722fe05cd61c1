"""Search page: set a base, the serving assumptions, budgets and objectives; run `designer.search` (the same
call as `designer search`) with a progress bar; click a point of the front (or pick it) to see its pattern and
numbers beside the base, and send it to the Editor. Widgets only: every number comes from the library."""
from __future__ import annotations

import streamlit as st

from designer.app import state
from designer.layout import Layout, LayoutError, load_layout
from designer.present import figures as charts
from designer.present.format import GIB, fmt_bytes, fmt_count, fmt_seconds
from designer.profile.hardware import hardware_names
from designer.profile.memory import PRECISIONS
from designer.search.assumptions import EMBEDDINGS, KV_DTYPES
from designer.search.engine import OBJECTIVES

P = "se"                      # widget key prefix
CURRENT = "current layout"
RESULT = "se.result"          # {"doc": SearchResult.to_dict(plot_data=True), "layouts": [Layout], "base": Layout}


def _defaults() -> None:
    for key, value in (("base", CURRENT), ("hardware", "h100-sxm"), ("precision", "bf16"), ("kv_dtype", "auto"),
                       ("embeddings", "bf16"), ("context", 65536 + 1024), ("gen", 1024), ("batch", 1),
                       ("prefill_chunk", 8192), ("max_memory_gib", 0.0), ("max_params_b", 0.0),
                       ("min_params_b", 0.0), ("min_throughput", 0.0), ("max_ttft_s", 0.0), ("max_tpot_ms", 0.0),
                       ("objectives", ["throughput", "params"]), ("strict", False), ("top", 10)):
        state.ensure(f"{P}.{key}", value)


def base_layout() -> Layout:
    choice = st.session_state.get(f"{P}.base", CURRENT)
    return state.layout() if choice == CURRENT else load_layout(choice)


def search_kwargs() -> dict:
    """Keyword arguments of `designer.search.search` from the widgets (0 = no budget)."""
    g = st.session_state
    kv = g[f"{P}.kv_dtype"]
    kw = dict(hardware=g[f"{P}.hardware"], precision=g[f"{P}.precision"], kv_dtype=None if kv == "auto" else kv,
              embeddings=g[f"{P}.embeddings"], context=int(g[f"{P}.context"]), gen=int(g[f"{P}.gen"]),
              batch=int(g[f"{P}.batch"]), prefill_chunk=int(g[f"{P}.prefill_chunk"]),
              objectives=list(g[f"{P}.objectives"]), strict=bool(g[f"{P}.strict"]), top=int(g[f"{P}.top"]))
    for key, name, scale in (("max_memory_gib", "max_memory", GIB), ("max_params_b", "max_params", 1e9),
                             ("min_params_b", "min_params", 1e9), ("min_throughput", "min_throughput", 1),
                             ("max_ttft_s", "max_ttft", 1), ("max_tpot_ms", "max_tpot", 1e-3)):
        if g[f"{P}.{key}"]:
            kw[name] = float(g[f"{P}.{key}"]) * scale
    return kw


def run_search(base: Layout, kw: dict) -> None:
    from designer.search import search
    bar = st.progress(0.0, text="preparing")
    labels = {"prepare": "preparing the per-block terms", "search": "scoring candidates",
              "place": "placing and checking the front's layouts"}

    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=f"{labels.get(stage, stage)}: {done:,}/{total:,}")
    try:
        result = search(base, progress=progress, **kw)
    except LayoutError as e:
        bar.empty()
        st.error(f"Cannot search: {e}")
        return
    except Exception as e:  # noqa: BLE001  (never a traceback in the page)
        bar.empty()
        st.error(f"Cannot search: {type(e).__name__}: {e}")
        return
    bar.empty()
    st.session_state[RESULT] = {"doc": result.to_dict(plot_data=True), "layouts": [c.layout for c in result.front],
                                "base": base}
    st.session_state[f"{P}.pick"] = 0 if result.front else None


def on_front_select() -> None:
    event = st.session_state.get(f"{P}.front")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    for p in points:
        idx = p.get("customdata")
        if isinstance(idx, list):
            idx = idx[0] if idx else None
        if isinstance(idx, int):
            st.session_state[f"{P}.pick"] = idx
            return


def on_send() -> None:
    res = st.session_state.get(RESULT)
    i = st.session_state.get(f"{P}.pick")
    if not res or i is None or i >= len(res["layouts"]):
        return
    lay = res["layouts"][i]
    state.commit(lay, f"search result {lay.name}", edited=False)     # opened, not edited: its own name and source
    state.flash("success", f"Opened {lay.name} from the search ({lay.num_layers} layers) in the Editor.")
    st.session_state["page"] = "Editor"


def _controls():
    presets = state.presets()
    c = st.columns([2, 1.6, 1, 1, 1.2])
    c[0].selectbox("Base", [CURRENT] + presets, key=f"{P}.base",
                   help="the layout the search prunes (the sidebar's current layout, or a preset)")
    c[1].selectbox("Hardware", hardware_names(), key=f"{P}.hardware")
    c[2].selectbox("Precision", list(PRECISIONS), key=f"{P}.precision", help="GEMM weights")
    c[3].selectbox("KV cache", ["auto"] + list(KV_DTYPES), key=f"{P}.kv_dtype", help="fp4 = NVFP4 (0.5625 B)")
    c[4].selectbox("Embedding/LM head", list(EMBEDDINGS), key=f"{P}.embeddings",
                   help="quantized = stored like the GEMM weights")
    c = st.columns(4)
    c[0].number_input("Context (tokens)", min_value=2, max_value=1 << 24, step=1024, key=f"{P}.context",
                      help="prompt + generated tokens per sequence")
    c[1].number_input("Generated (tokens)", min_value=1, max_value=1 << 22, step=128, key=f"{P}.gen")
    c[2].number_input("Batch", min_value=1, max_value=100_000, step=1, key=f"{P}.batch")
    c[3].number_input("Prefill chunk", min_value=1, max_value=1 << 20, step=1024, key=f"{P}.prefill_chunk")
    st.markdown("**Budgets** (0 = none; memory 0 = 0.9 of the GPU)")
    c = st.columns(6)
    c[0].number_input("Max memory (GiB)", min_value=0.0, step=0.5, key=f"{P}.max_memory_gib")
    c[1].number_input("Max params (B)", min_value=0.0, step=1.0, key=f"{P}.max_params_b")
    c[2].number_input("Min params (B)", min_value=0.0, step=1.0, key=f"{P}.min_params_b")
    c[3].number_input("Min tokens/s", min_value=0.0, step=1.0, key=f"{P}.min_throughput")
    c[4].number_input("Max TTFT (s)", min_value=0.0, step=1.0, key=f"{P}.max_ttft_s")
    c[5].number_input("Max TPOT (ms)", min_value=0.0, step=1.0, key=f"{P}.max_tpot_ms")
    c = st.columns([3, 1, 1, 1])
    c[0].multiselect("Objectives", [o for o in OBJECTIVES if o != "importance"], key=f"{P}.objectives",
                     help="the Pareto front is over these (throughput, params: max; memory, TTFT, TPOT: min)")
    c[1].number_input("Layouts to emit", min_value=1, max_value=100, step=1, key=f"{P}.top")
    c[2].checkbox("Strict", key=f"{P}.strict", help="rule warnings (attention share, spread, balance) fail too")
    return c[3]


def _metrics_beside_base(row: dict, base: dict) -> None:
    cols = st.columns(5)
    cols[0].metric("Layers", f"{row['layers']}", delta=row["layers"] - base["layers"], delta_color="off")
    cols[1].metric("Attention layers", f"{row['attention_layers']}",
                   delta=row["attention_layers"] - base["attention_layers"], delta_color="off")
    cols[2].metric("Parameters", fmt_count(row["params"]),
                   delta=f"{(row['params'] / base['params'] - 1) * 100:+.1f}%", delta_color="off")
    cols[3].metric("Memory", fmt_bytes(row["memory_bytes"]),
                   delta=f"{(row['memory_bytes'] / base['memory_bytes'] - 1) * 100:+.1f}%", delta_color="inverse")
    cols[4].metric("Output tokens/s", f"{row['throughput_tokens_per_s']:,.4g}",
                   delta=f"x{row['throughput_tokens_per_s'] / base['throughput_tokens_per_s']:.2f} the base")
    st.caption(f"TTFT {fmt_seconds(row['ttft_s'])} (base {fmt_seconds(base['ttft_s'])}) · TPOT "
               f"{fmt_seconds(row['tpot_s'])} (base {fmt_seconds(base['tpot_s'])})")


def render() -> None:
    from designer.present.search import front_3d_figure, front_figure
    _defaults()
    st.markdown("**Search**: the Pareto front of layouts pruned from a base under the rules and budgets "
                "(`designer search` gives the same result; docs/search.md)")
    button_col = _controls()
    try:
        base = base_layout()
    except LayoutError as e:
        st.error(f"Cannot open the base: {e}")
        return
    if button_col.button("Run search", key=f"{P}.run", type="primary"):
        run_search(base, search_kwargs())
    res = st.session_state.get(RESULT)
    if not res:
        st.info(f"Set the budgets and press **Run search** to search from {base.name}.")
        return
    doc, layouts = res["doc"], res["layouts"]
    st.success(f"{doc['method']}: {doc['evaluated']:,} candidates ({doc['candidates_per_s']:,.0f}/s), "
               f"{doc['feasible']:,} within the rules and budgets, {doc['front_size']:,} on the front, "
               f"{len(doc['front'])} emitted (base {doc['base']}).")
    if not doc["front"]:
        st.warning("No candidate meets the rules and budgets: loosen a budget or widen the space.")
        return
    st.plotly_chart(front_figure(doc), key=f"{P}.front", on_select=on_front_select, selection_mode="points",
                    config={"displaylogo": False})
    n = len(doc["front"])
    if st.session_state.get(f"{P}.pick") is None or st.session_state[f"{P}.pick"] >= n:
        st.session_state[f"{P}.pick"] = 0
    st.selectbox("Candidate (or click a numbered point)", list(range(n)), key=f"{P}.pick",
                 format_func=lambda i: f"{i + 1}. {doc['front'][i]['name']}")
    i = st.session_state[f"{P}.pick"]
    row, lay = doc["front"][i], layouts[i]
    _metrics_beside_base(row, doc["base_metrics"])
    st.markdown(f"**{lay.name}** · `{lay.pattern}`")
    st.plotly_chart(charts.pattern_strip(lay), key=f"{P}.strip", config={"displaylogo": False})
    st.markdown(f"**base {res['base'].name}**")
    st.plotly_chart(charts.pattern_strip(res["base"]), key=f"{P}.base_strip", config={"displaylogo": False})
    if row["warnings"]:
        st.caption("Rule warnings: " + "; ".join(row["warnings"]))
    st.button("Send to the Editor", key=f"{P}.send", on_click=on_send, type="primary")
    with st.expander("Front in 3-D and the assumptions"):
        st.plotly_chart(front_3d_figure(doc), key=f"{P}.front3d", config={"displaylogo": False})
        for s in doc["assumptions"].get("sentences", []):
            st.markdown(f"- {s}")
