"""The offline scene kinds: one list (the config validates it, the scenes draw it), and the "mid" kind, whose main
object is clearly the largest and which random masking at a high ratio often hides whole."""
import math

import numpy as np
import pytest

from milan_lab import config as C
from milan_lab.data import scenes
from milan_lab.data.datasets import OfflineScenes
from milan_lab.errors import ConfigError


def test_one_list_of_scene_kinds_for_the_config_and_the_scenes():
    assert scenes.VARIANTS == C.SCENE_KINDS and set(scenes._KINDS) == set(C.SCENE_KINDS)
    assert C.SCENE_KINDS[:2] == ("dense", "sparse") and "mid" in C.SCENE_KINDS
    for kind in C.SCENE_KINDS:
        assert C.get_config("pretrain", "milan_vit-micro-p8_offline", {"offline_variant": kind}).offline_variant == kind
    with pytest.raises(ConfigError, match="offline_variant"):
        C.get_config("pretrain", "milan_vit-micro-p8_offline", {"offline_variant": "middle"})


def test_the_notebooks_ablation_check_takes_every_scene_kind():
    from milan_lab.tools import notebook
    spec = notebook._spec()["ablation"]["variant"]
    spec("variant", "mid")  # accepted
    with pytest.raises(ConfigError, match="variant"):
        spec("variant", "middle")


def _layouts(n, kind="mid"):
    for i in range(n):
        rng = scenes.scene_rng(0, "val", i)
        spec = scenes.random_spec(rng)
        yield spec, scenes.draw_layout(rng, spec, kind)


def test_the_main_object_is_clearly_the_largest_and_carries_the_label():
    counts = []
    for i, (spec, layout) in enumerate(_layouts(200)):
        main, others = layout.main, layout.objects[:-1]
        assert main.shape == spec.shape and scenes.SHAPES.index(main.shape) == spec.label
        assert 1 <= len(others) <= 3
        assert all(main.radius > 2 * d.radius for d in others), i
        counts.append(len(others))
        image, labels = scenes.make_labelled_scene(0, "val", i, 64, "mid")
        _, main_cov = scenes.make_scene_with_main_object(0, "val", i, 64, "mid")
        owned = np.bincount(labels.ravel(), minlength=len(scenes.SEG_CLASSES))
        assert owned[1 + spec.label] >= (main_cov >= 0.5).sum() > 0  # the label map holds the main object's pixels
        # no distractor's class covers as much as the main object (distractors sharing its shape are counted with it)
        assert all(owned[c] < (main_cov >= 0.5).sum() for c in range(1, len(owned)) if c != 1 + spec.label), i
    assert set(counts) == {1, 2, 3}


def test_random_masking_at_0875_hides_the_whole_object_in_at_least_30_percent_of_mid_scenes():
    """Exactly, over all masks of 8 kept patches out of 64: the chance that none is one of the object's k patches
    is C(64 - k, 8) / C(64, 8), averaged over scenes; dense scenes for comparison."""
    def hidden(kind, keep=8):
        p = []
        for i in range(256):
            _, cov = scenes.make_scene_with_main_object(0, "val", i, 64, kind)
            k = int(((cov >= 0.5).reshape(8, 8, 8, 8).sum(axis=(1, 3)) > 0).sum())
            p.append(math.comb(64 - k, keep) / math.comb(64, keep))
        return float(np.mean(p))
    mid, dense = hidden("mid"), hidden("dense")
    assert mid >= 0.33 and dense < 0.25, (mid, dense)


def test_mid_scenes_load_as_a_dataset_at_any_size():
    for size in (64, 128):
        image, label = OfflineScenes("train", 3, size, 0, variant="mid")[2]
        assert np.asarray(image).shape == (size, size, 3) and 0 <= label < len(scenes.SHAPES)
