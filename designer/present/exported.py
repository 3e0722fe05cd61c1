"""Previews of the files `designer export` writes, made by the exporter's own functions without writing
anything (the app's Export page shows them before the download): config.json, megatron.sh, model.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from designer.layout import Layout

PREVIEW_FILES = ("config.json", "megatron.sh", "model.py")
LANGUAGES = {"config.json": "json", "megatron.sh": "bash", "model.py": "python"}


@dataclass(frozen=True)
class Preview:
    name: str
    text: str | None          # None when the exporter would not write the file
    note: str = ""            # why not, or what the file is


def preview_files(layout: Layout) -> dict[str, Preview]:
    """The exported config.json, megatron.sh and model.py of `layout`, as the exporter would write them."""
    from designer.export import megatron
    from designer.export.model_export import model_py_text
    from designer.hf import HFUnsupported, hf_config_from_layout

    out: dict[str, Preview] = {}
    try:
        cfg = hf_config_from_layout(layout)
    except HFUnsupported as e:
        out["config.json"] = Preview("config.json", None, f"not written: no transformers family expresses this "
                                                          f"layout ({e})")
    else:
        out["config.json"] = Preview("config.json", json.dumps(cfg, indent=2) + "\n",
                                     f"Hugging Face config, model_type {cfg.get('model_type')}")
    try:
        plan = megatron.suggest_parallelism(layout)
        out["megatron.sh"] = Preview("megatron.sh", megatron.megatron_script(layout, plan), plan.summary())
    except megatron.MegatronUnsupported as e:
        out["megatron.sh"] = Preview("megatron.sh", None, f"not written: {e}")
    out["model.py"] = Preview("model.py", model_py_text(),
                              "one-file PyTorch model; it reads its sizes from layout.yaml beside it")
    return out
