"""`designer app [--port N] [--watch] [LAYOUT]`: start the Streamlit app (headless, on 127.0.0.1).

Streamlit's default file watcher follows every imported module under the app's folder; with the virtual
environment at the project root that is all of torch and plotly (thousands of watches), and the server
then burns a CPU core while any tab is open. The app is started with the watcher off, so an idle tab costs
nothing (bench/bench_app_idle.py measures it); `--watch` reruns on source edits with Streamlit's polling
watcher (its event-based watcher burns the same core even with .venv blacklisted; measured in the bench).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from designer.layout import REPO_ROOT

# Folders a watcher must never walk (used with --watch): virtual environments, caches, build output.
WATCH_BLACKLIST = (".venv", "venv", ".git", "exported", "test-artifacts", "bench", "tests", "build",
                   ".hypothesis", ".pytest_cache")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", nargs="?", default="nemotron-h-8b", help="layout to open (default nemotron-h-8b)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--watch", action="store_true",
                        help="rerun the app when designer/ source changes (off by default: an idle tab then "
                             "costs no CPU)")
    parser.add_argument("--json", action="store_true", help="print the URL as JSON before starting")


def streamlit_command(app: Path, *, address: str = "127.0.0.1", port: int = 8501, watch: bool = False) -> list[str]:
    """The `python -m streamlit run` command line `designer app` executes."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.address", address, "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    if watch:
        cmd += ["--server.fileWatcherType", "poll", "--server.runOnSave", "true",
                "--server.folderWatchBlacklist", "[" + ",".join(f"'{d}'" for d in WATCH_BLACKLIST) + "]"]
    else:
        cmd += ["--server.fileWatcherType", "none"]
    return cmd


def run(args: argparse.Namespace) -> int:
    from designer.cliutil import load_or_fail
    load_or_fail(args.layout)            # a bad layout is answered here, not by a page that fails to draw
    if not 0 < args.port < 65536:
        from designer.cliutil import fail
        fail(f"--port must be 1..65535, got {args.port}")
    app = Path(REPO_ROOT) / "app.py"
    if args.json:
        import json
        print(json.dumps({"url": f"http://{args.address}:{args.port}", "layout": args.layout}))
    os.environ["DESIGNER_LAYOUT"] = args.layout
    cmd = streamlit_command(app, address=args.address, port=args.port, watch=args.watch)
    os.execv(sys.executable, cmd)
    return 0
