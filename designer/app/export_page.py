"""Export page: `designer export` of the current layout into a temporary directory, offered as a zip."""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from designer.app import state
from designer.app.editor import violations_of
from designer.present.exported import LANGUAGES, PREVIEW_FILES, preview_files

_RESULT = "ex.result"
WHAT = ("`layout.yaml` (the normalised layout), `model.py` (a one-file PyTorch model), `config.json` (Hugging "
        "Face), `megatron.sh` (Megatron-LM launch with a TP/PP suggestion), the proxy-training files and a "
        "`README.md` listing any rule findings")


def zip_dir(directory: Path, root: str) -> bytes:
    """The directory's files as a zip, under a top-level folder `root`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                z.write(path, f"{root}/{path.relative_to(directory)}")
    return buf.getvalue()


def export_zip(layout, *, allow_violations: bool) -> tuple[bytes, dict]:
    """Run the exporter into a temporary directory; returns (zip bytes, ExportResult.to_dict())."""
    from designer.export.model_export import export_layout
    with tempfile.TemporaryDirectory(prefix="designer-export-") as tmp:
        out = Path(tmp) / layout.name
        result = export_layout(layout, out, allow_violations=allow_violations)
        return zip_dir(out, layout.name), {"files": list(result.files), "notes": list(result.notes),
                                           "params": result.params, "parallel": result.parallel}


def on_export() -> None:
    hist = state.history()
    lay = hist.present
    allow = bool(st.session_state.get("ex.allow", False))
    st.session_state.pop(_RESULT, None)
    try:
        from designer.export.model_export import ExportError, ExportRefused
    except ImportError as e:                     # pragma: no cover  (exporter not installed)
        state.flash("error", f"The exporter is not available: {e}")
        return
    try:
        data, info = export_zip(lay, allow_violations=allow)
    except ExportRefused as e:
        state.flash("error", refusal_message(lay.name, e.violations))
        return
    except (ExportError, OSError) as e:
        state.flash("error", f"Export failed: {e}")
        return
    except Exception as e:  # noqa: BLE001  (never a traceback in the page)
        state.flash("error", f"Export failed: {type(e).__name__}: {e}")
        return
    st.session_state[_RESULT] = {"revision": hist.revision, "name": lay.name, "zip": data, **info}
    state.flash("success", f"Exported {lay.name}: {len(info['files'])} files, {info['params']:,} parameters.")


def _where(v) -> str:
    layer = v["layer"] if isinstance(v, dict) else v.layer
    rule = v["rule"] if isinstance(v, dict) else v.rule
    return f"{rule} (layer {layer})" if layer is not None else rule


def refusal_message(name: str, violations: list) -> str:
    """The page's words for a refused export (the exporter's own message advises CLI flags)."""
    errors = [v for v in violations if (v["severity"] if isinstance(v, dict) else v.severity) == "error"]
    return (f"Not exported: {name} has {len(errors)} rule error(s): {'; '.join(_where(v) for v in errors[:6])}. "
            "Fix them on the Editor page (each has a Fix button where one exists), or tick 'Export even with rule "
            "errors'.")


def export_blocked(errors: list, allowed: bool) -> str | None:
    """Why the Export button is disabled (None: it is enabled)."""
    if errors and not allowed:
        return (f"Disabled: {len(errors)} rule error(s) ({', '.join(_where(v) for v in errors[:6])}). Fix them on "
                "the Editor page, or tick 'Export even with rule errors'.")
    return None


def render() -> None:
    lay = state.layout()
    st.markdown(f"**Export {lay.name}**: writes {WHAT}.")
    errors = [v for v in violations_of(lay)[0] if v.severity == "error"]
    if errors:
        st.warning(f"{len(errors)} rule error(s): " + "; ".join(_where(v) for v in errors[:6])
                   + ". The exporter refuses them unless you allow it below; the README lists them.")
    else:
        st.success("No rule errors: ready to export.")
    st.checkbox("Export even with rule errors", key="ex.allow", disabled=not errors)
    blocked = export_blocked(errors, bool(st.session_state.get("ex.allow", False)))
    if blocked:
        st.caption(blocked)
    _render_previews(lay)
    if st.button("Export", key="btn_export", type="primary", disabled=blocked is not None,
                 help=blocked or "Runs the exporter into a temporary folder and zips it (a few seconds the first "
                                 "time: it counts parameters with PyTorch)"):
        with st.spinner(f"Exporting {lay.name} (the first export loads PyTorch)…"):
            on_export()
        state.show_flashes()
    result = st.session_state.get(_RESULT)
    if not result:
        return
    if result["revision"] != state.history().revision:
        st.info(f"The layout changed since {result['name']} was exported; export again for a current zip.")
    st.download_button(f"Download {result['name']}.zip", result["zip"], file_name=f"{result['name']}.zip",
                       mime="application/zip", key="ex_download", type="primary", icon=":material/download:")
    st.markdown("Files: " + ", ".join(f"`{f}`" for f in result["files"]))
    if result.get("parallel"):
        st.caption(f"Megatron-LM parallelism suggestion: {result['parallel'].get('summary', '')}")
    for note in result["notes"]:
        st.caption(f"Note: {note}")


def _render_previews(lay) -> None:
    """config.json, megatron.sh and model.py as the exporter would write them, before any download."""
    try:
        previews = preview_files(lay)
    except Exception as e:  # noqa: BLE001  (a preview must never break the page)
        st.info(f"No preview: {type(e).__name__}: {e}")
        return
    with st.expander("Preview: " + ", ".join(PREVIEW_FILES)):
        tabs = st.tabs(list(PREVIEW_FILES))
        for tab, name in zip(tabs, PREVIEW_FILES):
            p = previews[name]
            with tab:
                st.caption(p.note)
                if p.text is not None:
                    st.code(p.text, language=LANGUAGES[name], height=420)
