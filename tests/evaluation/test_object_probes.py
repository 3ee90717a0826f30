"""The object-pooled probes: patch tokens averaged over the main object's ground-truth coverage."""
import numpy as np
import pytest
import torch
from torch import nn

from milan_lab.data.datasets import OfflineScenes
from milan_lab.data.scenes import make_scene, make_scene_with_main_object
from milan_lab.data.transforms import eval_transform
from milan_lab.errors import ConfigError
from milan_lab.evaluation.features import patch_cover
from milan_lab.evaluation.suite import PROBES, Bench, object_features, score

SIZE, PATCH = 32, 8
L = (SIZE // PATCH) ** 2


class PatchIndexEncoder(nn.Module):
    """Patch token i is the one-hot vector e_i (class token zero): pooled over weights w, it is w itself."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.patch_embed = nn.Module()
        self.patch_embed.img_size, self.patch_embed.patch_size = (SIZE, SIZE), (PATCH, PATCH)

    def forward_features(self, images):
        tokens = torch.cat([torch.zeros(1, L), torch.eye(L)]).expand(len(images), L + 1, L)
        return tokens + 0 * images.mean()  # the images pass through: the batch is really read


def test_object_features_read_only_the_main_objects_patches_weighted_by_its_coverage():
    bench = Bench(PatchIndexEncoder(), {"eval_train": 6, "eval_val": 5}, seed=3, variant="mid")
    (train, train_y), (val, val_y) = object_features(bench)
    assert train.shape == (6, L) and val.shape == (5, L)
    for i in range(5):
        _, main = make_scene_with_main_object(3, "val", i, SIZE, "mid")
        cover = patch_cover(main[None], PATCH)[0]
        assert cover.sum() > 0
        expected = cover / np.linalg.norm(cover)  # L2-normalised coverage: nothing off the object
        assert val[i].numpy() == pytest.approx(expected, abs=1e-6)
        assert (val[i].numpy()[cover == 0] == 0).all()
        assert val_y[i] == make_scene(3, "val", i, SIZE, "mid")[1].label  # the scenes' own labels
    assert object_features(bench)[0][0] is train  # extracted once per scoring


def test_object_probes_are_registered_and_score_through_the_suite():
    assert {"knn_object", "linear_object"} <= set(PROBES)
    row = score(PatchIndexEncoder(), ("knn_object", "linear_object"), {"eval_train": 24, "eval_val": 12}, seed=0)
    assert set(row) == {"knn_object", "linear_object"} and all(0 <= v <= 1 for v in row.values())


def test_object_probes_refuse_scenes_without_object_coverage():
    data = torch.utils.data.TensorDataset(torch.zeros(4, 3, SIZE, SIZE), torch.zeros(4, dtype=torch.long))
    data.classes = ["a", "b"]
    with pytest.raises(ConfigError, match="object"):
        score(PatchIndexEncoder(), ("knn_object",), datasets={"scenes": (data, data)})
    tf = eval_transform(SIZE, crop_ratio=1.0)  # offline scenes handed in by the caller are fine
    given = tuple(OfflineScenes(split, 8, SIZE, 0, tf) for split in ("train", "val"))
    assert "knn_object" in score(PatchIndexEncoder(), ("knn_object",), datasets={"scenes": given})
