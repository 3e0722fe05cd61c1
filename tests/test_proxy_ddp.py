"""Proxy training under torchrun (DDP, gloo on the CPU): two processes follow the one-process loss curve.

Every rank draws the same global batch and keeps its half, and the loss is scaled so that DDP's gradient
average is the global-batch mean; so 2 processes and 1 process with the same global batch take the same
optimizer steps, up to float summation order. That difference starts at ~1e-7 and grows with training at a
rate that depends on the data (measured over this 16-step job: at most 1.1e-7 relative with one sequential
batch generator, 1.2e-5 with the per-step generators the trainer now uses; 5e-5 by step 40 and 1.5e-3 by
step 60 of longer runs), so the run is kept short and RTOL leaves a factor ~4 of margin; a real DDP error
(a wrong loss scale, different batches on the ranks) moves the curve by 1e-2 or more.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from designer.measure.proxy import load_trainer, write_proxy_files
from designer.layout import load_layout

trainer = load_trainer()

JOB = dict(tasks={"mqar": {"num_kv_pairs": 2}}, vocab_size=16, seq_len=16, steps=16, batch_size=16, lr=3e-3,
           warmup_steps=2, eval_batches=1, eval_batch_size=16, seed=0, device="cpu")
RTOL = 5e-5
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def torchrun(job_dir, *args):
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "train_proxy.py", "--quiet", *args]
    return subprocess.run(cmd, cwd=job_dir, env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture
def job(tmp_path):
    write_proxy_files(load_layout("nemotron-h-8b"), tmp_path, hidden=64, layers=4, copy_model=True, **JOB)
    return tmp_path


@pytest.fixture
def one_process(monkeypatch):
    for key in DIST_ENV:
        monkeypatch.delenv(key, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_two_processes_follow_the_one_process_loss_curve(job, one_process):
    r = torchrun(job, "--metrics", "ddp.json")
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = json.loads((job / "ddp.json").read_text())
    cfg = trainer.load_config(job / "proxy.yaml", metrics="one.json")
    one = trainer.train(cfg, root=job, quiet=True)
    assert json.loads((job / "one.json").read_text())["loss"] == one["loss"]

    assert ddp["world_size"] == 2 and one["world_size"] == 1
    assert ddp["batch_size"] == one["batch_size"] == 16 and ddp["params"] == one["params"]
    a = torch.tensor(ddp["loss"], dtype=torch.float64)
    b = torch.tensor(one["loss"], dtype=torch.float64)
    assert a.shape == b.shape == (16,)
    assert a[0] == pytest.approx(b[0].item(), rel=1e-6)                 # same weights, same first batch
    assert torch.allclose(a, b, rtol=RTOL, atol=0), " ".join(f"{v:.1e}" for v in ((a - b).abs() / b).tolist())   # per step
    assert b[-1] < b[0] - 0.3                                            # and the curve is not flat
    # evaluation: each rank scores half of the same evaluation set, the counts are summed over the ranks
    assert ddp["eval"]["mqar"]["answers"] == one["eval"]["mqar"]["answers"] == 16 * 2
    assert ddp["eval"]["mqar"]["loss"] == pytest.approx(one["eval"]["mqar"]["loss"], rel=RTOL)
    assert not (job / "metrics.json").exists()                            # only the file asked for


@pytest.mark.slow
def test_a_global_batch_that_does_not_split_over_the_processes_is_refused(job):
    r = torchrun(job, "--batch-size", "15")
    assert r.returncode != 0
    assert "train_proxy.py: error: batch_size 15 must be divisible by the number of processes 2" in r.stderr
    assert not (job / "metrics.json").exists()
