"""Output paths of the commands, checked before any work starts: a file the command will write (`-o`,
`--html`, `--report`) or a directory it will fill (`--out`). A path that is a directory where a file is
wanted, lies under a regular file, or cannot be written is a bad input (exit 2, one line naming the option
and the path), found in a millisecond rather than after minutes of training.
"""
from __future__ import annotations

import os
from pathlib import Path

from designer.cliutil import UsageError


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of `path` (itself excluded) that exists: where a missing path would be created."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path(path.absolute().anchor)


def _creatable_under(path: Path, option: str) -> None:
    """`path` does not exist: the directories above it must be directories we can create entries in."""
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise UsageError(f"{option} {path}: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write in {base} (permission denied)")


def output_file_error(path: str | os.PathLike, option: str) -> str | None:
    """Why `path` cannot be written as an output file, or None when it can (nothing is created)."""
    try:
        check_output_file(path, option)
    except UsageError as e:
        return str(e)
    return None


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """`path` as a file the command may write (created or replaced); UsageError (exit 2) naming `option`
    and the path when it is a directory, lies under a regular file, or cannot be written. Creates nothing."""
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise UsageError(f"{option}: expected a file name, got {str(path)!r}")
    if p.is_dir():
        raise UsageError(f"{option} {p}: is a directory; give a file name")
    if p.exists() or p.is_symlink():
        if not p.exists():
            raise UsageError(f"{option} {p}: is a broken symbolic link")
        if not p.is_file():
            raise UsageError(f"{option} {p}: exists and is not a regular file")
        if not os.access(p, os.W_OK) or not os.access(p.absolute().parent, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {p}: cannot be written (permission denied)")
        return p
    _creatable_under(p, option)
    return p


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """`path` as a directory the command may create or add files to; UsageError (exit 2) naming `option`
    and the path when it is a file, lies under a regular file, or cannot be written. Creates nothing."""
    p = Path(path)
    if str(path) == "":
        raise UsageError(f"{option}: expected a directory, got ''")
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"{option} {p}: exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {p}: cannot write in it (permission denied)")
        return p
    if p.is_symlink():
        raise UsageError(f"{option} {p}: is a broken symbolic link")
    _creatable_under(p, option)
    return p
