"""The task (pretrain / finetune / linear) is stored in every checkpoint and read back by the factory,
instead of being guessed from the weight names; files written before it was stored still load."""
import dataclasses

import pytest
import torch

from milan_lab.config import get_config
from milan_lab.errors import CheckpointError
from milan_lab.factory.models import checkpoint_task, create_model, load_model, read_checkpoint, task_of_model
from milan_lab.io.weights import read_weights, save_weights
from milan_lab.models.classifier import MILANClassifier
from milan_lab.models.milan import MILAN
from tests.helpers import MICRO



@pytest.fixture(scope="module")
def micro_cfg():
    return get_config("pretrain", MICRO).model


def _old_style(path, model, cfg) -> None:
    """A checkpoint as the trainer wrote it before the task was stored: weights and config only."""
    torch.save({"model": model.state_dict(), "config": {"model": dataclasses.asdict(cfg)}, "step": 1}, path)


@pytest.mark.parametrize("task", ["finetune", "linear"])
def test_a_classifier_job_stores_its_task_and_loads_back_through_the_factory(task, tmp_path):
    from milan_lab.jobs.finetune import finetune
    from milan_lab.jobs.linear import linear_probe
    cfg = get_config(task, MICRO, ["offline_size=16", "eval_size=8", "batch_size=8", "epochs=1", "num_workers=0",
                                   "progress=false", f"output_dir={tmp_path}"])
    (finetune if task == "finetune" else linear_probe)(cfg)
    path, state = read_checkpoint(tmp_path)
    assert state["task"] == task
    model = load_model(tmp_path)
    assert isinstance(model, MILANClassifier) and model.head_type == task


def test_the_stored_task_is_what_is_built_not_a_guess(micro_cfg, tmp_path):
    """Weights of a pretraining model stored as a fine-tuning checkpoint: the factory builds the classifier the file
    names (and refuses the weights that do not fit it); without the stored task the same file loads as pretraining."""
    model = create_model(micro_cfg, "pretrain", teacher="none")
    stored = tmp_path / "stored.pt"
    torch.save({"model": model.state_dict(), "config": {"model": dataclasses.asdict(micro_cfg)}, "task": "finetune"},
               stored)
    assert checkpoint_task(read_weights(stored)) == "finetune"
    with pytest.raises(CheckpointError, match="stored.pt"):
        load_model(stored)
    old = tmp_path / "old.pt"
    _old_style(old, model, micro_cfg)
    assert isinstance(load_model(old), MILAN)


def test_old_checkpoints_without_a_task_still_load(micro_cfg, tmp_path):
    for task, kind in (("pretrain", MILAN), ("finetune", MILANClassifier), ("linear", MILANClassifier)):
        model = create_model(micro_cfg, task, num_classes=5 if task != "pretrain" else 0, teacher="none")
        path = tmp_path / f"{task}.pt"
        _old_style(path, model, micro_cfg)
        assert "task" not in read_weights(path) and checkpoint_task(read_weights(path)) == task
        loaded = load_model(path)
        assert isinstance(loaded, kind) and task_of_model(loaded) == task
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_save_weights_stores_the_task_beside_the_config(micro_cfg, suffix, tmp_path):
    model = create_model(micro_cfg, "linear", num_classes=3)
    path = save_weights(tmp_path / f"probe{suffix}", model.state_dict(), {"model": dataclasses.asdict(micro_cfg)},
                        task="linear")
    assert read_weights(path)["task"] == "linear"
    assert load_model(path).head_type == "linear"
    with pytest.raises(CheckpointError, match=f"probe{suffix}"):  # a model of another task was asked for
        load_model(path, task="finetune")


def test_an_unknown_stored_task_is_refused_naming_the_file(micro_cfg, tmp_path):
    path = tmp_path / "odd.pt"
    model = create_model(micro_cfg, "pretrain", teacher="none")
    torch.save({"model": model.state_dict(), "config": {"model": dataclasses.asdict(micro_cfg)}, "task": "segment"}, path)
    with pytest.raises(CheckpointError, match="odd.pt.*segment"):
        load_model(path)


def test_the_explorer_keeps_its_teacher_when_it_fits_and_the_checkpoint_s_own_otherwise(tiny_cfg, tiny_teacher, tmp_path):
    from milan_lab.viz.panels import load_milan
    for size, kept in ((tiny_cfg.image_size, True), (2 * tiny_cfg.image_size, False)):
        cfg = dataclasses.replace(tiny_cfg, target="pixels", sampler="random", image_size=size)  # needs no teacher
        model = create_model(cfg, teacher="none")
        path = save_weights(tmp_path / f"{size}.safetensors", model.state_dict(), {"model": dataclasses.asdict(cfg)},
                            task="pretrain")
        # the explorer's teacher when it fits the student; otherwise the checkpoint's own (here: none)
        assert load_milan(path, tiny_teacher).teacher is (tiny_teacher if kept else None)
