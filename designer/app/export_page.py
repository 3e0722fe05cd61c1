"""Export page: `designer export` of the current layout into a temporary directory, offered as a zip."""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from designer.app import state
from designer.app.editor import violations_of

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
        state.flash("error", f"Not exported: {e}. Fix them on the Editor page, or tick 'Export even with rule "
                    "errors'.")
        return
    except (ExportError, OSError) as e:
        state.flash("error", f"Export failed: {e}")
        return
    except Exception as e:  # noqa: BLE001  (never a traceback in the page)
        state.flash("error", f"Export failed: {type(e).__name__}: {e}")
        return
    st.session_state[_RESULT] = {"revision": hist.revision, "name": lay.name, "zip": data, **info}
    state.flash("success", f"Exported {lay.name}: {len(info['files'])} files, {info['params']:,} parameters.")


def render() -> None:
    lay = state.layout()
    st.markdown(f"**Export {lay.name}**: writes {WHAT}. The same as `designer export {lay.name}`.")
    errors = [v for v in violations_of(lay)[0] if v.severity == "error"]
    if errors:
        st.warning(f"{len(errors)} rule error(s): " + "; ".join(f"{v.rule} (layer {v.layer})"
                                                               if v.layer is not None else v.rule for v in errors[:6])
                   + ". The exporter refuses them unless you allow it below; the README lists them.")
    else:
        st.success("No rule errors: ready to export.")
    st.checkbox("Export even with rule errors", key="ex.allow", disabled=not errors)
    if st.button("Export", key="btn_export", type="primary",
                 help="Runs the exporter into a temporary folder and zips it (a few seconds the first time: "
                      "it counts parameters with PyTorch)"):
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
