import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESIGNER = str(ROOT / ".venv" / "bin" / "designer") if (ROOT / ".venv" / "bin" / "designer").exists() else None


@pytest.fixture
def run_cli():
    """Run `designer ARGS` in a subprocess; returns CompletedProcess (text)."""
    import subprocess

    def _run(*args, input=None):
        cmd = [DESIGNER] if DESIGNER else [sys.executable, "-m", "designer.cli"]
        return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, input=input,
                              cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, timeout=120)
    return _run
