"""`designer proxy` output: paths checked before training (`--report`, `--out`), finished results kept when
the report cannot be written after all, and progress on stderr (a rich bar on a terminal, plain flushed
lines otherwise). The shared output-path checks (designer/commands/_paths.py) are tested here too.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from designer.cliutil import UsageError
from designer.commands._paths import check_output_dir, check_output_file, output_file_error

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
TINY = ["--steps", "2", "--proxy-hidden", "32", "--proxy-layers", "4", "--batch-size", "4", "--seq-len", "32",
        "--device", "cpu"]


def cli(*argv):
    """designer's main() in-process: (exit code, stdout, stderr) via capsys by the caller."""
    from designer.cli import main
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


# --------------------------------------------------------------------------------------------------
# The shared checks


def test_an_output_file_may_be_new_or_an_existing_file(tmp_path):
    assert check_output_file(tmp_path / "new.html", "--report") == tmp_path / "new.html"
    assert check_output_file(tmp_path / "a" / "b" / "new.html", "--report")   # parents are created later
    (tmp_path / "old.html").write_text("x")
    assert check_output_file(tmp_path / "old.html", "--report")
    assert not list((tmp_path).glob("a"))                                  # nothing was created


@pytest.mark.parametrize("make,fragment", [
    (lambda t: t / "dir", "is a directory"),
    (lambda t: t / "file.txt" / "report.html", "is a file, not a directory"),
    (lambda t: t / "file.txt" / "deeper" / "report.html", "is a file, not a directory"),
    (lambda t: "", "expected a file name"),
])
def test_an_output_file_that_cannot_be_written_is_a_usage_error(tmp_path, make, fragment):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UsageError, match=fragment):
        check_output_file(make(tmp_path), "--report")
    assert fragment in output_file_error(make(tmp_path), "--report")


@pytest.mark.parametrize("make,fragment", [
    (lambda t: t / "file.txt", "exists and is not a directory"),
    (lambda t: t / "file.txt" / "jobs", "is a file, not a directory"),
])
def test_an_output_directory_that_cannot_be_filled_is_a_usage_error(tmp_path, make, fragment):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UsageError, match=fragment):
        check_output_dir(make(tmp_path), "--out")
    assert check_output_dir(tmp_path, "--out") and check_output_dir(tmp_path / "new" / "jobs", "--out")


@pytest.mark.skipif(ROOT_USER, reason="root may write anywhere")
def test_unwritable_output_paths_are_usage_errors(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.html").write_text("x")
    (locked / "old.html").chmod(0o444)
    locked.chmod(0o555)
    try:
        for check, path in ((check_output_file, locked / "new.html"), (check_output_file, locked / "old.html"),
                            (check_output_dir, locked), (check_output_dir, locked / "jobs")):
            with pytest.raises(UsageError, match="permission denied"):
                check(path, "--x")
    finally:
        locked.chmod(0o755)


# --------------------------------------------------------------------------------------------------
# `designer proxy`: bad paths are refused before any training


@pytest.mark.parametrize("option,make,fragment", [
    ("--report", lambda t: t, "is a directory"),
    ("--report", lambda t: t / "file.txt" / "r.html", "is a file, not a directory"),
    ("--out", lambda t: t / "file.txt", "exists and is not a directory"),
    ("--out", lambda t: t / "file.txt" / "jobs", "is a file, not a directory"),
])
def test_proxy_refuses_a_bad_output_path_before_training(tmp_path, capsys, monkeypatch, option, make, fragment):
    import designer.measure.runs as runs
    (tmp_path / "file.txt").write_text("x")

    def no_training(*a, **k):
        raise AssertionError("trained before checking the output paths")
    monkeypatch.setattr(runs, "run_job", no_training)
    extra = [] if option == "--report" else ["--report", ""]
    assert cli("proxy", "nemotron-h-8b", *TINY, option, make(tmp_path), *extra) == 2
    err = capsys.readouterr().err
    assert f"{option} " in err and fragment in err and "Traceback" not in err


@pytest.mark.slow
def test_a_report_that_fails_after_training_keeps_the_results_and_says_where(tmp_path, capsys, monkeypatch):
    import designer.commands.proxy as proxy_cmd
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(proxy_cmd, "write_proxy_report", disk_full)
    out = tmp_path / "jobs"
    code = cli("proxy", "nemotron-h-8b", *TINY, "--report", tmp_path / "r.html", "--out", out, "--json")
    captured = capsys.readouterr()
    assert code == 2
    doc = json.loads(captured.out)                                   # still one JSON document
    assert doc["report"] is None and "No space left on device" in doc["report_error"]
    saved = Path(doc["results"])
    assert saved == out / "proxy_results.json"
    assert json.loads(saved.read_text())["ranking"][0]["name"] == "nemotron-h-8b"
    assert f"the results are saved in {saved}" in captured.err and "Traceback" not in captured.err
    # stderr is not a terminal: progress came as plain lines, one per stage
    lines = [line for line in captured.err.splitlines() if line.startswith("proxy: ")]
    assert lines[0] == "proxy: [1/1] nemotron-h-8b: training 2 steps"
    assert lines[-1].startswith("proxy: [1/1] nemotron-h-8b: done in ") and "final loss" in lines[-1]


def test_results_go_to_the_temporary_directory_without_out(tmp_path, monkeypatch):
    from designer.commands.proxy import save_results
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    old = os.umask(0o022)
    try:
        path = save_results({"ranking": []}, None)
    finally:
        os.umask(old)
    assert path.parent == tmp_path and json.loads(path.read_text()) == {"ranking": []}
    assert path.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------------
# Progress


def events(reporter, name="a", steps=20):
    reporter("start", name, 0, steps, None)
    for s in range(1, steps + 1):
        reporter("step", name, s, steps, lambda: 1.5)
    reporter("done", name, steps, steps, lambda: 1.25)
    reporter.close()


def test_line_progress_prints_flushed_lines_per_stage(capsys):
    from designer.commands.proxy import LineProgress
    reporter = LineProgress(2)
    events(reporter, "a")
    events(reporter, "b")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "proxy: [1/2] a: training 20 steps"
    assert "proxy: [1/2] a: step 20/20, loss 1.5000" in lines          # the last step is always shown
    assert lines[-1].startswith("proxy: [2/2] b: done in ") and lines[-1].endswith("final loss 1.2500")
    assert len(lines) <= 2 * 13                                         # at most start, ten tenths, end


def test_bar_progress_draws_on_stderr_only(capsys):
    from designer.commands.proxy import BarProgress, make_progress
    events(BarProgress(1))
    captured = capsys.readouterr()
    assert captured.out == "" and "candidates" in captured.err
    assert make_progress(3, quiet=True) is None


def test_torchrun_output_is_split_into_progress_and_the_rest(tmp_path):
    from designer.measure.runs import _run_with_progress
    script = ("import json, sys\n"
              "print('a warning from torchrun', flush=True)\n"
              "for s in (1, 2): print(json.dumps({'step': s, 'steps': 2, 'loss': 3.0 - s}), flush=True)\n"
              "print('train_proxy.py: error: boom', file=sys.stderr)\n"
              "sys.exit(3)\n")
    seen = []
    code, lines = _run_with_progress([sys.executable, "-c", script], tmp_path,
                                     lambda step, steps, loss: seen.append((step, steps, loss())))
    assert code == 3 and seen == [(1, 2, 2.0), (2, 2, 1.0)]
    assert lines == ["a warning from torchrun", "train_proxy.py: error: boom"]


def test_the_trainer_reports_progress_through_its_callback(tmp_path):
    import torch
    from designer.layout import load_layout
    from designer.measure.proxy import load_trainer, write_proxy_files
    trainer = load_trainer()
    write_proxy_files(load_layout("nemotron-h-8b"), tmp_path, hidden=32, layers=4, copy_model=True, steps=3,
                      batch_size=2, seq_len=32, eval_batches=1, eval_batch_size=2, device="cpu")
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.train(trainer.load_config(tmp_path / "proxy.yaml"), root=tmp_path,
                      progress=lambda step, steps, loss: seen.append((step, steps, loss())))
    finally:
        torch.set_num_threads(before)
    assert [(s, n) for s, n, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(v, float) for _, _, v in seen)


@pytest.mark.slow
def test_a_torchrun_job_reports_its_steps_to_the_progress_callback(tmp_path, monkeypatch):
    from designer.layout import load_layout
    from designer.measure.proxy import write_proxy_files
    from designer.measure.runs import run_job
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    write_proxy_files(load_layout("nemotron-h-8b"), tmp_path, hidden=32, layers=4, copy_model=True, steps=3,
                      batch_size=4, seq_len=16, vocab_size=16, tasks={"mqar": {"num_kv_pairs": 2}},
                      eval_batches=1, eval_batch_size=4, device="cpu")
    seen = []
    metrics = run_job(tmp_path, nproc=2, progress=lambda step, steps, loss: seen.append((step, steps, loss())))
    assert metrics["world_size"] == 2 and len(metrics["loss"]) == 3
    assert seen and seen[-1][:2] == (3, 3) and seen[-1][2] == pytest.approx(metrics["loss"][-1])
