"""Page routing, the sidebar (where a layout comes from) and the header. The pages live beside this module."""
from __future__ import annotations

import pandas  # noqa: F401  (Compare's table needs it: 0.4 s to import, paid at server start, not on a click)
import streamlit as st

from designer.app import state
from designer.app.edit import blocks_and_layers

PAGES = ("Editor", "Profile", "Compare", "Search", "Export")
INTRO = ("A hybrid layout is a stack of residual blocks, one symbol per layer: **M** a Mamba-2 mixer (a fixed-size "
         "state instead of a KV cache), **\\*** self-attention, **\\-** an MLP, **E** a mixture of experts. Nemotron-H keeps "
         "about 8% of its layers attention, each followed by an MLP.")


def on_preset() -> None:
    name = st.session_state.get("preset")
    if name and name != state.layout().name:
        if state.load_ref(name):
            state.clear_upload()          # the uploaded file's chip no longer describes the layout


def on_upload(key: str) -> None:
    f = st.session_state.get(key)
    if f is not None:
        state.load_bytes(f.name, f.getvalue())


def on_paste() -> None:
    text = st.session_state.get("paste_text", "")
    if text.strip():
        if state.load_text(text, "pasted text"):
            state.clear_upload()
    else:
        state.flash("warning", "Nothing to load: paste a layout YAML or a Hugging Face config.json first.")


def sidebar() -> None:
    lay = state.layout()
    presets = state.presets()
    with st.sidebar:
        st.header("Layout")
        # show the current layout's preset name when it is one (not after edits renamed it)
        state.ensure("preset", lay.name if lay.name in presets else None,
                     force=st.session_state.get("_sidebar_revision") != state.history().revision)
        st.session_state["_sidebar_revision"] = state.history().revision
        st.selectbox("Preset", presets, key="preset", on_change=on_preset, index=None,
                     placeholder="choose a published layout")
        upload = state.upload_key()
        st.file_uploader("Upload a layout (YAML or HF config.json)", type=["yaml", "yml", "json"], key=upload,
                         on_change=on_upload, args=(upload,), max_upload_size=1,
                         help="A designer layout YAML, or a Hugging Face config.json of nemotron_h, falcon_mamba, "
                              "mamba2, llama or qwen2")
        with st.expander("…or paste YAML / config.json"):
            st.text_area("Layout text", key="paste_text", height=160, label_visibility="collapsed",
                         placeholder="name: my-hybrid\nhidden_size: 4096\n...")
            st.button("Load pasted text", key="btn_paste", on_click=on_paste)
        st.divider()
        st.markdown(f"**{lay.name}** · {blocks_and_layers(lay)}")
        if lay.source:
            st.caption(lay.source)


def main() -> None:
    st.set_page_config(page_title="designer: hybrid Mamba-Transformer layouts", layout="wide",
                       initial_sidebar_state="expanded")
    state.history()                       # first run: open DESIGNER_LAYOUT
    sidebar()
    head, nav = st.columns([3, 2], vertical_alignment="bottom")
    head.markdown(f"### designer · {state.layout().name}")
    page = nav.segmented_control("Page", PAGES, key="page", default="Editor", required=True,
                                 label_visibility="collapsed")
    st.caption(INTRO)
    state.show_flashes()
    if page == "Profile":
        from designer.app import profile_page
        profile_page.render()
    elif page == "Compare":
        from designer.app import compare
        compare.render()
    elif page == "Search":
        from designer.app import search_page
        search_page.render()
    elif page == "Export":
        from designer.app import export_page
        export_page.render()
    else:
        from designer.app import editor
        editor.render()
