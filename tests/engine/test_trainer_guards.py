"""The trainer's guards (engine/trainer.py, engine/compile.py): a diverging loss stops at its step keeping the last good
checkpoint; compile=true skips a private compiler check it cannot import, and under DDP a failed first
compiled step is not retaken on one rank alone."""
import sys
import warnings

import pytest
import torch

from milan_lab.config import get_config
from milan_lab.errors import ConfigError, TrainingDiverged
from tests.helpers import MICRO, tiny_overrides


def test_a_diverging_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(teacher_dir, tmp_path):
    from milan_lab.factory.models import create_model
    from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
    from milan_lab.jobs.pretrain import pretrain
    cfg = get_config("pretrain", MICRO, tiny_overrides(teacher_dir, tmp_path / "nan"))
    model = create_model(cfg.model)
    calls = {"n": 0}
    real = model.forward_train

    def poisoned(images, **kw):
        out = real(images, **kw)
        calls["n"] += 1
        return out._replace(loss=out.loss * float("nan")) if calls["n"] >= 3 else out
    model.forward_train = poisoned
    with pytest.raises(TrainingDiverged, match=r"step 3\b.*step_00000002\.pt"):  # the step, the checkpoint kept
        pretrain(cfg, model=model)
    ckpt = latest_checkpoint(tmp_path / "nan" / "checkpoints")
    assert ckpt.name == "step_00000002.pt"
    assert all(torch.isfinite(v).all() for v in load_checkpoint(ckpt)["model"].values())


def test_compiler_check_that_cannot_be_imported_is_skipped(monkeypatch):
    from milan_lab.engine.compile import compiled
    monkeypatch.setitem(sys.modules, "torch._inductor.cpp_builder", None)  # import raises ImportError
    marker = torch.nn.Identity()
    monkeypatch.setattr(torch, "compile", lambda module, **kw: marker)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "running eagerly" warning
        assert compiled(torch.nn.Linear(2, 2), torch.device("cpu")) is marker


def test_failed_first_compiled_step_under_ddp_is_not_retaken(monkeypatch):
    from milan_lab.engine.trainer import Trainer
    t = Trainer.__new__(Trainer)  # only what _first_compiled_step reads
    t.world, t.rank = 2, 1
    compiled_net, eager_net, taken = object(), object(), []

    def step(net, model, optimizer, batch, loss_fn, step, epoch):
        taken.append(net)
        if net is compiled_net:
            raise RuntimeError("InductorError: C++ compile error\nmore")
        return torch.zeros(())

    t._step = step
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="compile=false"):
        t._first_compiled_step(compiled_net, eager_net, model, torch.optim.SGD(model.parameters(), 0.1), None, None,
                                0, 0)
    assert taken == [compiled_net]
