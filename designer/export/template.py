"""The one way templates are found and loaded. The files in designer/export/templates/ are standalone scripts
(model.py, train_proxy.py, proxy_tasks.py): an export copies them verbatim, and designer imports them as
modules of this package to use their classes (ModelArgs, the proxy trainer) in-process.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

TEMPLATES = Path(__file__).resolve().parent / "templates"


def template_path(name: str) -> Path:
    """designer/export/templates/NAME (e.g. "model.py")."""
    path = TEMPLATES / name
    assert path.is_file(), f"no template {name} in {TEMPLATES}"
    return path


def template_text(name: str) -> str:
    return template_path(name).read_text()


def load_template(name: str) -> ModuleType:
    """A template as a module, e.g. load_template("model.py"); torch is imported by the ones that need it."""
    return importlib.import_module(f"designer.export.templates.{template_path(name).stem}")
