import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
