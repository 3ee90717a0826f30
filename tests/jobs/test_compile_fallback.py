"""compile=true falls back to eager mode with one warning whenever compilation fails."""
import json
import os
import subprocess
import sys

import pytest
import torch

from milan_lab.config import get_config
from tests.helpers import ROOT, env, tiny_overrides


def test_no_cpp_compiler_runs_eagerly_after_one_warning(teacher_dir, tmp_path):
    """Without a C++ compiler, inductor used to fail inside the first step: thousands of log lines, a traceback."""
    out = tmp_path / "run"
    overrides = tiny_overrides(teacher_dir, out, offline_size=32, epochs=1, compile=True, max_steps=2)
    no_compiler = env(CXX="/nonexistent", CC="/nonexistent", PATH=os.path.dirname(sys.executable))
    res = subprocess.run([sys.executable, "-m", "milan_lab", "pretrain", "--preset", "milan_vit-micro-p8_offline",
                          *overrides], cwd=ROOT, env=no_compiler, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    warned = [line for line in res.stderr.splitlines() if "compile=true" in line]
    assert len(warned) == 1 and "running eagerly" in warned[0] and "compiler" in warned[0], res.stderr[-3000:]
    assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) < 10, res.stderr[-3000:]
    assert json.loads(res.stdout)["steps"] == 2


class _FailsWhenCalled(torch.nn.Module):
    """What torch.compile returns here: a module whose first call draws random numbers, runs part of the
    model and then fails, as an inductor error inside the first step does."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        torch.rand(7)  # the failed attempt must not shift the eager step's random numbers
        out = self.module(*args, **kwargs)
        getattr(out, "loss", out).backward()  # nor leave gradients behind
        raise RuntimeError("InductorError: C++ compile error\nline 2 of a long log")


def test_a_failure_in_the_first_compiled_step_retakes_it_eagerly(teacher_dir, tmp_path, monkeypatch):
    from milan_lab.jobs.pretrain import pretrain

    def run(name, **extra):
        cfg = get_config("pretrain", "milan_vit-micro-p8_offline",
                         tiny_overrides(teacher_dir, tmp_path / name, offline_size=32, epochs=1, **extra))
        return pretrain(cfg)

    eager = run("eager")
    monkeypatch.setattr(torch, "compile", lambda module, **kw: _FailsWhenCalled(module))
    with pytest.warns(RuntimeWarning, match=r"compile=true: compiling the model failed \(RuntimeError: InductorError: "
                                            r"C\+\+ compile error\); running eagerly") as caught:
        fallback = run("fallback", compile=True)
    assert len([w for w in caught if "compile=true" in str(w.message)]) == 1
    assert fallback["steps"] == eager["steps"] == 2
    assert fallback["final_loss"] == eager["final_loss"]  # the same step, from the same RNG state and zero gradients
