"""The image-file input pipeline: DecodeCrop against the full decode, EXIF orientation, per-sample
seeding, pretraining and fine-tuning on a JPEG folder (bitwise resume), and the benchmark."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from milan_lab.config import get_config
from milan_lab.data.datasets import ClassFolder
from milan_lab.data.images import ORIENTATION, decode_image, open_image, upright_size
from milan_lab.data.jpeg_corpus import make_jpeg_corpus
from milan_lab.data.transforms import DecodeCrop, crop_resize
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
from tests.helpers import ROOT, env, tiny_overrides


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_jpeg_corpus(tmp_path_factory.mktemp("jpeg") / "corpus", n=48, classes=3, seed=1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-12)))


def reference(path, box, size, flip) -> np.ndarray:
    """Full decode (PIL, EXIF applied), crop, bicubic resize, flip: the chain DecodeCrop replaces."""
    left, top, w, h = box
    img = decode_image(open_image(path), min_side=1).resize((size, size), Image.BICUBIC, box=(left, top, left + w, top + h))
    return np.asarray(img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img)


def test_the_corpus_has_imagenet_sizes(corpus):
    files = sorted(corpus.rglob("*.jpg"))
    sides = [min(Image.open(f).size) for f in files]
    assert len(files) == 48 and len({f.parent.name for f in files}) == 3
    assert 300 <= min(sides) and max(sides) <= 500 and all(Image.open(f).format == "JPEG" for f in files)


@pytest.mark.parametrize("size", [224, 32])
def test_decode_crop_matches_the_full_decode_within_35_db(corpus, size):
    crop = DecodeCrop(size, scale=(0.2, 1.0))
    values, reduced = [], 0
    for k, path in enumerate(sorted(corpus.rglob("*.jpg"))):
        box, flip = crop.sample(*upright_size(open_image(path)), np.random.default_rng([0, 0, k]))
        reduced += min(box[2:]) >= 8 * size
        out = crop_resize(open_image(path), box, size, flip)
        assert out.dtype == torch.uint8 and out.shape == (3, size, size)
        values.append(psnr(out.permute(1, 2, 0).numpy(), reference(path, box, size, flip)))
    assert min(values) >= 35, sorted(values)[:3]
    if size == 32:
        assert reduced >= 1  # the reduced-size decode was exercised and held the bound


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pil(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    base = (rng.random((60, 90, 3)) * 255).astype(np.uint8)
    base[:20, :30] = 255  # an asymmetric mark: any wrong rotation or flip shows
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(base).save(path, quality=95, exif=exif.tobytes())
    upright = decode_image(open_image(path), min_side=1)
    assert upright_size(open_image(path)) == upright.size
    box = (5, 7, upright.width - 12, upright.height - 9)
    out = crop_resize(open_image(path), box, 32, flip=False).permute(1, 2, 0).numpy()
    assert psnr(out, reference(path, box, 32, False)) > 40


def test_png_files_take_the_pil_path_with_the_same_result(tmp_path, corpus):
    src = sorted(corpus.rglob("*.jpg"))[0]
    png = tmp_path / "a.png"
    decode_image(open_image(src)).save(png)
    box = (10, 20, 200, 180)
    a = crop_resize(open_image(png), box, 64, flip=True)
    assert psnr(a.permute(1, 2, 0).numpy(), reference(png, box, 64, True)) > 40


def test_samples_are_a_function_of_seed_epoch_and_index(corpus):
    ds = ClassFolder(str(corpus), DecodeCrop(48, scale=(0.2, 1.0)), seed=3)
    assert ds.uint8_images
    first = ds[5][0]
    assert torch.equal(first, ds[5][0]) and not torch.equal(first, ds[6][0])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[5][0])
    ds.set_epoch(0)
    loader = lambda workers: next(iter(torch.utils.data.DataLoader(ds, batch_size=8, num_workers=workers)))[0]  # noqa: E731
    assert torch.equal(loader(0), loader(2))  # whatever process loads a sample, it is the same


def test_pretraining_on_a_jpeg_folder_resumes_bitwise(corpus, teacher_dir, tmp_path):
    from milan_lab.jobs.pretrain import pretrain
    common = dict(data=str(corpus), epochs=2, batch_size=16, checkpoint_every=1, min_crop_scale=0.2)
    interrupted = tiny_overrides(teacher_dir, tmp_path / "interrupted", **common)
    first = pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", interrupted + ["max_steps=2"]))
    assert first["steps"] == 2
    resumed = pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", interrupted))
    straight = pretrain(get_config("pretrain", "milan_vit-micro-p8_offline",
                                   tiny_overrides(teacher_dir, tmp_path / "straight", **common)))
    assert resumed["steps"] == straight["steps"] == 6  # 48 images / 16 x 2 epochs
    a = load_checkpoint(latest_checkpoint(tmp_path / "interrupted" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_finetuning_on_a_jpeg_folder(corpus, tmp_path):
    from milan_lab.jobs.finetune import build_finetune, finetune, finetune_transform
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        (data / split).symlink_to(corpus, target_is_directory=True)
    over = ["model.image_size=32", "model.patch_size=8", "epochs=1", "batch_size=16", "warmup_epochs=0", "eval_size=48",
            f"data={data}", f"output_dir={tmp_path / 'ft'}", "progress=false", "log_every=1"]
    cfg = get_config("finetune", "milan_vit-micro-p8_offline", over)
    assert isinstance(finetune_transform(cfg), DecodeCrop)
    train_set = build_finetune(cfg)[2]
    image, _ = train_set[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)  # RandAugment and normalisation ran
    summary = finetune(cfg)
    assert summary["steps"] == 3 and 0 <= summary["top1"] <= 1


def test_the_benchmark_writes_its_record(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/data_pipeline.py", "--images", "24", "--out", str(tmp_path)],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "record.json").read_text())
    assert {"command", "commit", "cpu", "torch", "seeds", "wall_s"} <= set(record)
    r = record["results"]
    assert set(r) == {"timm", "pil", "decode-crop", "preset-view"}
    assert r["decode-crop"]["bytes_to_device_per_image"] * 4 == r["timm"]["bytes_to_device_per_image"] == 3 * 224 * 224 * 4
    assert r["preset-view"]["bytes_to_device_per_image"] == r["decode-crop"]["bytes_to_device_per_image"]  # uint8 too
    assert "decode-crop" in done.stdout and "vs timm" in done.stdout
    bad = subprocess.run([sys.executable, "benchmarks/data_pipeline.py", "--images", "0"], cwd=ROOT, env=env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "must be at least 1" in bad.stderr


def test_the_claimed_speed_up_is_in_the_record():
    record = json.loads((ROOT / "docs" / "results" / "data_pipeline.json").read_text())
    assert record["results"]["decode-crop"]["per_core_vs_timm"] >= 2  # the figure the docs claim, as recorded


def test_fixed_view_of_an_image_over_the_upload_cap(tmp_path):
    """DecodeView takes a dataset's file of any size (the upload cap is the explorer's, not the datasets')."""
    from milan_lab.data.images import MAX_PIXELS
    from milan_lab.data.transforms import DecodeView
    width, height = 8000, 5100  # 40.8 MP, one grey value: fast to write and to decode at 1/8 scale
    assert width * height > MAX_PIXELS
    path = tmp_path / "big.jpg"
    Image.new("L", (width, height), 128).save(path, quality=50)
    view = DecodeView(64)(path)
    assert view.shape == (3, 64, 64) and view.dtype == torch.uint8
    assert abs(float(view.float().mean()) - 128) < 3
