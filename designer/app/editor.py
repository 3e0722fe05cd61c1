"""Editor page: the pattern strip, layer edits, sizes, live rule violations with one-click fixes, undo/redo.

Every button is a callback: it runs before the page is redrawn, changes the layout through
`designer.app.edit` and `state.commit`, and a bad value becomes a message, never a traceback.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from designer.app import edit, state
from designer.present import figures as charts
from designer.layout import (ACTIVATIONS, SYMBOLS, AttentionConfig, Layout, LayoutError, MambaConfig, MLPConfig,
                             MoEConfig, dump_yaml, field_range)
from designer.present.format import fmt_bytes, fmt_count
from designer.profile.analytic import WEIGHT_PRECISIONS
from designer.profile.scenario import Scenario
from designer.rules import apply_edit, check, fix_all, rule_sets
from designer.rules.engine import ALWAYS_ON, Violation

KINDS = list(SYMBOLS)                      # M * - E
KIND_NAMES = {"M": "Mamba (M)", "*": "Attention (*)", "-": "MLP (-)", "E": "MoE (E)"}
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
SEVERITY_BADGE = {"error": ":red-badge[:material/error: error]", "warning": ":orange-badge[:material/warning: warning]",
                  "info": ":gray-badge[:material/info: note]"}

# (field, label) per block of the sizes form; Mamba-1 swaps heads for expand. The bounds come from the schema.
_LABELS: dict[str, list[tuple[str, str]]] = {
    "mamba": [("num_heads", "Mamba heads"), ("head_dim", "Mamba head dim"), ("n_groups", "groups (B, C)"),
              ("state_size", "state size"), ("conv_kernel", "conv kernel")],
    "mamba1": [("expand", "expand (d_inner / hidden)"), ("state_size", "state size"), ("conv_kernel", "conv kernel")],
    "attention": [("num_heads", "Q heads"), ("num_kv_heads", "KV heads"), ("head_dim", "head dim")],
    "mlp": [("intermediate_size", "FFN width")],
    "moe": [("num_experts", "experts"), ("top_k", "top-k"), ("intermediate_size", "expert FFN width"),
            ("shared_intermediate_size", "shared expert width (0 = none)")],
}
_CLASSES = {"mamba": MambaConfig, "mamba1": MambaConfig, "attention": AttentionConfig, "mlp": MLPConfig,
            "moe": MoEConfig}
# (field, label, minimum, maximum) for the sizes form
SIZE_FIELDS: dict[str, list[tuple[str, str, int, int]]] = {
    block: [(name, label, *field_range(_CLASSES[block], name)) for name, label in fields]
    for block, fields in _LABELS.items()}
HIDDEN_RANGE, VOCAB_RANGE = field_range(Layout, "hidden_size"), field_range(Layout, "vocab_size")
ACTIVATION_BLOCKS = ("mlp", "moe")
BLOCK_TITLES = {"mamba": "Mamba (M)", "attention": "Attention (*)", "mlp": "MLP (-)", "moe": "MoE (E)"}
_MD_SPECIAL = "\\`*_[]<>|~$:"
BLOCKS_NOTE = ("Blocks: symbols of the pattern, each a pre-norm residual block (what Nemotron-H and Megatron-LM call "
               "layers, and what the strip numbers). Layers: as a Transformer paper counts them, a mixer (M or *) "
               "with the FFN (- or E) after it is one layer, so Llama-3.1-8B's 64 blocks are its 32 layers.")
FOOTPRINT_CONTEXT = Scenario().context      # the profiler's default scenario: 65,536 prompt + 1,024 generated


def md(text: str) -> str:
    """Escape Markdown so rule messages such as 'expected an FFN (- or E)' show literally."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))


# --------------------------------------------------------------------------------------------------
# Selection and widget sync


def selection(n_layers: int) -> tuple[int, int]:
    a = int(st.session_state.get("sel_start", 0) or 0)
    b = int(st.session_state.get("sel_end", a) or 0)
    a, b = min(a, b), max(a, b)
    return max(0, min(a, n_layers - 1)), max(0, min(b, n_layers - 1))


def _select(a: int, b: int | None = None) -> None:
    st.session_state["sel_start"] = a
    st.session_state["sel_end"] = a if b is None else b


def _size_fields(layout: Layout, block: str) -> list[tuple[str, str, int, int]]:
    if block == "mamba" and layout.mamba is not None and layout.mamba.version == 1:
        return SIZE_FIELDS["mamba1"]
    return SIZE_FIELDS[block]


def used_blocks(layout: Layout) -> list[str]:
    return [block for sym, block in (("M", "mamba"), ("*", "attention"), ("-", "mlp"), ("E", "moe"))
            if sym in layout.pattern and getattr(layout, block) is not None]


def sync_widgets(layout: Layout, revision: int) -> None:
    """Before drawing: widgets show the current layout after any change (undo, fix, upload, ...)."""
    force = st.session_state.get("_editor_revision") != revision
    n = layout.num_layers
    a, b = selection(n)
    st.session_state["sel_start"], st.session_state["sel_end"] = a, b
    state.ensure("kind", "*")
    state.ensure("pattern_text", layout.pattern, force)
    state.ensure("rule_sets", list(layout.rules), force)
    state.ensure("sz.name", layout.name, force)
    state.ensure("sz.hidden_size", layout.hidden_size, force)
    state.ensure("sz.vocab_size", layout.vocab_size, force)
    for block in used_blocks(layout):
        cfg = getattr(layout, block)
        for name, *_ in _size_fields(layout, block):
            state.ensure(f"sz.{block}.{name}", int(getattr(cfg, name)), force)
        if block in ACTIVATION_BLOCKS:
            state.ensure(f"sz.{block}.activation", cfg.activation, force)
    st.session_state["_editor_revision"] = revision


# --------------------------------------------------------------------------------------------------
# Callbacks (each runs before the redraw)


def _guard(action: Callable[[], None]) -> None:
    try:
        action()
    except LayoutError as e:
        state.flash("error", f"Not applied: {e}")


def _commit_pattern(pattern: str, note: str) -> None:
    new, added = edit.with_pattern(state.layout(), pattern)
    if state.commit(new, note) and added:
        state.flash("info", f"Added default sizes for {', '.join(added)}; edit them under Sizes.")


def on_strip_select() -> None:
    event = st.session_state.get("strip")
    layers = charts.selected_layers(event.get("selection") if event else None)
    if layers:
        _select(layers[0], layers[-1])


def on_start_change() -> None:
    st.session_state["sel_end"] = st.session_state.get("sel_start", 0)


def on_apply_kind() -> None:
    def go():
        lay = state.layout()
        a, b = selection(lay.num_layers)
        sym = st.session_state.get("kind", "*")
        what = f"layer {a}" if a == b else f"layers {a}..{b}"
        _commit_pattern(edit.set_kind(lay.pattern, a, b, sym), f"{what} → {SYMBOLS[sym]}")
    _guard(go)


def on_insert(after: bool) -> None:
    def go():
        lay = state.layout()
        a, b = selection(lay.num_layers)
        sym = st.session_state.get("kind", "*")
        at = b + 1 if after else a
        _commit_pattern(edit.insert(lay.pattern, at, sym), f"insert {SYMBOLS[sym]} at layer {at}")
        _select(at)
    _guard(go)


def on_delete() -> None:
    def go():
        lay = state.layout()
        a, b = selection(lay.num_layers)
        _commit_pattern(edit.delete(lay.pattern, a, b), f"delete layers {a}..{b}")
        _select(min(a, len(state.layout().pattern) - 1))
    _guard(go)


def on_shift(step: int) -> None:
    def go():
        lay = state.layout()
        a, b = selection(lay.num_layers)
        pattern, a2, b2 = edit.shift(lay.pattern, a, b, step)
        _commit_pattern(pattern, f"move layers {a}..{b} to {a2}")
        _select(a2, b2)
    _guard(go)


def on_pattern_text() -> None:
    text = st.session_state.get("pattern_text", "")
    try:
        _commit_pattern(text, "edit pattern text")
    except LayoutError as e:
        state.flash("error", f"Pattern not applied: {e}")
        st.session_state["_editor_revision"] = None        # put the current pattern back in the box


def on_undo() -> None:
    note = state.history().undo()
    if note is not None:
        state.flash("info", f"Undid: {note}")


def on_redo() -> None:
    note = state.history().redo()
    if note is not None:
        state.flash("info", f"Redid: {note}")


def on_fix(rule: str, layer: int | None, message: str) -> None:
    lay = state.layout()
    for v in violations_of(lay)[0]:
        if (v.rule, v.layer, v.message) == (rule, layer, message) and v.fix is not None:
            # through the editor's pattern edit: a kind the layout lacked gets default sizes (a layout is never
            # left without the block its pattern needs)
            new, added = edit.with_pattern(lay, apply_edit(lay.pattern, v.fix))
            state.commit(new, f"fix {rule}: {v.fix.description}")
            state.flash("success", f"Fixed {rule}: {v.fix.description}." + (
                f" Added default sizes for {', '.join(added)}; edit them under Sizes." if added else ""))
            if v.fix.layer is not None:
                _select(min(v.fix.layer, state.layout().num_layers - 1))
            return
    state.flash("warning", f"{rule} no longer applies; nothing to fix.")


def on_fix_all() -> None:
    lay = state.layout()
    try:
        new, changes, _ = fix_all(lay)
    except LayoutError as e:
        state.flash("error", f"Not fixed: {e}")
        return
    if state.commit(new, f"fix all ({len(changes)} changes)"):
        state.flash("success", "Applied: " + "; ".join(changes))


def on_rule_sets() -> None:
    chosen = tuple(st.session_state.get("rule_sets") or ())
    state.commit(state.layout().replace(rules=chosen), f"rule sets → {', '.join(chosen) or 'none'}")


def on_apply_sizes() -> None:
    lay = state.layout()
    ss = st.session_state
    top = {"name": ss.get("sz.name", lay.name), "hidden_size": ss.get("sz.hidden_size"),
           "vocab_size": ss.get("sz.vocab_size")}
    blocks: dict[str, dict] = {}
    for block in used_blocks(lay):
        fields = {name: ss.get(f"sz.{block}.{name}") for name, *_ in _size_fields(lay, block)}
        if block in ACTIVATION_BLOCKS:
            fields["activation"] = ss.get(f"sz.{block}.activation")
        blocks[block] = fields
    try:
        new = edit.with_sizes(lay, top, blocks)
    except LayoutError as e:
        state.flash("error", f"Sizes not applied: {e}")
        return
    if state.commit(new, "edit sizes"):
        state.flash("success", "Sizes applied.")


# --------------------------------------------------------------------------------------------------
# Drawing


def violations_of(layout: Layout) -> tuple[list[Violation], str | None]:
    try:
        return check(layout), None
    except LayoutError as e:       # e.g. an unknown rule set named in the file: check the always-on rules
        return check(layout.replace(rules=())), str(e)


def flagged_layers(violations: list[Violation]) -> dict[int, str]:
    """Layer -> the worst severity flagged there."""
    worst: dict[int, str] = {}
    for v in violations:
        if v.layer is not None and (v.layer not in worst or
                                    SEVERITY_ORDER[v.severity] < SEVERITY_ORDER[worst[v.layer]]):
            worst[v.layer] = v.severity
    return worst


def render() -> None:
    hist = state.history()
    lay = hist.present
    sync_widgets(lay, hist.revision)
    violations, rules_error = violations_of(lay)
    a, b = selection(lay.num_layers)

    counts = lay.counts
    cols = st.columns(7)
    cols[0].metric("Blocks", lay.num_layers, help=BLOCKS_NOTE)
    cols[1].metric("Layers (Transformer count)", edit.conventional_layers(lay.pattern), help=BLOCKS_NOTE)
    for col, sym in zip(cols[2:6], KINDS):
        col.metric(KIND_NAMES[sym], counts[sym])
    cols[6].metric("Attention share", f"{lay.attention_fraction:.1%}")

    left, right = st.columns([3, 2], gap="large")
    with left:
        _render_footprint(lay)
        _render_strip(lay, violations, a, b)
        _render_layer_controls(lay, a, b)
        st.text_area("Pattern", key="pattern_text", on_change=on_pattern_text, height=80,
                     help="One symbol per layer: M Mamba, * attention, - MLP, E MoE (Megatron-LM / Hugging Face "
                          "hybrid_override_pattern). Click outside the box to apply.")
        _render_sizes(lay)
    with right:
        _render_rules(lay, violations, rules_error)


def _render_footprint(lay: Layout) -> None:
    """Parameters and memory of the layout as it is now: recomputed on every run, so after every edit."""
    state.ensure("ed.context", FOOTPRINT_CONTEXT)
    state.ensure("ed.precision", "bf16")
    c = st.columns([1, 1, 1, 1.2, 1.1, 0.9], vertical_alignment="bottom")
    context = c[4].number_input("Context (tokens)", min_value=1, max_value=1 << 24, step=1024, key="ed.context",
                                help="tokens of one sequence for the cache memory")
    precision = c[5].selectbox("Weights", list(WEIGHT_PRECISIONS), key="ed.precision")
    f = edit.footprint(lay, int(context), precision)
    c[0].metric("Parameters", fmt_count(f.total_params), help="whole model (designer.profile.params)")
    c[1].metric("Active / token", fmt_count(f.active_params), help="parameters one token uses (top-k experts)")
    c[2].metric(f"Weights ({precision})", fmt_bytes(f.weights_bytes), help="whole model, not split over GPUs")
    c[3].metric("KV + state / sequence", fmt_bytes(f.kv_cache_bytes + f.state_bytes),
                help=f"KV cache ({f.kv_dtype}) {fmt_bytes(f.kv_cache_bytes)} at {f.context:,} tokens + SSM and conv "
                     f"state {fmt_bytes(f.state_bytes)} (fixed size); the Profile page adds activations, batch "
                     "and GPUs")


def _render_strip(lay: Layout, violations: list[Violation], a: int, b: int) -> None:
    st.markdown("**Layers** · hover a cell for its sizes; click one to select it, or pick the box tool (top "
                "right of the strip) and drag over a range")
    fig = charts.pattern_strip(lay, selected=(a, b), flagged=flagged_layers(violations))
    st.plotly_chart(fig, key="strip", on_select=on_strip_select, selection_mode=("points", "box"),
                    config={"displayModeBar": True, "displaylogo": False, "scrollZoom": False,
                            "modeBarButtonsToRemove": ["zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
                                                       "resetScale2d", "toImage", "lasso2d"]})


def _render_layer_controls(lay: Layout, a: int, b: int) -> None:
    n = lay.num_layers
    c1, c2, c3 = st.columns([1, 1, 1.4])
    c1.number_input("Layer", min_value=0, max_value=n - 1, step=1, key="sel_start", on_change=on_start_change,
                    help="First selected layer (0-based). Setting it also sets 'through layer'.")
    c2.number_input("through layer", min_value=0, max_value=n - 1, step=1, key="sel_end",
                    help="Last selected layer (inclusive)")
    c3.selectbox("Kind", KINDS, format_func=KIND_NAMES.get, key="kind")
    what = f"layer {a}" if a == b else f"layers {a}–{b}"
    with st.container(horizontal=True, gap="small"):
        st.button("Apply", key="btn_apply", on_click=on_apply_kind, type="primary",
                  help=f"Set {what} to the chosen kind")
        st.button("Insert before", key="btn_insert_before", on_click=on_insert, args=(False,),
                  help=f"Insert one layer of the chosen kind before layer {a}")
        st.button("Insert after", key="btn_insert_after", on_click=on_insert, args=(True,),
                  help=f"Insert one layer of the chosen kind after layer {b}")
        st.button("Delete", key="btn_delete", on_click=on_delete, help=f"Delete {what}", disabled=n <= (b - a + 1))
    with st.container(horizontal=True, gap="small"):
        st.button("◀ Move", key="btn_move_left", on_click=on_shift, args=(-1,), help=f"Move {what} one place up",
                  disabled=a == 0)
        st.button("Move ▶", key="btn_move_right", on_click=on_shift, args=(1,), help=f"Move {what} one place down",
                  disabled=b >= n - 1)
        _render_history_buttons(lay)


def _render_history_buttons(lay: Layout) -> None:
    hist = state.history()
    st.button("↶ Undo", key="btn_undo", on_click=on_undo, disabled=not hist.can_undo,
              help=f"Undo: {hist.notes[-1]}" if hist.notes else "Nothing to undo")
    st.button("↷ Redo", key="btn_redo", on_click=on_redo, disabled=not hist.can_redo,
              help=f"Redo: {hist.future_notes[-1]}" if hist.future_notes else "Nothing to redo")
    st.download_button("Download YAML", data=dump_yaml(lay), file_name=f"{lay.name}.yaml",
                       mime="application/x-yaml", key="download_yaml", icon=":material/download:")


def _render_sizes(lay: Layout) -> None:
    with st.expander("Sizes: widths and heads", expanded=False):
        with st.form("sizes_form", border=False):
            c = st.columns(3)
            c[0].text_input("Name", key="sz.name", help="lower case letters, digits, '.', '_' and '-'")
            c[1].number_input("Hidden size", min_value=HIDDEN_RANGE[0], max_value=HIDDEN_RANGE[1], step=64,
                              key="sz.hidden_size")
            c[2].number_input("Vocabulary", min_value=VOCAB_RANGE[0], max_value=VOCAB_RANGE[1], step=1,
                              key="sz.vocab_size")
            for block in used_blocks(lay):
                st.markdown(f"**{BLOCK_TITLES[block]}**")
                fields = _size_fields(lay, block)
                extra = 1 if block in ACTIVATION_BLOCKS else 0
                cols = st.columns(max(3, len(fields) + extra))
                for col, (name, label, minimum, maximum) in zip(cols, fields):
                    col.number_input(label, min_value=minimum, max_value=maximum, step=1, key=f"sz.{block}.{name}")
                if extra:
                    cols[len(fields)].selectbox("activation", ACTIVATIONS, key=f"sz.{block}.activation")
            st.form_submit_button("Apply sizes", on_click=on_apply_sizes, type="primary")


def _render_rules(lay: Layout, violations: list[Violation], rules_error: str | None) -> None:
    st.markdown("**Rules**")
    optional = [s for s in rule_sets() if s not in ALWAYS_ON]
    options = sorted(set(optional) | set(st.session_state.get("rule_sets") or ()))
    st.multiselect("Rule sets", options, key="rule_sets", on_change=on_rule_sets,
                   help=f"{' and '.join(ALWAYS_ON)} rules are always on; saved in the layout's 'rules:' list")
    if rules_error:
        st.error(f"The layout's rules list is not valid: {rules_error}. Showing the always-on rules only.")
    n = {s: sum(v.severity == s for v in violations) for s in SEVERITY_ORDER}
    fixable = sum(v.fix is not None and v.severity != "info" for v in violations)
    if not violations:
        st.success("No rule violations.")
        return
    summary = " · ".join(f"{k} {word}{'' if k == 1 else 's'}" for word, k in
                         (("error", n["error"]), ("warning", n["warning"]), ("note", n["info"])) if k)
    if fixable:
        c1, c2 = st.columns([3, 2])
        c1.markdown(summary)
        c2.button("Fix all", key="btn_fix_all", on_click=on_fix_all, width="stretch",
                  help="Apply the fixes one at a time, errors first, re-checking after each")
    else:
        st.markdown(summary)
    with st.container(height=560 if len(violations) > 5 else "content", border=False):
        for i, v in enumerate(violations):
            _render_violation(i, v)


def _render_violation(i: int, v: Violation) -> None:
    where = f"layer {v.layer}" if v.layer is not None else "whole layout"
    with st.container(border=True, key=f"violation_{i}"):
        st.markdown(f"{SEVERITY_BADGE[v.severity]} **{v.rule}** · {where}  \n{md(v.message)}")
        st.caption(md(v.rationale))
        if v.fix is not None:
            label = f"Fix {v.rule}" + (f" at layer {v.layer}" if v.layer is not None else "")
            st.button(label, key=f"fix_{i}_{v.rule}_{v.layer}", on_click=on_fix, args=(v.rule, v.layer, v.message),
                      help=v.fix.description)
