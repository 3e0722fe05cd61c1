"""The `designer` command. Each subcommand lives in its own module (imported only when used, so that
`designer validate` never imports torch); the module exposes `build_parser(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import importlib
import sys

from designer.cliutil import ArgumentParser, LayoutError, UsageError, fail

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("designer.commands.validate", "check a layout against its rule sets"),
    "fix": ("designer.commands.fix", "apply the minimal fixes and write a new layout"),
    "show": ("designer.commands.show", "draw a layout's pattern with colours and counts"),
    "presets": ("designer.commands.presets", "list the published presets"),
    "import": ("designer.commands.import_hf", "read a Hugging Face config.json into a layout YAML"),
    "profile": ("designer.profile.cli", "parameters, FLOPs, memory, latency and throughput of a layout"),
    "compare": ("designer.profile.compare_cli", "several layouts side by side (table, JSON, HTML report)"),
    "export": ("designer.export.cli", "write a runnable PyTorch model, HF/Megatron configs and proxy jobs"),
    "proxy": ("designer.export.proxy_cli", "train each layout's proxy on synthetic tasks and rank them"),
    "app": ("designer.commands.app", "start the browser app (Streamlit)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: designer COMMAND [options]   (designer COMMAND --help for a command's options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from designer import __version__
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        fail(f"unknown command {name!r}" + (f" (did you mean '{close[0]}'?)" if close else "")
             + f"; commands: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    parser = ArgumentParser(prog=f"designer {name}", description=COMMANDS[name][1])
    module.build_parser(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except (LayoutError, UsageError) as e:
        fail(str(e))
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
