"""Image folders read carefully: each file listed once whatever its symbolic links, photos of any
size in training, a worker's user error as one line, and classifier folders whose scores mean
something (two classes at least, a val/ split, val/ classes numbered by name)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

from milan_lab.cli import main
from milan_lab.config import get_config
from milan_lab.data import images
from milan_lab.data.datasets import ClassFolder, build_dataset
from milan_lab.data.images import load_image
from milan_lab.data.transforms import DecodeCrop, eval_transform
from milan_lab.engine.common import user_errors_from_workers
from milan_lab.errors import BadImage, ConfigError, DataError
from tests.helpers import MICRO, ROOT, env, tiny_overrides



def class_folder(root: Path, classes=("cat", "dog"), n: int = 2, size: int = 20, ext: str = "png") -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (size, size), (40 * c, 30 * i, 90)).save(root / name / f"{i}.{ext}")
    return root


# --- symbolic links: every file once ----------------------------------------------------------------

def test_a_plain_folder_lists_what_torchvision_lists_in_its_order(tmp_path):
    root = class_folder(tmp_path / "d", classes=("b", "a", "c"), n=3)
    (root / "a" / "sub").mkdir()
    Image.new("RGB", (20, 20)).save(root / "a" / "sub" / "x.png")
    (root / "c" / "notes.txt").write_text("not an image")
    ds = ClassFolder(str(root))
    assert ds.samples == make_dataset(str(root), ds.class_to_idx, IMG_EXTENSIONS) and len(ds) == 10


@pytest.mark.parametrize("make_link", [
    lambda root: os.symlink(".", root / "cat" / "loop"),                           # a loop
    lambda root: os.symlink("..", root / "cat" / "up"),                            # the whole tree again
    lambda root: os.symlink(root / "cat" / "0.png", root / "dog" / "copy.png"),    # a file listed twice
    lambda root: os.symlink(root / "cat", root / "kitten"),                        # a class folder twice
], ids=["loop", "parent", "file-into-the-tree", "class-into-the-tree"])
def test_a_link_back_into_the_folder_is_refused_naming_it(tmp_path, make_link):
    root = class_folder(tmp_path / "d")
    make_link(root)
    link = next(p for p in root.rglob("*") if p.is_symlink())
    with pytest.raises(DataError, match=rf"{link.name}: a symbolic link back into"):
        ClassFolder(str(root))
    with pytest.raises(DataError, match=link.name):  # the dataset pretraining reads
        build_dataset(str(root), "train", 32, DecodeCrop(32))


def test_links_out_of_the_folder_are_followed_each_file_once(tmp_path):
    """An ImageNet subset made of links to class folders (and files) elsewhere."""
    full = class_folder(tmp_path / "imagenet", classes=("n01", "n02", "n03"), n=3)
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in ("n01", "n03"):
        (subset / name).symlink_to(full / name, target_is_directory=True)
    (subset / "n02").mkdir()
    (subset / "n02" / "one.png").symlink_to(full / "n02" / "0.png")
    ds = ClassFolder(str(subset))
    assert ds.classes == ["n01", "n02", "n03"] and len(ds) == 7
    assert len({os.path.realpath(p) for p, _ in ds.samples}) == 7
    (full / "n03" / "again").symlink_to(full / "n03", target_is_directory=True)  # a loop outside the folder
    with pytest.raises(DataError, match=r"n03/again: a symbolic link to .*already lists"):
        ClassFolder(str(subset))


# --- photos of any size in training --------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """A folder with one 48 MP JPEG (8000x6000, a phone's full resolution) and one small image."""
    root = tmp_path_factory.mktemp("photos")
    (root / "street").mkdir()
    Image.new("RGB", (8000, 6000), (120, 60, 30)).save(root / "street" / "phone.jpg", quality=85)
    Image.new("RGB", (64, 48), (10, 60, 30)).save(root / "street" / "small.jpg")
    return root


def test_a_48_megapixel_photo_trains(photo_folder):
    ds = build_dataset(str(photo_folder), "train", 32, DecodeCrop(32), seed=0)  # pretraining on a folder
    assert ds.samples[0][0].endswith("phone.jpg")
    image, _ = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert image[:, 16, 16].tolist() == pytest.approx([120, 60, 30], abs=3)
    cached = ClassFolder(str(photo_folder), eval_transform(32, 1.0))  # the teacher cache's fixed views
    assert cached[0][0].shape == (3, 32, 32)


def test_a_photo_is_judged_by_the_memory_its_decode_takes(photo_folder, monkeypatch):
    monkeypatch.setattr(images, "available_memory", lambda: 200 * 2**20)  # 200 MB free; a full decode takes 144 MB
    crop = DecodeCrop(32)(photo_folder / "street" / "phone.jpg", np.random.default_rng(0))  # decoded at 1/8
    assert crop.shape == (3, 32, 32)
    with pytest.raises(BadImage, match=r"phone\.jpg: decoding it \(8000x6000\) would take 0\.1 GB"):
        ClassFolder(str(photo_folder), eval_transform(32, 1.0))[0]  # a full decode: more than a quarter of it


def test_uploads_keep_their_cap(photo_folder):
    with pytest.raises(BadImage, match=r"phone\.jpg: image is too large \(8000x6000\); the limit is 40 MP"):
        load_image(str(photo_folder / "street" / "phone.jpg"))


# --- a worker's user error is one line -----------------------------------------------------------

class _Failing(torch.utils.data.Dataset):
    def __init__(self, error):
        self.error = error

    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise self.error


def test_a_worker_s_user_error_is_raised_again_with_its_own_message():
    loader = torch.utils.data.DataLoader(_Failing(BadImage("x.JPEG: not a readable image")), num_workers=1)
    with pytest.raises(BadImage) as caught:
        list(user_errors_from_workers(loader))
    assert str(caught.value) == "x.JPEG: not a readable image"
    bug = torch.utils.data.DataLoader(_Failing(KeyError("a bug")), num_workers=1)
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker"):  # a bug keeps its traceback
        list(user_errors_from_workers(bug))


def test_pretraining_with_workers_reports_a_corrupt_file_in_one_line(teacher_dir, tmp_path):
    data = class_folder(tmp_path / "data", n=8, size=40, ext="JPEG")
    (data / "cat" / "3.JPEG").write_bytes(b"not a jpeg at all")
    args = tiny_overrides(teacher_dir, tmp_path / "run", data=data, num_workers=2, batch_size=4, epochs=1)
    done = subprocess.run([sys.executable, "-m", "milan_lab", "pretrain", "--preset", MICRO, *args], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        "milan-lab pretrain: error: 3.JPEG: not a readable image (UnidentifiedImageError); try a PNG or JPEG."]


# --- classifier folders whose scores mean something ----------------------------------------------

def _linear(data: Path, tmp_path: Path, *extra):
    from milan_lab.jobs.linear import build_linear
    cfg = get_config("linear", MICRO, [f"data={data}", "model.image_size=32", f"output_dir={tmp_path / 'run'}", *extra])
    return build_linear(cfg)


def test_val_classes_are_numbered_by_name_with_the_training_labels(tmp_path):
    class_folder(tmp_path / "d" / "train", classes=("cat", "dog", "fox"))
    class_folder(tmp_path / "d" / "val", classes=("cat", "fox"))
    model, _, train_set, val_set = _linear(tmp_path / "d", tmp_path)
    assert model.num_classes == 3 and val_set.classes == train_set.classes == ["cat", "dog", "fox"]
    assert [(Path(p).parent.name, label) for p, label in val_set.samples] == [("cat", 0), ("cat", 0), ("fox", 2), ("fox", 2)]
    assert [val_set[i][1] for i in range(len(val_set))] == [0, 0, 2, 2]


@pytest.mark.parametrize("layout, error, message", [
    ({"train": ("cat", "dog")}, DataError, r"no val/ sub-folder; fine-tuning and linear probing expect .*/train/<class>"),
    ({"cat": ("a", "b")}, DataError, r"no train/ and no val/ sub-folder"),
    ({"train": ("cat",), "val": ("cat",)}, DataError, r"train: only one class folder \('cat'\); top-1 over one class"),
    ({"train": ("cat", "dog"), "val": ("cat", "wolf")}, DataError, r"val: 1 class folders are not classes of the "
                                                                   r"training split: \['wolf'\]"),
], ids=["no-val", "flat", "one-class", "unknown-val-class"])
def test_a_classifier_folder_that_would_score_nothing_is_refused(tmp_path, layout, error, message):
    for split, classes in layout.items():
        class_folder(tmp_path / "d" / split, classes=classes)
    with pytest.raises(error, match=message):
        _linear(tmp_path / "d", tmp_path)


def test_fewer_heads_than_classes_is_refused_naming_num_classes(tmp_path):
    for split in ("train", "val"):
        class_folder(tmp_path / "d" / split, classes=("cat", "dog", "fox"))
    with pytest.raises(ConfigError, match=r"num_classes=2, but the training data holds 3 classes"):
        _linear(tmp_path / "d", tmp_path, "num_classes=2")


@pytest.mark.parametrize("command", ["finetune", "linear-probe"])
def test_the_cli_refuses_a_folder_without_val_before_training(tmp_path, capsys, command):
    class_folder(tmp_path / "d" / "train", classes=("cat", "dog"))
    code = main([command, "--preset", MICRO, f"data={tmp_path / 'd'}", f"output_dir={tmp_path / 'run'}",
                 "model.image_size=32", "progress=false"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"milan-lab {command}: error: " in err and "no val/" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
