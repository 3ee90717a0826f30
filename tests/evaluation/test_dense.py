"""Dense labels of the offline scenes, the ADE20K-layout loader, and the segmentation probe."""
import numpy as np
import pytest
import torch
from PIL import Image

from milan_lab.data.scenes import SEG_CLASSES, SHAPES, make_labelled_scene, make_scene, patch_labels, random_spec, \
    render_scene, scene_rng
from milan_lab.data.segmentation import IGNORE, SegFolder, SegScenes
from milan_lab.evaluation.dense import confusion, seg_scores, train_probe, evaluate_probe
from milan_lab.errors import DataError


def test_label_maps_coincide_with_the_drawn_objects():
    for index in range(40):
        image, labels = make_labelled_scene(0, "train", index, 64)
        assert np.array_equal(image, make_scene(0, "train", index, 64)[0])  # the same scene, same call
        rng = scene_rng(0, "train", index)
        spec = random_spec(rng)
        _, coverage, again = render_scene(rng, spec, 64, return_mask=True, return_labels=True)
        assert np.array_equal(again, labels)
        assert np.all((labels > 0) == (coverage >= 0.5))  # labelled exactly where an object is painted
        assert (labels == SHAPES.index(spec.shape) + 1).sum() > 0  # the main object is always there
        assert labels.max() < len(SEG_CLASSES)
        # object pixels differ from the background around them: the labels follow the paint
        ys, xs = np.nonzero(labels == SHAPES.index(spec.shape) + 1)
        inside = image[ys, xs].astype(float).mean(0)
        outside = image[labels == 0].astype(float).mean(0)
        assert np.abs(inside - outside).max() > 20


def test_patch_labels_take_the_majority():
    labels = np.zeros((4, 4), dtype=np.uint8)
    labels[:2, :2] = [[3, 3], [3, 0]]       # 3 of 4 pixels: class 3
    labels[:2, 2:] = [[1, 2], [2, 0]]       # 2 of 4: class 2
    labels[2:, 2:] = [[5, 5], [4, 4]]       # a tie: the lower class
    assert patch_labels(labels, 2).tolist() == [[3, 2], [0, 4]]


def test_miou_on_a_hand_made_example():
    target = torch.tensor([[0, 0, 1, 1], [0, 2, 2, IGNORE]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 1]])
    conf = confusion(pred, target, 3)
    # class 0: 2 hits; truth 3, predicted 3 -> IoU 2/4. class 1: 2 hits; truth 2, predicted 3 -> 2/3.
    # class 2: 1 hit; truth 2, predicted 1 -> 1/2. The ignored pixel counts nowhere.
    assert conf.sum() == 7
    scores = seg_scores(conf)
    assert scores["iou"] == pytest.approx([0.5, 2 / 3, 0.5])
    assert scores["miou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert scores["pixel_acc"] == pytest.approx(5 / 7)
    assert seg_scores(confusion(torch.tensor([0, 0]), torch.tensor([0, 0]), 3))["iou"] == [1.0, None, None]


def test_ade20k_layout_folder(tmp_path):
    for split in ("training", "validation"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "annotations" / split).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (48, 32), (10 * i, 0, 0)).save(tmp_path / "images" / split / f"ADE_{i}.jpg")
            ann = np.zeros((32, 48), dtype=np.uint8)
            ann[:, 24:] = 3   # class 3 on the right half, 0 ("other") on the left
            Image.fromarray(ann).save(tmp_path / "annotations" / split / f"ADE_{i}.png")
    ds = SegFolder(str(tmp_path), "training", image_size=16)
    image, labels = ds[0]
    assert len(ds) == 2 and image.shape == (3, 16, 16) and labels.shape == (16, 16)
    assert ds.num_classes == 3 and set(labels.unique().tolist()) == {2, IGNORE}  # file class 3 -> label 2
    (tmp_path / "annotations" / "training" / "ADE_1.png").unlink()
    with pytest.raises(DataError, match="1 images in images/training/ have no annotation"):
        SegFolder(str(tmp_path), "training")


def test_probe_learns_the_labels_of_informative_features():
    """Features that carry the label (one-hot plus noise) must give a near-perfect probe; noise
    alone must not: the probe and its scores measure what the features hold."""
    g = torch.Generator().manual_seed(0)
    scenes = SegScenes("train", 48, 64)
    labels = torch.stack([scenes[i][1] for i in range(len(scenes))])            # [N, 64, 64]
    grid = torch.from_numpy(np.stack([patch_labels(y.numpy(), 8) for y in labels]))  # [N, 8, 8]
    onehot = torch.nn.functional.one_hot(grid.flatten(1), len(SEG_CLASSES)).float()
    informative = torch.cat([onehot, torch.randn(48, 64, 7, generator=g)], -1)
    noise = torch.randn(48, 64, 16, generator=g)
    good = evaluate_probe(train_probe(informative, labels, len(SEG_CLASSES), steps=150), informative, labels, 9)
    bad = evaluate_probe(train_probe(noise, labels, len(SEG_CLASSES), steps=150), noise, labels, 9)
    # patch-level labels upsampled cannot be pixel-perfect at object edges; noise finds the background only
    assert good["miou"] > bad["miou"] + 0.25 and good["pixel_acc"] > bad["pixel_acc"] + 0.02
