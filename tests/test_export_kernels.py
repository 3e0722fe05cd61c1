"""`designer export --kernels auto|torch|triton`: the choice is model.py's KERNELS default; the CPU path is
the torch reference whatever the choice (the fast path itself: tests/test_export_fast_path.py, on CUDA)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from designer.export.model_export import export_layout, model_py_text
from designer.export.template import template_path
from designer.layout import load_layout


def test_auto_export_is_the_template_verbatim():
    assert model_py_text("auto") == template_path("model.py").read_text()


@pytest.mark.parametrize("kernels", ["torch", "triton"])
def test_export_writes_the_kernel_choice(tmp_path, kernels):
    result = export_layout(load_layout("nemotron-h-8b"), tmp_path / "out", kernels=kernels)
    text = (tmp_path / "out" / "model.py").read_text()
    assert f'KERNELS = "{kernels}"' in text and 'KERNELS = "auto"' not in text
    assert any(f"kernels {kernels}" in n for n in result.notes)


def test_cli_kernels_flag(tmp_path, run_cli):
    out = tmp_path / "e"
    proc = run_cli("export", "llama-3.1-8b", "-o", out, "--kernels", "triton", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"]
    assert 'KERNELS = "triton"' in (out / "model.py").read_text()
    assert run_cli("export", "llama-3.1-8b", "-o", tmp_path / "f", "--kernels", "cuda").returncode == 2


def test_triton_export_runs_the_reference_on_the_cpu(tmp_path):
    export_layout(load_layout("nemotron-h-8b"), tmp_path / "out", kernels="triton")
    code = ("import model, torch; m = model.build_model(args=model.ModelArgs.from_file('layout.yaml').tiny());"
            "print(model.KERNELS, model.kernels_in_use('cpu'), tuple(m(torch.zeros(1, 5, dtype=torch.long)).shape))")
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "out", capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == ["triton", "torch"]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "out", capture_output=True, text=True,
                          env=dict(env, MODEL_KERNELS="torch"), timeout=120)
    assert proc.stdout.split()[:2] == ["torch", "torch"]


@pytest.mark.parametrize("hopper, above_3_4, above_3_7_1, tilelang, ok", [
    (True, True, False, False, False),    # the H200 with Triton 3.6: fla-core refuses the gated backward
    (True, True, True, False, True),      # Triton 3.7.1 fixed it
    (False, True, False, False, True),    # not Hopper
    (True, False, False, False, True),    # Triton before 3.4
    (True, True, False, True, True),      # tilelang takes the backward instead
])
def test_training_scan_falls_back_where_fla_backward_is_wrong(monkeypatch, hopper, above_3_4, above_3_7_1,
                                                               tilelang, ok):
    import importlib.util
    import types

    from designer.export.template import load_template
    mod = load_template("model.py")
    fla = types.ModuleType("fla")
    utils = types.ModuleType("fla.utils")
    utils.IS_NVIDIA_HOPPER, utils.TRITON_ABOVE_3_4_0, utils.TRITON_ABOVE_3_7_1 = hopper, above_3_4, above_3_7_1
    fla.utils = utils
    monkeypatch.setitem(sys.modules, "fla", fla)
    monkeypatch.setitem(sys.modules, "fla.utils", utils)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if (name == "tilelang" and tilelang) else
                        (None if name == "tilelang" else real(name, *a)))
    assert mod.fla_scan_backward_ok() is ok
