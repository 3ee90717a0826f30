"""teacher_cache=true: one teacher pass per training image for the whole run."""
import contextlib

import pytest
import torch

from milan_lab.config import get_config
from milan_lab.data.datasets import OfflineScenes
from milan_lab.data.transforms import eval_transform
from milan_lab.jobs import teacher_cache
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
from milan_lab.jobs.pretrain import pretrain
from milan_lab.errors import ConfigError
from milan_lab.models.milan import MILAN
from tests.helpers import tiny_overrides


def test_cached_targets_are_the_teachers_outputs_for_each_index(tiny_teacher):
    data = OfflineScenes("train", 40, 32, 0, eval_transform(32, crop_ratio=1.0), cache_mb=0)
    cache = teacher_cache.TeacherCache(tiny_teacher, data, torch.device("cpu"), contextlib.nullcontext, batch_size=16)
    idx = torch.tensor([37, 0, 16, 5])
    targets, importance = cache(idx)
    assert cache.targets.shape == (40, 17, 32) and cache.importance.shape == (40, 16)
    with torch.no_grad():
        expected_t, expected_i = tiny_teacher(torch.stack([data[i][0] for i in idx.tolist()]))
    torch.testing.assert_close(targets, expected_t, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(importance, expected_i, atol=1e-6, rtol=1e-4)
    first = cache.targets
    cache(torch.tensor([1]))
    assert cache.targets is first  # filled once


def test_teacher_out_replaces_the_teacher_pass(tiny_cfg, tiny_teacher):
    torch.manual_seed(0)
    model = MILAN(tiny_cfg, tiny_teacher)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference = model.forward_train(images, generator=torch.Generator().manual_seed(3))
        given = tiny_teacher(images)

    def no_teacher(*_):
        raise AssertionError("the teacher ran although its outputs were given")
    model.teacher.forward = no_teacher
    with torch.no_grad():
        out = model.forward_train(images, generator=torch.Generator().manual_seed(3), teacher_out=given)
    assert torch.equal(out.mask, reference.mask)
    torch.testing.assert_close(out.loss, reference.loss)


def test_cached_run_learns_and_resumes_bitwise(teacher_dir, tmp_path):
    common = dict(teacher_cache="true", min_crop_scale=1, offline_size=64, epochs=2, checkpoint_every=1)
    straight = pretrain(get_config("pretrain", "milan_vit-micro-p8_offline",
                                   tiny_overrides(teacher_dir, tmp_path / "straight", **common)))
    split = tiny_overrides(teacher_dir, tmp_path / "split", **common)
    pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", split + ["max_steps=3"]))
    resumed = pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", split))
    assert straight["steps"] == resumed["steps"] == 8
    a = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "split" / "checkpoints"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    losses = [r["loss"] for r in a["history"] if "loss" in r]
    assert losses == [r["loss"] for r in b["history"] if "loss" in r]
    assert sum(losses[-2:]) < sum(losses[:2])


def test_a_cache_beyond_free_memory_is_refused_before_training(teacher_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(teacher_cache, "available_bytes", lambda device: 2**16)
    cfg = get_config("pretrain", "milan_vit-micro-p8_offline",
                     tiny_overrides(teacher_dir, tmp_path / "run", teacher_cache="true", min_crop_scale=1,
                                    offline_size=64))
    with pytest.raises(ConfigError, match=r"teacher_cache: the targets of 64 images need .* MB"):
        pretrain(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_random_crops_with_the_cache_are_refused_naming_both_options():
    with pytest.raises(ConfigError, match=r"min_crop_scale must be 1 \(got 0.5\); for random crops set teacher_cache=false"):
        get_config("pretrain", "milan_vit-tiny-p8_offline", ["min_crop_scale=0.5"])
    cfg = get_config("pretrain", "milan_vit-tiny-p8_offline", ["teacher_cache=false", "min_crop_scale=0.2"])
    assert not cfg.teacher_cache and cfg.min_crop_scale == 0.2


def test_k_fixed_views_per_scene_with_their_cached_targets(tiny_teacher):
    from milan_lab.data.transforms import pretrain_transform
    scenes = OfflineScenes("train", 12, 32, 0, None, cache_mb=0)
    views = teacher_cache.CachedViews(scenes, pretrain_transform(32, 0.3), views=3, seed=5)
    image, label, key = views[4]
    k = views.view_of(4, 0)
    assert key == k * 12 + 4 and label == scenes[4][1] and 0 <= k < 3
    assert torch.equal(image, views.view(4, k)[0])               # a view is fixed: the same crop every time
    assert not torch.equal(views.view(4, 0)[0], views.view(4, 1)[0])  # and the K views differ
    drawn = {views.view_of(i, e) for i in range(12) for e in range(4)}
    assert drawn == {0, 1, 2}                                   # epochs draw among the K views
    everything = views.all_views()
    assert len(everything) == 36 and everything[key][2] == key and torch.equal(everything[key][0], image)
    cache = teacher_cache.TeacherCache(tiny_teacher, everything, torch.device("cpu"), contextlib.nullcontext, batch_size=8)
    targets, importance = cache(torch.tensor([key]))
    with torch.no_grad():
        expected_t, expected_i = tiny_teacher(image[None])
    torch.testing.assert_close(targets, expected_t, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(importance, expected_i, atol=1e-6, rtol=1e-4)


def test_pretraining_with_k_cached_views(teacher_dir, tmp_path):
    cfg = get_config("pretrain", "milan_vit-micro-p8_offline",
                     tiny_overrides(teacher_dir, tmp_path / "k", offline_size=32, epochs=2, teacher_cache=True,
                                    cache_views=2, min_crop_scale=0.3))
    summary = pretrain(cfg)
    assert summary["steps"] == 4 and summary["final_loss"] > 0
    with pytest.raises(ConfigError, match="cache_views=2 caches K fixed crops of offline scenes"):
        get_config("pretrain", None, ["cache_views=2", "teacher_cache=false", "min_crop_scale=0.2"])
