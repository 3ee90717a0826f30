"""milan-lab submit: submitit's local executor runs a 2-task DDP pretraining on CPU, SIGUSR2 (what SLURM sends
before a time limit or at a preemption) interrupts it, submitit requeues it, and it finishes with the weights
of an uninterrupted run, bit for bit."""
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from milan_lab import cli
from milan_lab.config import get_config
from milan_lab.errors import ConfigError
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
from milan_lab.tools.submit import ClusterOptions, TrainingTask, parse_time, submit
from tests.helpers import ROOT, tiny_overrides


def tiny(teacher_dir, out):
    # 3 epochs of 4 steps, a checkpoint every 2 steps; top-k masking (no masking noise to depend on the rank count)
    return get_config("pretrain", "milan_vit-micro-p8_offline",
                      tiny_overrides(teacher_dir, out, offline_size=64, epochs=3, checkpoint_every=2, sampler="topk",
                                     keep_checkpoints=0))


def task_pids(controller_pid: int) -> list[int]:
    """The task processes submitit's local controller started (its children)."""
    path = Path(f"/proc/{controller_pid}/task/{controller_pid}/children")
    return [int(p) for p in path.read_text().split()] if path.is_file() else []


def test_interrupted_job_requeues_and_resumes_bit_for_bit(teacher_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    opts = ClusterOptions(cluster="local", gpus_per_node=0, tasks_per_node=2, time="10", signal_delay_s=30)
    interrupted = submit("pretrain", tiny(teacher_dir, tmp_path / "interrupted"), opts)
    straight = submit("pretrain", tiny(teacher_dir, tmp_path / "straight"), opts)
    ckpts = tmp_path / "interrupted" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not interrupted.done():
        if latest_checkpoint(ckpts) is not None:
            break
        time.sleep(0.05)
    tasks = task_pids(interrupted._process.pid)
    assert len(tasks) == 2, interrupted.stderr()
    for pid in tasks:  # as SLURM does, to every task: rank 0 requeues the job, the others stop with it
        os.kill(pid, signal.SIGUSR2)
    before = {p.name: p.stat().st_ino for p in ckpts.glob("step_*.pt")}  # what the first allocation wrote
    summary = interrupted.results()[0]
    assert straight.results()[0]["steps"] == summary["steps"] == 12
    assert "Requeued job" in interrupted.stderr()
    after = {p.name: p.stat().st_ino for p in ckpts.glob("step_*.pt")}
    assert max(before) < "step_00000012.pt" and len(after) == 6  # interrupted before the end, finished after
    assert all(after[name] == ino for name, ino in before.items())  # resumed: nothing before the interruption redone
    a = load_checkpoint(latest_checkpoint(ckpts))
    b = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    assert a["step"] == b["step"] == 12 and len(a["rng"]) == 2
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    rows = (tmp_path / "interrupted" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 12  # no row twice
    assert (tmp_path / "interrupted" / "submitit" / f"{interrupted.job_id}_0_log.err").is_file()  # beside the run


def test_checkpoint_requeues_the_same_job_resuming(tmp_path):
    cfg = get_config("pretrain", None, [f"output_dir={tmp_path}", "resume=false"])
    delayed = TrainingTask("pretrain", cfg).checkpoint()
    assert isinstance(delayed.function, TrainingTask) and delayed.function.job == "pretrain"
    assert delayed.function.cfg.resume is True and delayed.function.cfg.output_dir == str(tmp_path)


def test_slurm_time_formats():
    assert parse_time("72:00:00") == 72 * 60 and parse_time("90") == 90 and parse_time("1-12") == 36 * 60
    assert parse_time("2:30") == 3 and parse_time("1-00:30:00") == 24 * 60 + 30
    with pytest.raises(ConfigError, match="--time"):
        parse_time("three days")


def test_refused_before_submission(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    out = str(tmp_path / "run")
    assert cli.main(["submit", "--nodes", "2", "--gpus-per-node", "8", "pretrain", f"output_dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sbatch" in err[0] and "--cluster local" in err[0]
    assert cli.main(["submit", "--nodes", "2", "--gpus-per-node", "3", "pretrain", "batch_size=64",
                     f"output_dir={out}"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert cli.main(["submit", "--time", "soon", "pretrain", f"output_dir={out}"]) == 2
    assert "--time" in capsys.readouterr().err
    assert cli.main(["submit", "pretrain", "mask_ratio=2"]) == 2
    assert "mask_ratio" in capsys.readouterr().err
    # the job's own options after its name, as `milan-lab pretrain` takes them
    assert cli.main(["submit", "--cluster", "local", "pretrain", "--preset", "milan_vit-micro-p8_offline",
                     "--config", str(tmp_path / "none.yaml"), f"output_dir={out}"]) == 2
    assert "none.yaml" in capsys.readouterr().err
    assert not Path(out).exists()


def test_an_output_dir_that_cannot_be_made_is_refused_before_submission(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert cli.main(["submit", "--cluster", "local", "pretrain", "--preset", "milan_vit-micro-p8_offline",
                     f"output_dir={blocker / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output_dir" in err[0] and "a_file" in err[0]
    assert not (tmp_path / "a_file.d").exists() and blocker.read_text() == "x"
