"""Shared plumbing for CLI commands: JSON output, clear errors, exit codes (0 ok, 1 violations, 2 bad input)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from designer.layout import Layout, LayoutError, load_layout

# 0 ok, 1 rule violations (or a failed check), 2 bad input, 3 an internal error (a bug: please report it)
EXIT_OK, EXIT_VIOLATIONS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
REPORT_URL = "the designer issue tracker"


class UsageError(Exception):
    """A bad option value; reported as one line on stderr with exit code 2."""


class _Output:
    """How errors are reported for the command being run: set once by `designer.cli.main`."""
    json = False


def set_json_errors(enabled: bool) -> None:
    _Output.json = enabled


def error_document(message: str, *, file: str | None = None, key: str | None = None,
                   layer: int | None = None) -> dict[str, Any]:
    """The one JSON document a `--json` command prints on stdout when it fails."""
    return {"error": {"message": message, "file": file, "key": key, "layer": layer}}


def fail(message: str, code: int = EXIT_BAD_INPUT, *, file: str | None = None, key: str | None = None,
         layer: int | None = None) -> NoReturn:
    """Report a bad input (or an internal error) as one line on stderr and, with --json, as one JSON error
    document on stdout; then exit with `code`."""
    print(f"designer: error: {message}", file=sys.stderr)
    if _Output.json:
        print(json.dumps(error_document(message, file=file, key=key, layer=layer), indent=2))
    raise SystemExit(code)


def fail_layout(e: LayoutError) -> NoReturn:
    """A LayoutError as a bad-input failure, its file, key and layer kept for the JSON document."""
    fail(str(e), file=e.source, key=e.key, layer=e.layer)


def emit_json(obj: Any) -> None:
    """One JSON document on stdout; NaN and infinities (a diverged run, say) become null: strict JSON."""
    print(json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False))


def _finite(obj: Any) -> Any:
    import math
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    import dataclasses
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def load_or_fail(ref: str) -> Layout:
    try:
        return load_layout(ref)
    except LayoutError as e:
        fail_layout(e)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (it already does) and never prints a traceback."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        fail(message)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def progress_bar(*, description: str = "{task.description}", remaining: bool = False, loss: bool = False,
                 transient: bool = False):
    """The commands' rich progress bar on stderr: description, bar, done/total, elapsed time; `remaining` adds
    the time left, `loss` a `loss` field each task carries. Raises ImportError where rich is missing."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    columns = [TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    columns += [TimeRemainingColumn()] if remaining else []
    columns += [TextColumn("{task.fields[loss]}")] if loss else []
    return Progress(*columns, console=Console(stderr=True), transient=transient)
