"""The `designer` command. Each subcommand is a module of designer/commands/ with `build_parser(parser)` and
`run(args) -> int`; the table below imports it only when it is used (so `designer validate` never imports
torch). A new command is one line in COMMANDS.
"""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Callable

from designer.cliutil import (EXIT_INTERNAL, REPORT_URL, ArgumentParser, LayoutError, UsageError, fail, fail_layout,
                              set_json_errors)


def _validate() -> ModuleType:
    from designer.commands import validate
    return validate


def _fix() -> ModuleType:
    from designer.commands import fix
    return fix


def _show() -> ModuleType:
    from designer.commands import show
    return show


def _presets() -> ModuleType:
    from designer.commands import presets
    return presets


def _import() -> ModuleType:
    from designer.commands import import_hf
    return import_hf


def _profile() -> ModuleType:
    from designer.commands import profile
    return profile


def _compare() -> ModuleType:
    from designer.commands import compare
    return compare


def _export() -> ModuleType:
    from designer.commands import export
    return export


def _proxy() -> ModuleType:
    from designer.commands import proxy
    return proxy


def _search() -> ModuleType:
    from designer.commands import search
    return search


def _app() -> ModuleType:
    from designer.commands import app
    return app


def _measure() -> ModuleType:
    from designer.commands import measure
    return measure


def _calibrate() -> ModuleType:
    from designer.commands import calibrate
    return calibrate


def _importance() -> ModuleType:
    from designer.commands import importance
    return importance


def _distill() -> ModuleType:
    from designer.commands import distill
    return distill


def _minipuzzle() -> ModuleType:
    from designer.commands import minipuzzle
    return minipuzzle


# name -> (the command's module, imported on use; one-line help)
COMMANDS: dict[str, tuple[Callable[[], ModuleType], str]] = {
    "validate": (_validate, "check a layout against its rule sets"),
    "fix": (_fix, "apply the minimal fixes and write a new layout"),
    "show": (_show, "draw a layout's pattern with colours and counts"),
    "presets": (_presets, "list the published presets"),
    "import": (_import, "read a Hugging Face config.json into a layout YAML"),
    "profile": (_profile, "parameters, FLOPs, memory, latency and throughput of a layout"),
    "compare": (_compare, "several layouts side by side (table, JSON, HTML report)"),
    "export": (_export, "write a runnable PyTorch model, HF/Megatron configs and proxy jobs"),
    "proxy": (_proxy, "train each layout's proxy on synthetic tasks and rank them"),
    "search": (_search, "Pareto front of layouts derived from a base under rules and budgets"),
    "measure": (_measure, "the exported model's FLOPs, cache bytes and timings beside the predictions"),
    "calibrate": (_calibrate, "micro-benchmark a GPU per kernel backend and fit the profile's efficiency terms"),
    "importance": (_importance, "per-layer and FFN-neuron importance of a trained model (MiniPuzzle stage 1)"),
    "distill": (_distill, "distil a pruned student from a trained teacher (logit KL, checkpoints, resumable)"),
    "minipuzzle": (_minipuzzle, "MiniPuzzle: importance -> selection under a memory budget -> distillation"),
    "app": (_app, "start the browser app (Streamlit)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: designer COMMAND [options]   (designer COMMAND --help for a command's options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "every command: --json (one JSON document on stdout, errors included), --debug (the traceback of an "
              "internal error)", "exit codes: 0 ok, 1 rule violations, 2 bad input, 3 internal error (a bug: please "
              "report it)"]
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
    debug = "--debug" in rest
    rest = [a for a in rest if a != "--debug"]
    set_json_errors("--json" in rest)
    try:
        module = COMMANDS[name][0]()
        parser = ArgumentParser(prog=f"designer {name}", description=COMMANDS[name][1])
        module.build_parser(parser)
        args = parser.parse_args(rest)
        return int(module.run(args) or 0)
    except LayoutError as e:
        fail_layout(e)
    except UsageError as e:
        fail(str(e))
    except BrokenPipeError:
        return 0
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as e:  # a bug, not bad input: its own exit code, one line, the traceback on request
        if debug:
            import traceback
            traceback.print_exc()
        fail(f"internal error: {e.__class__.__name__}: {e} (a bug in designer, not in your input; please "
             f"report it to {REPORT_URL} with the command line; rerun with --debug for the traceback)",
             EXIT_INTERNAL)


if __name__ == "__main__":
    raise SystemExit(main())
