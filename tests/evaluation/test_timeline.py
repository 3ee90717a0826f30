"""A run's timeline: keep_every snapshots (encoder only, loadable, atomic), resume, and their scores."""
import dataclasses

import pytest
import torch

from milan_lab.config import get_config, model_config_from
from milan_lab.errors import CheckpointError, ConfigError
from milan_lab.factory.models import load_encoder
from milan_lab.io import timeline
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
from milan_lab.jobs.pretrain import pretrain
from tests.helpers import tiny_overrides

PRESET = "milan_vit-micro-p8_offline"


def run(teacher_dir, out, **extra):
    """8 steps (64 scenes, batch 16, 2 epochs) of a 32-px model."""
    return pretrain(get_config("pretrain", PRESET, tiny_overrides(teacher_dir, out, offline_size=64, **extra)))


def steps_of(out):
    return [s for s, _ in timeline.list_snapshots(out)]


def test_interval_keeps_about_eight_by_default():
    assert timeline.interval(-1, 12) == 2 and timeline.interval(-1, 800) == 100 and timeline.interval(-1, 3) == 1
    assert timeline.interval(5, 800) == 5 and timeline.interval(0, 800) == 0
    with pytest.raises(ConfigError, match="keep_every"):
        get_config("pretrain", PRESET, ["keep_every=-2"])
    default = get_config("pretrain", "milan_vit-tiny-p8_offline")  # 6,400 scenes / 64 x 8 epochs = 800 steps
    total = default.offline_size // default.batch_size * default.epochs
    assert len(range(timeline.interval(default.keep_every, total), total + 1, timeline.interval(default.keep_every, total))) == 8


@pytest.fixture(scope="module")
def straight(teacher_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    run(teacher_dir, out, keep_every=2, checkpoint_every=3)
    return out


def test_keep_every_keeps_small_loadable_encoder_snapshots(straight):
    assert steps_of(straight) == [2, 4, 6, 8]
    final = load_checkpoint(latest_checkpoint(straight / "checkpoints"))
    assert final["step"] == 8
    cfg = model_config_from(final["config"])
    for step, path in timeline.list_snapshots(straight):
        encoder = load_encoder(path, cfg)  # an encoder-only checkpoint with the run's config
        assert isinstance(encoder, torch.nn.Module)
    snap = load_encoder(timeline.snapshot_path(straight, 8), cfg).state_dict()
    for k, v in snap.items():  # the last snapshot is the final encoder, in half precision
        assert torch.allclose(v, final["model"][f"encoder.{k}"], rtol=1e-3, atol=1e-4), k
    assert timeline.snapshot_path(straight, 8).stat().st_size < latest_checkpoint(straight / "checkpoints").stat().st_size / 4


def test_resume_neither_duplicates_nor_loses_snapshots(teacher_dir, straight, tmp_path):
    out = tmp_path / "resumed"
    run(teacher_dir, out, keep_every=2, checkpoint_every=3, max_steps=5)  # stops at 5: checkpoints 3 and 5
    assert steps_of(out) == [2, 4, 5]  # the schedule's steps, and the step max_steps stopped at
    latest_checkpoint(out / "checkpoints").unlink()  # as if killed after step 5: resume from 3, past snapshot 4
    (out / "timeline" / ".step_000006.safetensors.123.tmp").write_bytes(b"partial")  # a killed write
    run(teacher_dir, out, keep_every=2, checkpoint_every=3)
    assert steps_of(out) == [2, 4, 6, 8] and not list((out / "timeline").glob("*.tmp"))
    for (_, a), (_, b) in zip(timeline.list_snapshots(out), timeline.list_snapshots(straight)):
        wa, wb = load_checkpoint(a), load_checkpoint(b)
        assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wb["model"]), a.name  # as an unbroken run's


def test_keep_every_zero_and_other_ranks_keep_none(tmp_path):
    from types import SimpleNamespace

    from milan_lab.evaluation.timeline import snapshots
    from milan_lab.jobs.pretrain import timeline_hook
    cfg = get_config("pretrain", PRESET, [f"output_dir={tmp_path}"])
    assert timeline_hook(dataclasses.replace(cfg, keep_every=0), SimpleNamespace(main=True), None, 800) is None
    assert timeline_hook(cfg, SimpleNamespace(main=False), None, 800) is None  # rank 0 alone writes
    assert callable(timeline_hook(cfg, SimpleNamespace(main=True), None, 800))
    with pytest.raises(CheckpointError, match="keep_every"):
        snapshots(tmp_path)


def test_timeline_metrics_and_figure(straight, tmp_path):
    from milan_lab.evaluation.timeline import format_timeline, timeline_metrics
    from milan_lab.tools.timeline import write_timeline_figure
    result = timeline_metrics(straight, knn_train=64, knn_val=32, attention_scenes=16)
    assert [r["step"] for r in result["rows"]] == [2, 4, 6, 8]
    assert [r["images_seen"] for r in result["rows"]] == [32, 64, 96, 128]
    for r in result["rows"]:
        assert 0 <= r["knn_acc"] <= 1 and r["object_ratio"] > 0 and -1 <= r["agreement"] <= 1
    assert len(format_timeline(result).splitlines()) == 5
    path = write_timeline_figure(result, tmp_path / "figs" / "timeline.png")
    assert path.stat().st_size > 10_000


def test_the_apps_timeline_reads_a_run_folders_snapshots(straight, teacher_dir):
    from types import SimpleNamespace

    from milan_lab.app_timeline import run_snapshots
    from milan_lab.data.scenes import make_scene
    from milan_lab.factory.teachers import load_teacher
    from milan_lab.viz.timeline import snapshot_attention
    assert [s for s, _ in run_snapshots(SimpleNamespace(model_source=str(straight)))] == [2, 4, 6, 8]
    assert run_snapshots(SimpleNamespace(model_source=str(timeline.snapshot_path(straight, 8)))) == []  # a file: no slider
    assert run_snapshots(SimpleNamespace(model_source=None)) == []
    cfg = model_config_from(load_checkpoint(latest_checkpoint(straight / "checkpoints"))["config"])
    image = make_scene(0, "test", 0, 256)[0]
    early, late = (snapshot_attention(load_encoder(timeline.snapshot_path(straight, s), cfg), load_teacher(str(teacher_dir), None),
                                      image) for s in (2, 8))
    assert early["map"].shape == (256, 256, 3) and early["values"].shape == (16,)
    assert -1 <= early["agreement"] <= 1 and not torch.equal(early["values"], late["values"])  # each snapshot its own


def test_timeline_command_checks_the_run_and_the_output_first(straight, tmp_path):
    from milan_lab.errors import OutputError
    from milan_lab.tools.timeline import default_out, timeline_command
    with pytest.raises(CheckpointError, match="no snapshots"):
        timeline_command(tmp_path)
    with pytest.raises(CheckpointError, match="no such run folder"):
        timeline_command(tmp_path / "missing")
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="--out"):
        timeline_command(straight, tmp_path / "taken")  # a folder where the figure goes: refused before any scoring
    assert default_out(straight) == straight / "timeline.png"


def test_the_agreement_compares_with_the_runs_own_teacher(straight, teacher_dir):
    from milan_lab.evaluation.timeline import run_teacher
    from milan_lab.factory.teachers import load_teacher
    own, tiny = run_teacher(straight), load_teacher(str(teacher_dir), None)
    assert own is not None and own.image_size == tiny.image_size
    assert all(torch.equal(a, b) for a, b in zip(own.state_dict().values(), tiny.state_dict().values()))
