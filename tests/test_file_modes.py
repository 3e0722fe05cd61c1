"""Every file designer writes gets the mode a plain open() would give it (0666 less the umask), never
mkstemp's private 0600: layouts, HTML reports and every file of an export directory."""
import os
import stat

import pytest

from designer.layout import atomic_write_text, load_layout, save_layout, umask


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_umask_is_read_without_changing_it(umask_022):
    assert umask() == 0o022
    assert umask() == 0o022


def test_atomic_writes_are_0644_under_umask_022(tmp_path, umask_022):
    save_layout(load_layout("nemotron-h-8b"), tmp_path / "a.yaml")
    atomic_write_text(tmp_path / "b.txt", "x")
    assert mode(tmp_path / "a.yaml") == 0o644
    assert mode(tmp_path / "b.txt") == 0o644


def test_atomic_writes_respect_a_stricter_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "private.txt") == 0o600


def test_compare_report_is_0644(tmp_path, umask_022):
    from designer.present.report import write_report
    from designer.profile.analytic import profile, sweep
    p = [profile("nemotron-h-8b", prompt=4096, gen=64).to_dict()]
    s = [sweep("nemotron-h-8b", prompt=4096, gen=64)]
    write_report(tmp_path / "r.html", p, s)
    assert mode(tmp_path / "r.html") == 0o644


def test_every_exported_file_is_0644_or_0755(tmp_path, umask_022):
    pytest.importorskip("torch")
    from designer.export.model_export import export_layout
    out = tmp_path / "exp"
    export_layout(load_layout("nemotron-h-4b"), out)
    modes = {p.name: mode(p) for p in out.rglob("*") if p.is_file()}
    assert modes and "proxy.yaml" in modes
    assert modes.pop("megatron.sh", 0o755) == 0o755
    assert set(modes.values()) == {0o644}, modes
    assert mode(out) == 0o755
