"""`designer app [--port N] [LAYOUT]`: start the Streamlit app (headless, on 127.0.0.1)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from designer.layout import REPO_ROOT


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", nargs="?", default="nemotron-h-8b", help="layout to open (default nemotron-h-8b)")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--json", action="store_true", help="print the URL as JSON before starting")


def run(args: argparse.Namespace) -> int:
    app = Path(REPO_ROOT) / "app.py"
    if args.json:
        import json
        print(json.dumps({"url": f"http://{args.address}:{args.port}", "layout": args.layout}))
    os.environ["DESIGNER_LAYOUT"] = args.layout
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.address", args.address, "--server.port", str(args.port), "--browser.gatherUsageStats", "false"]
    os.execv(sys.executable, cmd)
    return 0
