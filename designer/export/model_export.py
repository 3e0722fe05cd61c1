"""The export directory writer: `export_layout(layout, out_dir)` -> layout.yaml, model.py, config.json,
megatron.sh, train_proxy.py + proxy.yaml (designer.measure.proxy), README.md.

Atomic: everything is written into a temporary directory beside the target and renamed into place at the
end, so a failed export leaves nothing behind, and an existing directory is replaced (with `force`) only
after the new one is complete. Kill-safe: the hidden folders beside the target carry the writer's pid
(`.NAME.tmp-PID-*` being written, `.NAME.old-PID-*` the replaced export, `.NAME.del-PID-*` being deleted);
the next export of NAME removes those whose process is dead, and restores a `.NAME.old-*` when a kill
between the two renames of a replacement left the target missing. On Linux the replacement is one
renameat2(RENAME_EXCHANGE), so the target never goes missing at all.

The exporter asks rather than recounts: parameters come from the profiler (designer.profile.params), rule
findings from designer.rules, the TP/PP plan from designer.export.megatron.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designer.export.template import load_template, template_path
from designer.layout import Layout, layout_to_dict, umask
from designer.profile.params import count_params
from designer.rules import check
EXPORT_ROOT = Path("exported")
# files whose presence marks a directory as an export (so --force never deletes anything else)
_EXPORT_MARKERS = ("layout.yaml", "model.py")


class ExportError(Exception):
    """The export cannot be written (target exists, bad path, ...). One line, for the CLI's exit code 2."""


class ExportRefused(ExportError):
    """The layout has rule errors and `allow_violations` was not given."""

    def __init__(self, message: str, violations: list[dict]):
        super().__init__(message)
        self.violations = violations


@dataclass
class ExportResult:
    out_dir: Path
    files: list[str]
    params: int
    family: str
    hf_family: str | None
    violations: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parallel: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "files": [str(self.out_dir / f) for f in self.files],
                "params": self.params, "family": self.family, "hf_family": self.hf_family,
                "violations": self.violations, "notes": self.notes, "parallel": self.parallel}


# --------------------------------------------------------------------------------------------------
# The model template


def model_args(layout: Layout):
    """The model template's ModelArgs for a layout (imports torch)."""
    return load_template("model.py").ModelArgs.from_dict(layout_to_dict(layout, full=True))


def layout_json(layout: Layout) -> str:
    """The normalised layout as pretty JSON: valid YAML for designer, readable by model.py with only `json`."""
    data = layout_to_dict(layout, full=True)
    if isinstance(data.get("constraints"), dict):
        # unset constraints are null in the full dict, which layout_from_dict rejects for max_params; drop them
        data["constraints"] = {k: v for k, v in data["constraints"].items() if v is not None}
    return yaml_safe_json(data) + "\n"


def _float_text(x: float) -> str:
    # PyYAML (YAML 1.1) reads 1e-05 as a string; 1.0e-05 is a float in both JSON and YAML
    text = repr(float(x))
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text


def yaml_safe_json(obj: Any, indent: int = 2, _level: int = 0) -> str:
    """json.dumps(obj, indent=indent), except that floats are written so YAML 1.1 parsers read them as floats."""
    pad, inner = " " * (indent * _level), " " * (indent * (_level + 1))
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {yaml_safe_json(v, indent, _level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(inner + yaml_safe_json(v, indent, _level + 1) for v in obj) + f"\n{pad}]"
    if isinstance(obj, float) and not isinstance(obj, bool):
        return _float_text(obj)
    return json.dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# Checks


def rule_violations(layout: Layout, rule_sets: list[str] | None = None) -> list[dict]:
    """The layout's rule findings as dicts."""
    return [v.to_dict() for v in check(layout, rule_sets)]


def _check_target(out_dir: Path, force: bool) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise ExportError(f"{out_dir}: exists and is not a directory; choose another -o")
        if not force:
            raise ExportError(f"{out_dir}: already exists; pass --force to replace it, or choose another -o")
        if any(out_dir.iterdir()) and not all((out_dir / f).exists() for f in _EXPORT_MARKERS):
            raise ExportError(f"{out_dir}: exists and is not an export directory (no {' and '.join(_EXPORT_MARKERS)})"
                              f"; refusing to replace it even with --force")
    parent = out_dir.parent
    if parent.exists() and not parent.is_dir():
        raise ExportError(f"{parent}: is not a directory")


# --------------------------------------------------------------------------------------------------
# Writing


def _write(path: Path, text: str, executable: bool = False) -> None:
    path.write_text(text)     # open(): 0666 & ~umask, like every file a user writes
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# --------------------------------------------------------------------------------------------------
# Kill safety: hidden folders named for their writer's pid, a swap that can be undone or is one rename

PAUSE_ENV = "DESIGNER_EXPORT_PAUSE"   # "POINT:FLAGFILE": at POINT, touch FLAGFILE and sleep (tests kill there)
SWAP_ENV = "DESIGNER_EXPORT_SWAP"     # "rename": use the two-rename swap even where RENAME_EXCHANGE works
PAUSE_POINTS = ("writing", "written", "moved-aside", "swapped", "deleting")


def _pause(point: str) -> None:
    """Test hook: with DESIGNER_EXPORT_PAUSE=POINT:FLAGFILE set, stop at POINT (a test SIGKILLs us there)."""
    want, _, flag = os.environ.get(PAUSE_ENV, "").partition(":")
    if want == point:
        Path(flag).write_text(str(os.getpid()))
        time.sleep(3600)


def _hidden(out_dir: Path, kind: str) -> Path:
    """A fresh, not yet existing name `.NAME.KIND-PID-xxxx` beside out_dir."""
    path = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{kind}-{os.getpid()}-", dir=out_dir.parent))
    os.rmdir(path)
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):   # no such process (a pid past the limit: none ever)
        return False
    except OSError:          # EPERM: someone else's live process
        return True
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def recover_interrupted(out_dir: str | os.PathLike) -> list[str]:
    """Undo what a killed export of out_dir left: restore the replaced export when the target is missing
    (a kill between the two renames of a replacement), then remove the hidden folders of dead writers.
    Folders of live writers (another export running now) are left alone. Returns what was done."""
    out_dir = Path(out_dir)
    parent = out_dir.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(tmp|old|del)-(\d+)-[^/]*$")
    stale: list[tuple[str, Path]] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for p in entries:
        m = pattern.match(p.name)
        if m and not _pid_alive(int(m.group(2))):
            stale.append((m.group(1), p))
    done = []
    if not (out_dir.exists() or out_dir.is_symlink()):
        olds = sorted((p for kind, p in stale if kind == "old"), key=_mtime, reverse=True)
        if olds:   # a `.old-*` folder is always a complete export: it is renamed as a whole, deleted as `.del-*`
            try:
                os.replace(olds[0], out_dir)
                done.append(f"restored {out_dir} from an interrupted export ({olds[0].name})")
                stale = [(k, p) for k, p in stale if p != olds[0]]
            except OSError:
                pass
    for _kind, p in stale:
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            done.append(f"removed {p.name}, left by an interrupted export")
    return done


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE). False where that is not available
    (another OS, an old kernel or libc, a file system without it): the caller falls back to two renames."""
    if not sys.platform.startswith("linux") or os.environ.get(SWAP_ENV) == "rename":
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


KERNEL_CHOICES = ("auto", "torch", "triton")   # model.py's KERNELS: the fast GPU path (docs/fast_path.md)
_KERNELS_LINE = 'KERNELS = "auto"'


def model_py_text(kernels: str = "auto") -> str:
    """The model template with its default kernel path set to `kernels` (auto: the template verbatim)."""
    if kernels not in KERNEL_CHOICES:
        raise ExportError(f"kernels must be one of {', '.join(KERNEL_CHOICES)}, got {kernels!r}")
    text = template_path("model.py").read_text()
    assert text.count(_KERNELS_LINE) == 1, "the model template lost its KERNELS line"
    return text.replace(_KERNELS_LINE, f'KERNELS = "{kernels}"')


def _write_contents(layout: Layout, tmp: Path, violations: list[dict], proxy_options: dict[str, Any],
                    kernels: str = "auto") -> ExportResult:
    from designer.export import megatron, readme
    from designer.hf import HFUnsupported, hf_config_from_layout
    from designer.measure.proxy import write_proxy_files

    files: list[str] = []
    notes: list[str] = []
    _write(tmp / "layout.yaml", layout_json(layout))
    files.append("layout.yaml")
    _write(tmp / "model.py", model_py_text(kernels))
    files.append("model.py")
    _pause("writing")
    if kernels != "auto":
        notes.append(f"model.py: kernels {kernels} by default (MODEL_KERNELS overrides; docs/fast_path.md)")
    args = model_args(layout)
    params = count_params(layout).total

    hf_family = None
    try:
        cfg = hf_config_from_layout(layout)
    except HFUnsupported as e:
        notes.append(f"config.json not written: no transformers family expresses this layout ({e})")
    else:
        hf_family = cfg.get("model_type")
        _write(tmp / "config.json", json.dumps(cfg, indent=2) + "\n")
        files.append("config.json")

    plan = None
    try:
        plan = megatron.suggest_parallelism(layout)
        _write(tmp / "megatron.sh", megatron.megatron_script(layout, plan), executable=True)
        files.append("megatron.sh")
    except megatron.MegatronUnsupported as e:
        plan = None
        notes.append(f"megatron.sh not written: {e}")

    before = {p.name for p in tmp.iterdir()}
    write_proxy_files(layout, tmp, **proxy_options)
    files += sorted({p.name for p in tmp.iterdir()} - before)

    result = ExportResult(out_dir=tmp, files=files, params=params, family=args.family, hf_family=hf_family,
                          violations=violations, notes=notes,
                          parallel=None if plan is None else {"tp": plan.tp, "pp": plan.pp, "ep": plan.ep,
                                                              "fits": plan.fits, "summary": plan.summary()})
    _write(tmp / "README.md", readme.render_readme(layout, result))
    result.files.append("README.md")
    return result


def export_layout(layout: Layout, out_dir: str | os.PathLike | None = None, *, force: bool = False,
                  allow_violations: bool = False, rule_sets: list[str] | None = None,
                  proxy_options: dict[str, Any] | None = None, kernels: str = "auto") -> ExportResult:
    """Write the export directory for `layout` (default exported/NAME) and return what was written.

    Raises ExportRefused when the layout has rule errors (unless allow_violations), ExportError when the
    target exists (unless force) or cannot be written. Nothing is left behind on failure."""
    out_dir = Path(out_dir) if out_dir is not None else EXPORT_ROOT / layout.name
    violations = rule_violations(layout, rule_sets)
    errors = [v for v in violations if v["severity"] == "error"]
    if errors and not allow_violations:
        listing = "; ".join(f"{v['rule']}" + (f" (layer {v['layer']})" if v.get("layer") is not None else "")
                            + f": {v['message']}" for v in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise ExportRefused(f"{layout.name}: {len(errors)} rule error(s): {listing}{more}; fix them "
                            f"(designer fix) or pass --allow-violations", violations)
    notes = recover_interrupted(out_dir)
    _check_target(out_dir, force)

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-", dir=out_dir.parent))
    except OSError as e:
        raise ExportError(f"{out_dir}: cannot create: {e.strerror or e}") from None
    old = None
    try:
        result = _write_contents(layout, tmp, violations, proxy_options or {}, kernels)
        tmp.chmod(0o777 & ~umask())      # mkdtemp makes 0700; a directory the user made would be 0755
        _pause("written")
        if not out_dir.exists():
            os.replace(tmp, out_dir)
        elif _exchange(tmp, out_dir):     # one step: out_dir is the new export, tmp holds the old one
            old = tmp
            _pause("swapped")
        else:                             # two renames; recover_interrupted undoes a kill between them
            old = _hidden(out_dir, "old")
            os.replace(out_dir, old)
            _pause("moved-aside")
            try:
                os.replace(tmp, out_dir)
            except OSError:
                os.replace(old, out_dir)
                old = None
                raise
            _pause("swapped")
    except BaseException:
        if old is not tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        trash = _hidden(out_dir, "del")   # a `.old-*` folder is only ever a complete export
        try:
            os.replace(old, trash)
        except OSError:
            trash = old
        _pause("deleting")
        shutil.rmtree(trash, ignore_errors=True)
    result.out_dir = out_dir
    result.notes[:0] = notes
    return result
