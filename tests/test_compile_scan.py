"""MODEL_COMPILE_SCAN (auto = on CUDA): training runs model.py's torch SSD scan through torch.compile (issue 13, item 4: the
proxy's SSM layers without fla-core's backward). The compiled scan must give the eager values and gradients."""
from __future__ import annotations

import os

import pytest
import torch

from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import load_layout
from designer.measure.proxy import load_trainer


def _inputs():
    gen = torch.Generator().manual_seed(1)
    b, L, h, p, n, g = 2, 96, 4, 8, 16, 2
    x = torch.randn(b, L, h, p, generator=gen).requires_grad_()
    dt = (torch.rand(b, L, h, generator=gen) * 0.5).requires_grad_()
    A = -torch.rand(h, generator=gen)
    B = torch.randn(b, L, g, n, generator=gen).requires_grad_()
    C = torch.randn(b, L, g, n, generator=gen).requires_grad_()
    return x, dt, A, B, C


@pytest.mark.slow
def test_compiled_training_scan_matches_eager_values_and_gradients(monkeypatch):
    model = load_template("model.py")
    monkeypatch.setattr(model, "_COMPILED_SCAN", None)             # compiled here, not by an earlier test
    results = {}
    for compiled in (False, True):
        monkeypatch.setattr(model, "COMPILE_SCAN", compiled)
        x, dt, A, B, C = _inputs()
        y, state = model.training_scan(x, dt, A, B, C, 32)
        (y.square().sum() + state.sum()).backward()
        results[compiled] = (y.detach(), state.detach(), x.grad, dt.grad, B.grad, C.grad)
    assert model._COMPILED_SCAN is not None                       # the compiled path did run
    for eager, compiled in zip(results[False], results[True]):
        scale = eager.abs().max()
        assert (eager - compiled).abs().max() <= 1e-4 * scale


def test_the_trainer_says_the_scan_was_compiled(monkeypatch):
    model = load_template("model.py")
    trainer = load_trainer()
    net = model.build_model(args=model_args(load_layout("nemotron-h-8b")).tiny())
    monkeypatch.setattr(model, "KERNELS", "torch")
    monkeypatch.setattr(model, "COMPILE_SCAN", True)
    assert trainer.kernels_of(net, torch.device("cpu")) == "torch (compiled scan)"
    monkeypatch.setattr(model, "COMPILE_SCAN", False)
    assert trainer.kernels_of(net, torch.device("cpu")) == "torch"
    # where fla-core's backward is refused, the Triton path trains with the (compiled) torch scan
    monkeypatch.setattr(model, "kernels_in_use", lambda device: "triton")
    monkeypatch.setattr(model, "fla_kernels", lambda: type("Fla", (), {"scan_backward": False})())
    assert trainer.kernels_of(net, torch.device("cpu")) == "triton (torch scan)"
    monkeypatch.setattr(model, "COMPILE_SCAN", True)
    assert trainer.kernels_of(net, torch.device("cpu")) == "triton (torch compiled scan)"
    # a model without Mamba-2 layers has no scan to compile
    monkeypatch.setattr(model, "kernels_in_use", lambda device: "torch")
    attention_only = model.build_model(args=model_args(load_layout("llama-3.1-8b")).tiny())
    assert trainer.kernels_of(attention_only, torch.device("cpu")) == "torch"


def test_compile_scan_setting_parses_the_environment_strictly():
    model = load_template("model.py")
    assert model.compile_scan_setting(None) == "auto" and model.compile_scan_setting(" Auto ") == "auto"
    assert all(model.compile_scan_setting(v) is True for v in ("1", "true", "ON", "yes"))
    assert all(model.compile_scan_setting(v) is False for v in ("0", "false", "off", "no"))
    for bad in ("", "2", "maybe"):
        with pytest.raises(ValueError, match="MODEL_COMPILE_SCAN must be auto, 1 or 0"):
            model.compile_scan_setting(bad)
    # the module's setting is what the environment says (unset in the test run: 'auto', so on for CUDA only)
    assert model.COMPILE_SCAN == model.compile_scan_setting(os.environ.get("MODEL_COMPILE_SCAN"))


def test_compiled_scan_is_the_default_on_cuda_only(monkeypatch):
    model = load_template("model.py")
    monkeypatch.setattr(model, "COMPILE_SCAN", model.compile_scan_setting(None))
    assert model.compile_scan_on(torch.device("cuda")) and not model.compile_scan_on(torch.device("cpu"))
    monkeypatch.setattr(model, "COMPILE_SCAN", False)                 # MODEL_COMPILE_SCAN=0
    assert not model.compile_scan_on(torch.device("cuda"))
    monkeypatch.setattr(model, "COMPILE_SCAN", True)                  # MODEL_COMPILE_SCAN=1
    assert model.compile_scan_on(torch.device("cpu"))


def test_auto_falls_back_to_the_eager_scan_when_compiling_fails(monkeypatch):
    model = load_template("model.py")

    def broken(*args):
        raise RuntimeError("no C compiler")
    monkeypatch.setattr(model, "_COMPILED_SCAN", broken)
    monkeypatch.setattr(model, "compile_scan_on", lambda device: True)   # as on CUDA
    x, dt, A, B, C = _inputs()
    monkeypatch.setattr(model, "COMPILE_SCAN", True)                  # asked for explicitly: the error shows
    with pytest.raises(RuntimeError, match="no C compiler"):
        model.training_scan(x, dt, A, B, C, 32)
    monkeypatch.setattr(model, "COMPILE_SCAN", "auto")                # the default: eager, with a warning
    with pytest.warns(UserWarning, match="training with the eager scan"):
        y, state = model.training_scan(x, dt, A, B, C, 32)
    want_y, want_state = model.ssd_chunked_scan(x, dt, A, B, C, 32)
    assert torch.equal(y, want_y) and torch.equal(state, want_state) and model.COMPILE_SCAN is False
