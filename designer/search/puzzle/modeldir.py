"""A trained model directory, loaded: its layout, the model built by its own model.py, and the trained weights.

A model directory holds
  - a layout: layout.yaml (what `designer export` writes), proxy_layout.json (a proxy job's layout) or a Hugging
    Face config.json; when several are there, the one whose model has the weights' tensor shapes is used
    (an export directory holds the full-size layout.yaml beside the proxy's proxy_layout.json);
  - model.py (the exported model template: `ModelArgs.from_dict`, `build_model(args=...)`);
  - the weights: a torch.save'd state_dict, model.pt or weights.pt, or the file proxy.yaml's `save_weights`
    names (what `python train_proxy.py --save-weights model.pt` writes), or a path given explicitly.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

from designer.layout import CONFIG_READERS, Layout, LayoutError, layout_from_dict, layout_to_dict, load_layout

LAYOUT_FILES = ("layout.yaml", "proxy_layout.json", "config.json")
WEIGHT_FILES = ("model.pt", "weights.pt")


def import_model_py(path: str | os.PathLike) -> ModuleType:
    """model.py imported by path under a name unique to the file (two directories never share a module)."""
    path = Path(path).resolve()
    name = f"_designer_model_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LayoutError("cannot import it as a Python module", source=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:   # a broken model.py is a bad input, not a bug in designer
        del sys.modules[name]
        raise LayoutError(f"cannot import it: {e.__class__.__name__}: {e}", source=str(path)) from None
    for attr in ("ModelArgs", "build_model"):
        if not hasattr(module, attr):
            del sys.modules[name]
            raise LayoutError(f"has no {attr}: not a model.py written by `designer export`", source=str(path))
    return module


def model_args(module: ModuleType | None, layout: Layout):
    """The model file's ModelArgs for `layout` (module None: the exported template's, model_export.model_args)."""
    if module is None:
        from designer.export.model_export import model_args as template_args
        return template_args(layout)
    return module.ModelArgs.from_dict(layout_to_dict(layout, full=True))


def check_device(name: str) -> None:
    """--device: cpu, cuda or cuda:N that torch can use; LayoutError otherwise (the commands report it as one
    line, exit 2)."""
    import re

    import torch
    if name == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?", name):
        raise LayoutError(f"--device: expected cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        raise LayoutError(f"--device {name}: torch sees no CUDA device")
    if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
        raise LayoutError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s)")


def read_layout(path: Path) -> Layout:
    """A layout file: JSON read as JSON first (proxy_layout.json writes 1e-05, which YAML 1.1 reads as a
    string), a Hugging Face config.json through designer's readers, else designer's YAML loader."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return load_layout(path)
    if isinstance(data, dict):
        for reader in CONFIG_READERS:
            layout = reader(data, str(path))
            if layout is not None:
                return layout
    return layout_from_dict(data, source=str(path))


def find_weights(root: Path) -> Path:
    """model.pt / weights.pt in `root`, else the file its proxy.yaml's save_weights names."""
    for name in WEIGHT_FILES:
        if (root / name).is_file():
            return root / name
    config = root / "proxy.yaml"
    if config.is_file():
        try:
            saved = json.loads(config.read_text()).get("save_weights")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            saved = None
        if isinstance(saved, str) and saved and (root / saved).is_file():
            return root / saved
    raise LayoutError(f"no weights file: expected {' or '.join(WEIGHT_FILES)} (train_proxy.py --save-weights "
                      "model.pt writes one) or --weights PATH", source=str(root))


def read_state_dict(path: Path) -> dict:
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # not a torch.save'd file, truncated, or pickled objects beyond tensors
        raise LayoutError(f"cannot read the weights: {e.__class__.__name__}: {str(e).splitlines()[0]}",
                          source=str(path)) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):   # a checkpoint {"model": ..., ...}
        state = state["model"]
    if not isinstance(state, dict) or not state:
        raise LayoutError("expected a state_dict (a mapping of parameter names to tensors)", source=str(path))
    return state


def _shapes_match(module: ModuleType, layout: Layout, state: dict) -> bool:
    import torch
    try:
        model = module.build_model(args=model_args(module, layout), device="meta")
    except (ValueError, TypeError):
        return False
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    return want == got


def load_model_dir(path: str | os.PathLike, *, weights: str | os.PathLike | None = None,
                   device: str = "cpu") -> tuple[Layout, "torch.nn.Module", ModuleType]:  # noqa: F821
    """(layout, model in eval mode on `device` with the trained weights, the directory's model.py module).
    LayoutError naming the missing or bad file for a directory that is not a trained model directory."""
    root = Path(path)
    if not root.is_dir():
        raise LayoutError("no such model directory (expected one with layout.yaml, model.py and model.pt)",
                          source=str(root))
    model_py = root / "model.py"
    if not model_py.is_file():
        raise LayoutError("no model.py in the model directory (`designer export` writes it)", source=str(root))
    layout_files = [root / f for f in LAYOUT_FILES if (root / f).is_file()]
    if not layout_files:
        raise LayoutError(f"no layout file in the model directory: expected one of {', '.join(LAYOUT_FILES)}",
                          source=str(root))
    weights_path = Path(weights) if weights is not None else find_weights(root)
    if not weights_path.is_file():
        raise LayoutError("no such weights file", source=str(weights_path))
    module = import_model_py(model_py)
    state = read_state_dict(weights_path)
    layouts = [read_layout(f) for f in layout_files]
    layout = next((lay for lay in layouts if _shapes_match(module, lay, state)), None)
    if layout is None:
        names = ", ".join(f.name for f in layout_files)
        raise LayoutError(f"the weights do not fit the model of {names} (different parameter names or shapes)",
                          source=str(weights_path))
    try:
        model = module.build_model(args=model_args(module, layout), device=device)
    except ValueError as e:
        raise LayoutError(str(e), source=str(root)) from None
    model.load_state_dict(state)
    return layout, model.eval(), module
