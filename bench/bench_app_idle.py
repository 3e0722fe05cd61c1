"""CPU the Streamlit server burns while one browser tab sits idle on the app (10 s), per start-up mode.

    .venv/bin/python bench/bench_app_idle.py [--idle-s 10] [--out bench/results/app_idle_cpu.json]

Modes: `before` is the command `designer app` ran until this fix, with Streamlit's default file watcher
(`auto`) written out so that no config file changes it; `after` is what `designer app` runs now (watcher off);
`watch` is `designer app --watch` (Streamlit's polling watcher). For each, the
server starts, headless chromium (Playwright, Debian's binary) opens the app and waits for the Editor to
draw, the page settles for 5 s, then the server's user+system CPU seconds (its process and children, from
/proc) are read over `--idle-s` seconds of nobody touching anything.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from designer.commands.app import streamlit_command  # noqa: E402
from designer.layout import atomic_write_text  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def _wait_up(url: str, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("streamlit exited early")
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("streamlit did not come up")


def measure(mode: str, idle_s: float) -> dict:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    app = ROOT / "app.py"
    if mode == "before":
        cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "auto"]
    else:
        cmd = streamlit_command(app, port=port, watch=(mode == "watch"))
    cwd = tempfile.mkdtemp(prefix="designer-idle-")   # no .streamlit/config.toml from the project applies
    env = {**os.environ, "DESIGNER_LAYOUT": "nemotron-h-8b"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.get_by_text("designer · nemotron-h-8b").first.wait_for(timeout=90_000)
            page.wait_for_function('() => !document.querySelector(\'[data-testid="stStatusWidget"]\')',
                                   timeout=90_000)
            time.sleep(5)
            c0, t0 = _cpu_s(proc.pid), time.monotonic()
            time.sleep(idle_s)
            c1, t1 = _cpu_s(proc.pid), time.monotonic()
            browser.close()
        return {"mode": mode, "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
                "idle_s": round(t1 - t0, 2), "server_cpu_s": round(c1 - c0, 3),
                "cpu_share_of_one_core": round((c1 - c0) / (t1 - t0), 3)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(cwd, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--modes", default="before,after,watch")
    ap.add_argument("--out", default=str(ROOT / "bench/results/app_idle_cpu.json"))
    a = ap.parse_args()
    import streamlit
    rows = []
    for mode in a.modes.split(","):
        row = measure(mode, a.idle_s)
        print(json.dumps(row))
        rows.append(row)
    result = {"command": "python bench/bench_app_idle.py " + " ".join(sys.argv[1:]),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
              "versions": {"streamlit": streamlit.__version__},
              "runs": rows}
    out = Path(a.out)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
