"""Serving-setup widgets shared by the Profile and Compare pages (hardware, precision, parallelism, lengths).

They return the hardware name and one `Scenario` for `designer.profile.analytic.profile`/`sweep`, the same
value the `designer profile` and `designer compare` options build; the widgets start at Scenario's defaults."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import streamlit as st

from designer.app import state
from designer.profile.analytic import DEFAULT_HARDWARE
from designer.profile.hardware import hardware_names, load_hardware
from designer.profile.memory import DTYPE_BYTES, PRECISIONS
from designer.profile.scenario import PREFILL_MODES, Scenario

KV_AUTO = "auto"
PERSIST = "session"          # settings survive switching pages


@lru_cache(maxsize=64)
def hardware_label(name: str) -> str:
    try:
        hw = load_hardware(name)
    except Exception:        # noqa: BLE001  (a broken profile file still gets listed by name)
        return name
    return hw.display_name


def setup_controls(prefix: str, *, precision: str = Scenario.precision, tp: int = 1, batch: int = Scenario.batch,
                   show_batch: bool = True) -> tuple[str, Scenario]:
    """Draw the setup widgets (keys `{prefix}.hardware`, ...) and return (hardware, scenario)."""
    d = Scenario()
    names = hardware_names()
    state.ensure(f"{prefix}.hardware", DEFAULT_HARDWARE if DEFAULT_HARDWARE in names else names[0])
    state.ensure(f"{prefix}.precision", precision)
    state.ensure(f"{prefix}.tp", tp)
    state.ensure(f"{prefix}.batch", batch)
    state.ensure(f"{prefix}.prompt", d.prompt)
    state.ensure(f"{prefix}.gen", d.gen)
    state.ensure(f"{prefix}.kv_dtype", d.kv_dtype or KV_AUTO)
    state.ensure(f"{prefix}.prefill_mode", d.prefill_mode)
    state.ensure(f"{prefix}.memory_utilization", d.memory_utilization)

    cols = st.columns([2.2, 0.9, 1.25, 0.9, 1.2, 1.3] if show_batch else [2.2, 0.9, 1.25, 1.2, 1.3])
    hw = cols[0].selectbox("Hardware", names, key=f"{prefix}.hardware", format_func=hardware_label,
                           persist_state=PERSIST, help="GPU profile from profiles/hardware/ (one GPU per rank)")
    kw: dict[str, Any] = {}
    kw["precision"] = cols[1].selectbox("Precision", list(PRECISIONS), key=f"{prefix}.precision",
                                        persist_state=PERSIST, help="weight and GEMM precision")
    kw["tp"] = cols[2].number_input("Tensor parallel", min_value=1, max_value=512, step=1, key=f"{prefix}.tp",
                                    persist_state=PERSIST, help="GPUs sharing every layer (Megatron-LM TP)")
    rest = cols[3:]
    if show_batch:
        kw["batch"] = rest[0].number_input("Batch", min_value=1, max_value=1_000_000, step=1,
                                           key=f"{prefix}.batch", persist_state=PERSIST,
                                           help="concurrent sequences (requests)")
        rest = rest[1:]
    kw["prompt"] = rest[0].number_input("Prompt (tokens)", min_value=1, max_value=1 << 24, step=1024,
                                        key=f"{prefix}.prompt", persist_state=PERSIST)
    kw["gen"] = rest[1].number_input("Generated (tokens)", min_value=1, max_value=1 << 22, step=128,
                                     key=f"{prefix}.gen", persist_state=PERSIST)
    with st.expander("More serving options"):
        c = st.columns(3)
        kv = c[0].selectbox("KV cache dtype", [KV_AUTO] + list(DTYPE_BYTES), key=f"{prefix}.kv_dtype",
                            persist_state=PERSIST, help="auto = the activation dtype (bf16; fp32 for an fp32 model)")
        kw["kv_dtype"] = None if kv == KV_AUTO else kv
        kw["prefill_mode"] = c[1].selectbox("Prefill", list(PREFILL_MODES), key=f"{prefix}.prefill_mode",
                                            persist_state=PERSIST, help="parallel: whole prompt in one pass; "
                                            "chunked: 8192 tokens per pass; sequential: one token at a time")
        kw["memory_utilization"] = c[2].slider("Usable share of GPU memory", min_value=0.5, max_value=1.0,
                                               step=0.01, key=f"{prefix}.memory_utilization",
                                               persist_state=PERSIST)
    return hw, Scenario(**{k: (int(v) if isinstance(v, float) and k in ("tp", "batch", "prompt", "gen") else v)
                           for k, v in kw.items()})
