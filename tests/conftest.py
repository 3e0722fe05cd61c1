import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _triton_interpreter_wanted() -> bool:
    """No CUDA and triton >= 3.9 (3.6's interpreter fails on NumPy 2.4): the exported model's own Triton kernels
    are tested in Triton's interpreter (tests/test_export_fast_path.py)."""
    import importlib.metadata

    try:
        version = tuple(int(v) for v in importlib.metadata.version("triton").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    import torch

    return version >= (3, 9) and not torch.cuda.is_available()


if _triton_interpreter_wanted():
    # for the whole process, before anything imports triton: its language helpers (tl.sum, ...) are built as
    # interpreted or compiled functions at import, and the interpreter reads the variable again at each launch
    os.environ["TRITON_INTERPRET"] = "1"
DESIGNER = str(ROOT / ".venv" / "bin" / "designer") if (ROOT / ".venv" / "bin" / "designer").exists() else None


@pytest.fixture
def bench_script():
    """Import bench/NAME.py as a module (bench/ on sys.path while it loads, as when it runs as a script)."""
    import importlib.util

    def _load(name: str):
        bench = str(ROOT / "bench")
        sys.path.insert(0, bench)
        try:
            spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod
        finally:
            sys.path.remove(bench)
    return _load


@pytest.fixture
def run_cli():
    """Run `designer ARGS` in a subprocess; returns CompletedProcess (text)."""
    import subprocess

    def _run(*args, input=None):
        cmd = [DESIGNER] if DESIGNER else [sys.executable, "-m", "designer.cli"]
        return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, input=input,
                              cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, timeout=120)
    return _run
