"""`designer export` killed with SIGKILL at every stage of writing and replacing: after the kill and a
re-run, the target is the complete old export or the complete new one, and no hidden folder is left.

The writer stops at a named point when DESIGNER_EXPORT_PAUSE=POINT:FLAGFILE is set (it touches FLAGFILE
and sleeps); the test waits for the flag and kills the process there. Both ways of replacing an export are
covered: one renameat2(RENAME_EXCHANGE) where Linux offers it, and the two renames it falls back to
(DESIGNER_EXPORT_SWAP=rename), whose kill between the renames leaves the target missing until the next run
restores it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from designer.export import model_export
from designer.export.model_export import ExportError, export_layout, recover_interrupted
from designer.layout import layout_from_dict

ROOT = Path(__file__).resolve().parent.parent
DESIGNER = ROOT / ".venv" / "bin" / "designer"

LAYOUT = dict(name="tiny-hybrid", hidden_size=64, vocab_size=128, pattern="M-M*-M-",
              mamba=dict(num_heads=8, head_dim=16, n_groups=2, state_size=16, chunk_size=8),
              attention=dict(num_heads=4, num_kv_heads=2, head_dim=16), mlp=dict(intermediate_size=96))
OLD_STEPS, NEW_STEPS = 7, 9          # the old and the new export differ in proxy.yaml's steps


def tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def designer_cmd() -> list[str]:
    return [str(DESIGNER)] if DESIGNER.exists() else [sys.executable, "-m", "designer.cli"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The complete old and new exports, written without interruption."""
    root = tmp_path_factory.mktemp("ref")
    layout = layout_from_dict(LAYOUT)
    out = {}
    for label, steps in (("old", OLD_STEPS), ("new", NEW_STEPS)):
        export_layout(layout, root / label, proxy_options={"steps": steps})
        out[label] = tree(root / label)
    assert out["old"] != out["new"]
    return out


def kill_at(point: str, target: Path, tmp: Path, swap: str) -> None:
    """Run `designer export --force` into target, SIGKILL it at `point`, and reap it."""
    layout_file = tmp / "layout.json"
    layout_file.write_text(json.dumps(LAYOUT))
    flag = tmp / f"paused-{point}"
    env = {**os.environ, model_export.PAUSE_ENV: f"{point}:{flag}", "OMP_NUM_THREADS": "1"}
    if swap == "rename":
        env[model_export.SWAP_ENV] = "rename"
    proc = subprocess.Popen(designer_cmd() + ["export", str(layout_file), "-o", str(target), "--force",
                                              "--proxy-steps", str(NEW_STEPS)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, f"export finished before {point}: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"export never reached {point}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()          # reaped: a zombie's pid still answers kill(pid, 0)
        proc.stderr.close()


def exchange_works(tmp: Path) -> bool:
    a, b = tmp / "xa", tmp / "xb"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    ok = model_export._exchange(a, b)
    assert not ok or (b / "f").read_text() == "a"
    return ok


SWAPS = [("exchange", p) for p in ("writing", "written", "swapped", "deleting")] + \
        [("rename", p) for p in ("writing", "written", "moved-aside", "swapped", "deleting")]


@pytest.mark.parametrize("swap,point", SWAPS)
def test_a_killed_forced_export_leaves_the_old_or_the_new_export_and_no_hidden_folders(
        tmp_path, references, swap, point):
    if swap == "exchange" and not exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    parent = tmp_path / "exports"
    parent.mkdir()
    target = parent / "tiny"
    layout = layout_from_dict(LAYOUT)
    export_layout(layout, target, proxy_options={"steps": OLD_STEPS})
    kill_at(point, target, tmp_path, swap)

    left = hidden(parent)
    assert left, "the kill should have left the writer's hidden folder behind"
    assert all(".tmp-" in n or ".old-" in n or ".del-" in n for n in left), left
    if point == "moved-aside":                      # between the two renames: the target is gone for now
        assert not target.exists()
    else:
        assert tree(target) in (references["old"], references["new"])

    # a re-run without --force is refused, but first it puts things right
    with pytest.raises(ExportError, match="already exists"):
        export_layout(layout, target, proxy_options={"steps": NEW_STEPS})
    assert hidden(parent) == []
    assert tree(target) in (references["old"], references["new"])
    # and a forced re-run writes the new export, again with nothing hidden left
    export_layout(layout, target, force=True, proxy_options={"steps": NEW_STEPS})
    assert tree(target) == references["new"] and hidden(parent) == []


def test_a_killed_first_export_leaves_nothing_after_the_next_run(tmp_path, references):
    parent = tmp_path / "exports"
    parent.mkdir()
    target = parent / "tiny"
    kill_at("written", target, tmp_path, "exchange")
    assert not target.exists() and len(hidden(parent)) == 1
    export_layout(layout_from_dict(LAYOUT), target, proxy_options={"steps": NEW_STEPS})
    assert tree(target) == references["new"] and hidden(parent) == []


def test_hidden_folders_of_a_live_writer_are_left_alone(tmp_path):
    target = tmp_path / "tiny"
    live = tmp_path / f".tiny.tmp-{os.getppid()}-abc"        # our parent process is alive
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
    dead = tmp_path / f".tiny.tmp-{dead_pid}-abc"
    other = tmp_path / ".tinyx.tmp-1-abc"                     # another target's folder
    for d in (live, dead, other):
        d.mkdir()
    recover_interrupted(target)
    assert live.exists() and other.exists() and not dead.exists()


def test_files_and_directories_of_an_export_get_the_umask_modes(tmp_path):
    old = os.umask(0o022)
    try:
        export_layout(layout_from_dict(LAYOUT), tmp_path / "out")
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert out.stat().st_mode & 0o777 == 0o755
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes == {n: 0o755 if n == "megatron.sh" else 0o644 for n in modes}, modes
