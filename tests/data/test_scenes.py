import hashlib

import numpy as np
import pytest

from milan_lab.data.datasets import CaptionPairs, ClassFolder, OfflineScenes
from milan_lab.data.scenes import ATTRIBUTES, SHAPES, make_scene, random_spec, render_scene, scene_rng
from milan_lab.data.transforms import pretrain_transform
from milan_lab.errors import DataError


def test_scene_is_deterministic_and_sized():
    a, spec_a = make_scene(3, "train", 17, 64)
    b, spec_b = make_scene(3, "train", 17, 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and spec_a == spec_b
    c, _ = make_scene(3, "train", 17, 96)
    assert c.shape == (96, 96, 3)


def test_splits_never_overlap():
    digest = lambda s, i: hashlib.sha1(make_scene(0, s, i)[0].tobytes()).hexdigest()  # noqa: E731
    train = {digest("train", i) for i in range(200)}
    val = {digest("val", i) for i in range(200)}
    test = {digest("test", i) for i in range(200)}
    assert len(train) == 200 and not train & val and not train & test and not val & test


def test_caption_and_label_name_the_main_object():
    _, spec = make_scene(0, "train", 5)
    caption = spec.caption()
    for attr in ("size", "colour", "shape", "place"):
        assert getattr(spec, attr) in caption
    assert spec.label == SHAPES.index(spec.shape)
    assert spec.caption(drop=("colour", "place")) == f"a {spec.size} {spec.shape}"


def test_attributes_are_balanced_and_varied():
    specs = [make_scene(1, "train", i)[1] for i in range(400)]
    for attr, values in ATTRIBUTES.items():
        counts = {v: sum(getattr(s, attr) == v for s in specs) for v in values}
        assert min(counts.values()) > 400 / len(values) * 0.4, (attr, counts)


def test_main_object_covers_patches_and_shape_changes_pixels():
    rng = scene_rng(0, "train", 0)
    spec = random_spec(rng, shape="star", colour="red", size="large", place="centre")
    img, cov = render_scene(np.random.default_rng(1), spec, 64, return_mask=True)
    assert cov.sum() > 16 * 16  # a large object spans several 8-px patches
    other = random_spec(rng, shape="circle", colour="red", size="large", place="centre")
    img2 = render_scene(np.random.default_rng(1), other, 64)
    assert np.abs(img.astype(int) - img2).sum() > 0


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="unknown split"):
        make_scene(0, "training", 0)


def test_offline_dataset_with_pretrain_transform_is_seeded_per_epoch():
    ds = OfflineScenes("train", 8, 64, transform=pretrain_transform(64))
    x1, y1 = ds[3]
    x2, _ = ds[3]
    assert x1.shape == (3, 64, 64) and 0 <= y1 < len(SHAPES)
    assert (x1 == x2).all()  # same (seed, epoch, index) -> same crop
    ds.set_epoch(1)
    assert not (ds[3][0] == x1).all()


def test_class_folder_and_caption_pairs(tmp_path):
    from PIL import Image
    for cls in ("cat", "dog"):
        (tmp_path / "folder" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(make_scene(0, "train", i)[0]).save(tmp_path / "folder" / cls / f"{i}.png")
    ds = ClassFolder(str(tmp_path / "folder"), pretrain_transform(32))
    assert len(ds) == 4 and ds.classes == ["cat", "dog"] and ds[0][0].shape == (3, 32, 32)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    Image.fromarray(make_scene(0, "train", 0)[0]).save(pairs / "a.png")
    (pairs / "captions.csv").write_text("image,caption\na.png,a red star\n")
    cp = CaptionPairs(str(pairs))
    assert len(cp) == 1 and cp[0][1] == "a red star"
    (pairs / "captions.csv").write_text("image,caption\nmissing.png,x\n")
    with pytest.raises(DataError, match="missing"):
        CaptionPairs(str(pairs))


def test_scene_cache_changes_nothing_but_time():
    import torch

    from milan_lab.data.datasets import OfflineScenes
    from milan_lab.data.transforms import pretrain_transform
    cached = OfflineScenes("train", 16, 64, 0, pretrain_transform(64), cache_mb=512)
    fresh = OfflineScenes("train", 16, 64, 0, pretrain_transform(64), cache_mb=0)
    assert cached._cache == {} and fresh._cache is None
    for epoch in (0, 1):
        cached.set_epoch(epoch)
        fresh.set_epoch(epoch)
        for i in (0, 5, 5):
            a, b = cached[i], fresh[i]
            assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert set(cached._cache) == {0, 5}
    assert OfflineScenes("train", 100_000, 224, cache_mb=512)._cache is None  # too big: rendered each time
