"""The training loop's contract with the jobs (milan_lab/engine/contract.py, kept by engine/trainer.py): what
``loss_fn(net, batch, ctx)`` sees, when ``evaluate(ctx)`` runs, and what a job returns (its history and its trained model)."""
import dataclasses
import json
import pickle

import pytest
import torch

from milan_lab.config import TrainerConfig, get_config
from milan_lab.engine.contract import EvalSchedule, RunResult, StepContext
from milan_lab.engine.rng import step_generator
from milan_lab.engine.trainer import Trainer
from milan_lab.errors import ConfigError
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
from tests.helpers import tiny_overrides

STEPS_PER_EPOCH = 4


class _Schedule:
    def step_update(self, step):
        pass


def toy_fit(out, epochs=3, max_steps=None, evaluate=None, eval_every="epoch", seen=None):
    """A linear model trained by the real Trainer on fixed batches; records each loss_fn call's context."""
    cfg = TrainerConfig(batch_size=4, seed=3, device="cpu", output_dir=str(out), checkpoint_every=2, log_every=1,
                        max_steps=max_steps, progress=False, logger=[])
    trainer = Trainer(cfg, "toy")
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.arange(8 * STEPS_PER_EPOCH, dtype=torch.float32).reshape(STEPS_PER_EPOCH, 4, 2) / 32

    def batches(epoch, start):
        return iter(data[start:])

    def loss_fn(net, batch, ctx):
        if seen is not None:
            seen.append((ctx.step, ctx.epoch, ctx.rank, ctx.world_size, torch.rand(2, generator=ctx.generator)))
        return net(batch).pow(2).mean()

    history = trainer.fit(model, optimizer, _Schedule(), batches, STEPS_PER_EPOCH, loss_fn, evaluate,
                          epochs=epochs, eval_every=eval_every)
    return trainer.finish({"steps": history[-1]["step"]}, model, history=history)


def test_loss_fn_sees_each_step_in_order_with_its_own_generator_also_after_a_resume(tmp_path):
    seen = []
    toy_fit(tmp_path / "run", max_steps=6, seen=seen)  # stops in epoch 1; checkpoint at step 6
    toy_fit(tmp_path / "run", seen=seen)               # resumes there, to the end (12 steps)
    assert [s[:4] for s in seen] == [(step, step // STEPS_PER_EPOCH, 0, 1) for step in range(12)]
    for step, *_, drawn in seen:  # from (seed, step, rank) alone: the resumed steps draw what an unbroken run does
        assert torch.equal(drawn, torch.rand(2, generator=step_generator(3, step, 0, torch.device("cpu"))))
    assert not torch.equal(seen[0][4], seen[1][4])
    with pytest.raises(dataclasses.FrozenInstanceError):
        StepContext(0, 0, 0, 1, None).step = 1


def masks_drawn(out, accum_steps):
    """The random sampler's masks [n, 16] that loss_fn draws from ctx.generator, per micro-batch, over 2 steps
    of 8 images."""
    from milan_lab.models.masking import sample_mask
    cfg = TrainerConfig(batch_size=8, accum_steps=accum_steps, seed=3, device="cpu", output_dir=str(out),
                        max_steps=2, progress=False, logger=[])
    trainer, model, drawn = Trainer(cfg, "toy"), torch.nn.Linear(2, 1), []

    def loss_fn(net, batch, ctx):
        drawn.append((ctx.step, sample_mask("random", 0.75, len(batch), 16, generator=ctx.generator).mask))
        return net(batch).pow(2).mean()

    trainer.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), _Schedule(), lambda epoch, start: iter(
        torch.rand(2, 8, 2)[start:]), 2, loss_fn, epochs=1)
    return drawn


def test_accumulated_micro_batches_draw_masks_of_their_own_from_the_steps_generator(tmp_path):
    drawn = masks_drawn(tmp_path / "accum", accum_steps=2)
    assert [step for step, _ in drawn] == [0, 0, 1, 1]
    for (_, first), (_, second) in (drawn[0:2], drawn[2:4]):  # image j of one micro-batch and of the other
        assert first.shape == second.shape == (4, 16)
        assert all(not torch.equal(a, b) for a, b in zip(first, second))
    whole = masks_drawn(tmp_path / "whole", accum_steps=1)  # the micro-batches draw in turn from the one generator
    assert torch.equal(whole[0][1], torch.cat([drawn[0][1], drawn[1][1]]))


@pytest.mark.parametrize("eval_every, max_steps, due", [
    ("epoch", None, [4, 8, 12]),
    ("epoch", 6, [4, 6]),              # and at the last step, where max_steps stops the run
    (5, None, [5, 10, 12]),
    (EvalSchedule(epochs=2), None, [8, 12]),
    (0, None, []),                     # never, not even at the end
])
def test_evaluate_runs_exactly_when_due_and_at_the_last_step(tmp_path, eval_every, max_steps, due):
    calls = []

    def evaluate(ctx):
        calls.append((ctx.step, ctx.epoch, ctx.last))
        return {"score": float(ctx.step)}

    result = toy_fit(tmp_path / "run", max_steps=max_steps, evaluate=evaluate, eval_every=eval_every)
    last = max_steps or 12
    assert calls == [(s, s / STEPS_PER_EPOCH, s == last) for s in due]
    assert [r["step"] for r in result.history if "score" in r] == due  # each returned row is logged


def test_evaluate_is_handed_the_unwrapped_model_and_runs_on_rank_0_alone(tmp_path):
    models = []
    result = toy_fit(tmp_path / "run", max_steps=4, evaluate=lambda ctx: models.append(ctx.model))
    assert models == [result.model] and type(result.model) is torch.nn.Linear  # the job's model, no wrapper

    cfg = TrainerConfig(batch_size=4, device="cpu", output_dir=str(tmp_path / "other"), progress=False, logger=[])
    other_rank, model, calls = Trainer(cfg, "toy"), torch.nn.Linear(2, 1), []
    other_rank.main = False  # what every rank but 0 is
    other_rank.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), _Schedule(), lambda e, s: iter(torch.ones(2, 4, 2)),
                   2, lambda net, batch, ctx: net(batch).mean(), calls.append, epochs=1, eval_every=1)
    assert calls == []


def test_bad_schedules_are_refused_naming_the_option():
    for bad in ("epochs", -1, 2.5, True):
        with pytest.raises(ConfigError, match="eval_every"):
            EvalSchedule.parse(bad)
    assert EvalSchedule.parse("epoch") == EvalSchedule(epochs=1) and EvalSchedule.parse(7) == EvalSchedule(steps=7)
    for bad in ("soon", "0", "-2"):  # the classifier jobs' option, refused by the config before any work
        with pytest.raises(ConfigError, match="eval_every"):
            get_config("finetune", "milan_vit-micro-p8_offline", [f"eval_every={bad}"])
    assert get_config("linear", "milan_vit-micro-p8_offline", ["eval_every=50"]).eval_every == 50


def test_a_run_result_is_its_summary_with_the_history_and_model_beside_it(tmp_path):
    result = toy_fit(tmp_path / "run", max_steps=3)
    assert isinstance(result, RunResult) and json.loads(json.dumps(result)) == {"steps": 3} == result.summary
    assert [r["step"] for r in result.history] == [1, 2, 3]
    state = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))["model"]
    assert all(torch.equal(v, state[k]) for k, v in result.model.state_dict().items())
    assert pickle.loads(pickle.dumps(result)) == {"steps": 3}  # pickled (submitit) without the model


# Losses of this tiny run as the loop computed them before loss_fn took a StepContext (the mask noise then came
# from the same (seed, step, rank) seeding, done in the job): the numbers did not move.
PRETRAIN_LOSSES = [1.9050631523132324, 1.9162274599075317, 1.8827608823776245]


def test_pretraining_returns_its_trained_model_and_the_losses_of_before(teacher_dir, tmp_path):
    from milan_lab.jobs.pretrain import pretrain
    cfg = get_config("pretrain", "milan_vit-micro-p8_offline", tiny_overrides(teacher_dir, tmp_path / "p", max_steps=3))
    result = pretrain(cfg)
    assert [r["loss"] for r in result.history] == pytest.approx(PRETRAIN_LOSSES, rel=1e-5)
    saved = load_checkpoint(latest_checkpoint(tmp_path / "p" / "checkpoints"))
    assert saved["step"] == 3 and result["checkpoint"].endswith("step_00000003.pt")
    weights = result.model.student_state_dict()
    assert weights.keys() == saved["model"].keys()
    assert all(torch.equal(v, saved["model"][k]) for k, v in weights.items())
    assert result.history == json.loads((tmp_path / "p" / "metrics.json").read_text())["history"]


def test_finetuning_returns_its_trained_classifier_and_a_seed_gives_the_same_run_whatever_ran_before(tmp_path):
    """Mixup and RandAugment draw from numpy's and Python's global generators: a fresh run seeds them too."""
    import random

    import numpy as np

    from milan_lab.jobs.finetune import finetune
    runs = []
    for name in ("a", "b"):
        np.random.rand(), random.random()  # whatever ran before in the process
        runs.append(finetune(get_config("finetune", "milan_vit-micro-p8_offline", [
            "image_size=32", "patch_size=8", "embed_dim=48", "depth=1", "num_heads=3", "offline_size=32",
            "eval_size=16", "batch_size=16", "epochs=2", "warmup_epochs=0.5", "log_every=1", "progress=false",
            "checkpoint_every=100", "max_steps=3", f"output_dir={tmp_path / name}"])))
    a, b = runs
    assert [r["step"] for r in a.history if "top1" in r] == [2, 3]  # eval_every=epoch, and the last step
    assert [r.get("loss") for r in a.history] == [r.get("loss") for r in b.history]
    saved = load_checkpoint(latest_checkpoint(tmp_path / "a" / "checkpoints"))["model"]
    assert all(torch.equal(v, saved[k]) for k, v in a.model.state_dict().items())


# The teacher's losses as the loop computed them before loss_fn took a StepContext (batches from (seed, step)).
TEACHER_LOSSES = [2.9736328125, 3.1160659790039062]


def test_teacher_training_returns_its_folder_with_the_history_and_the_trained_model(tmp_path):
    from safetensors.torch import load_file

    from milan_lab.config import TeacherTrainConfig
    from milan_lab.jobs.teacher import train_teacher
    folder = train_teacher(TeacherTrainConfig(steps=2, batch_size=16, warmup_steps=1, log_every=1,
                                              output_dir=str(tmp_path / "t")), progress=False)
    assert folder == tmp_path / "t" / "export" and (folder / "open_clip_config.json").is_file()  # a Path as before
    assert [r["loss"] for r in folder.history] == pytest.approx(TEACHER_LOSSES, rel=1e-5)
    assert folder.summary["steps"] == 2
    exported = load_file(folder / "open_clip_model.safetensors")  # fp16 on disk
    assert all(torch.equal(v.half() if v.is_floating_point() else v, exported[k])
               for k, v in folder.model.state_dict().items())
