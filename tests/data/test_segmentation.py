"""ADE20K-layout folders for the dense probe (data/segmentation.py): a good folder opens with the training
split's classes; a bad one is one DataError naming the file or split at fault."""
import numpy as np
import pytest
from PIL import Image

from milan_lab.data.segmentation import IGNORE, seg_folder_splits
from milan_lab.errors import DataError
from tests.helpers import ade_folder


def test_a_good_folder_opens_with_the_training_classes(tmp_path):
    train, val = seg_folder_splits(str(ade_folder(tmp_path)), image_size=32)
    assert (len(train), len(val), train.num_classes, val.num_classes) == (3, 3, 3, 3)
    image, labels = val[1]
    assert image.shape == (3, 32, 32) and set(labels.unique().tolist()) == {1, IGNORE}
    assert val.unknown_labels == {}


@pytest.mark.parametrize("damage, named", [  # named: the file or folder the message must name
    ("resized annotation", r"ADE_1\.png.*48x40"),
    ("rgb annotation", r"ADE_0\.png"),
    ("corrupt annotation", r"ADE_2\.png"),
    ("truncated annotation", r"ADE_2\.png"),
    ("corrupt image", r"ADE_0\.jpg"),
    ("missing annotation", r"images/validation/.*ADE_1\.png"),              # the split's folder and the image's annotation
    ("no validation split", r"images/validation/.*annotations/validation/"),  # both folders the split needs
    ("no training split", r"images/training/.*annotations/training/"),
    ("flat folder", r"training/.*validation/"),
    ("empty split", r"images/validation/$"),                                  # the folder alone: no file in it to name
])
def test_a_bad_folder_is_refused_in_one_line_naming_the_file(tmp_path, damage, named):
    root = ade_folder(tmp_path / "ade")
    val_ann = root / "annotations" / "validation"
    if damage == "resized annotation":
        Image.fromarray(np.ones((40, 48), np.uint8)).save(val_ann / "ADE_1.png")
    elif damage == "rgb annotation":
        Image.new("RGB", (64, 64), (1, 1, 1)).save(val_ann / "ADE_0.png")
    elif damage == "corrupt annotation":
        (val_ann / "ADE_2.png").write_bytes(b"not a png at all")
    elif damage == "truncated annotation":
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 4, (64, 64), dtype=np.uint8)).save(val_ann / "ADE_2.png")
        data = (val_ann / "ADE_2.png").read_bytes()
        (val_ann / "ADE_2.png").write_bytes(data[:len(data) // 2])
    elif damage == "corrupt image":
        (root / "images" / "validation" / "ADE_0.jpg").write_bytes(b"\xff\xd8garbage")
    elif damage == "missing annotation":
        (val_ann / "ADE_1.png").unlink()
    elif damage == "no validation split":
        for part in ("images", "annotations"):
            (root / part / "validation").rename(root / "spare" if part == "images" else root / "spare_ann")
    elif damage == "no training split":
        (root / "images" / "training").rename(root / "spare")
    elif damage == "flat folder":
        root = ade_folder(tmp_path / "flat", splits=("x",))
        for part in ("images", "annotations"):
            for f in (root / part / "x").iterdir():
                f.rename(root / part / f.name)
            (root / part / "x").rmdir()
    elif damage == "empty split":
        for f in (root / "images" / "validation").iterdir():
            f.unlink()
    with pytest.raises(DataError, match=named) as refused:
        seg_folder_splits(str(root), image_size=32)
    assert len(str(refused.value).splitlines()) == 1, refused.value
