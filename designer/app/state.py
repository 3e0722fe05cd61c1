"""Session state of the app: the current layout with its undo/redo history, and messages for the next run.

Loading (preset, upload, pasted text) goes through `load_text`/`load_ref`, which never raise: a bad input
becomes a message in the page and the previous layout stays.
"""
from __future__ import annotations

import os
from typing import Any

import streamlit as st

from designer.app.edit import History, mark_edited
from designer.layout import Layout, LayoutError, layout_from_text, load_layout, preset_names

DEFAULT_LAYOUT = "nemotron-h-8b"
MAX_UPLOAD_BYTES = 1 << 20      # a layout or config.json is a few kB; anything over 1 MiB is not one

_HISTORY = "designer_history"
_FLASH = "designer_flash"


def history() -> History:
    if _HISTORY not in st.session_state:
        st.session_state[_HISTORY] = History(_initial_layout())
    return st.session_state[_HISTORY]


def layout() -> Layout:
    return history().present


def _initial_layout() -> Layout:
    ref = os.environ.get("DESIGNER_LAYOUT") or DEFAULT_LAYOUT
    try:
        return load_layout(ref)
    except LayoutError as e:
        flash("error", f"Could not open {ref!r} given on the command line: {e}. Showing {DEFAULT_LAYOUT} instead.")
    except Exception as e:   # noqa: BLE001  (the page must come up whatever the argument was)
        flash("error", f"Could not open {ref!r}: {type(e).__name__}: {e}. Showing {DEFAULT_LAYOUT} instead.")
    return load_layout(DEFAULT_LAYOUT)


def commit(new: Layout, note: str, *, edited: bool = True) -> bool:
    """Make `new` the current layout (undoable). Returns False when nothing changed. An edit (not a load:
    `edited=False`) is renamed and sourced as one (`edit.mark_edited`: "nemotron-h-8b-edited")."""
    return history().push(mark_edited(new, history().present) if edited else new, note)


# --------------------------------------------------------------------------------------------------
# Messages shown once, at the top of the next run


def flash(kind: str, message: str) -> None:
    """kind: error | warning | success | info."""
    st.session_state.setdefault(_FLASH, []).append((kind, message))


def pop_flashes() -> list[tuple[str, str]]:
    return st.session_state.pop(_FLASH, [])


def show_flashes() -> None:
    for kind, message in pop_flashes():
        getattr(st, kind, st.info)(message)


# --------------------------------------------------------------------------------------------------
# Loading


def parse_upload(name: str, data: bytes) -> Layout:
    """A layout from an uploaded file's bytes: YAML layout or HF config.json. Raises LayoutError."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise LayoutError(f"is {len(data) / 1e6:.1f} MB; a layout or config.json is a few kB (limit "
                          f"{MAX_UPLOAD_BYTES // 1024} kB)", source=name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LayoutError("is not UTF-8 text; expected a YAML layout or a Hugging Face config.json",
                          source=name) from None
    return layout_from_text(text, source=name)


def _guarded(source: str, parse) -> Layout | None:
    try:
        return parse()
    except LayoutError as e:
        flash("error", f"Not loaded: {e}. The previous layout is unchanged.")
    except RecursionError:
        flash("error", f"Not loaded: {source}: nested too deeply to be a layout. The previous layout is unchanged.")
    except Exception as e:   # noqa: BLE001  (a bad upload must never show a traceback)
        flash("error", f"Not loaded: {source}: {type(e).__name__}: {e}. The previous layout is unchanged.")
    return None


def load_bytes(name: str, data: bytes) -> bool:
    new = _guarded(name, lambda: parse_upload(name, data))
    return new is not None and _loaded(new, name)


def load_text(text: str, source: str = "pasted text") -> bool:
    new = _guarded(source, lambda: parse_upload(source, text.encode("utf-8")))
    return new is not None and _loaded(new, source)


def load_ref(ref: str) -> bool:
    new = _guarded(ref, lambda: load_layout(ref))
    return new is not None and _loaded(new, ref)


def _loaded(new: Layout, source: str) -> bool:
    commit(new, f"open {source}", edited=False)
    flash("success", f"Opened {new.name} from {source}: {new.num_layers} layers.")
    return True


UPLOAD_KEY = "upload"
_UPLOAD_GENERATION = "_upload_generation"


def upload_key() -> str:
    """The file uploader's widget key. Streamlit cannot clear an uploader's file, so opening a preset or
    pasted text starts a new uploader (a new key) and the previous file's chip goes with the old one."""
    n = st.session_state.get(_UPLOAD_GENERATION, 0)
    return UPLOAD_KEY if n == 0 else f"{UPLOAD_KEY}.{n}"


def clear_upload() -> None:
    st.session_state[_UPLOAD_GENERATION] = st.session_state.get(_UPLOAD_GENERATION, 0) + 1


def presets() -> list[str]:
    return preset_names()


def ensure(key: str, value: Any, force: bool = False) -> None:
    """Set a widget's value before the widget is drawn (only when missing, or always with force)."""
    if force or key not in st.session_state:
        st.session_state[key] = value
