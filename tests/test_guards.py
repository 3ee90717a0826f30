"""Guards on the inputs of the dense probe, the notebooks, the benchmarks, export, job options, the
app's log, a real full disk and tiny images: each case a user meets gets one line naming the
problem (exit 2 from the CLI, a MilanLabError from the API) or a result that says what it left out."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from milan_lab.cli import main
from milan_lab.data.segmentation import IGNORE, seg_folder_splits
from milan_lab.errors import BadImage, ConfigError, DataError, DiskFull

MICRO = "milan_vit-micro-p8_offline"
ROOT = Path(__file__).resolve().parent.parent


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ade_folder(root: Path, n: int = 3, size=(64, 64), splits=("training", "validation"), classes=(1, 2, 3)) -> Path:
    """An ADE20K-layout folder: left half class 0 ("other"), right half one of ``classes``."""
    for split in splits:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", size, (40 * i, 90, 0)).save(root / "images" / split / f"ADE_{i}.jpg")
            ann = np.zeros(size[::-1], dtype=np.uint8)
            ann[:, size[0] // 2:] = classes[i % len(classes)]
            Image.fromarray(ann).save(root / "annotations" / split / f"ADE_{i}.png")
    return root


# --- dense-probe folders -------------------------------------------------------------------------

def test_a_good_folder_opens_with_the_training_classes(tmp_path):
    train, val = seg_folder_splits(str(ade_folder(tmp_path)), image_size=32)
    assert (len(train), len(val), train.num_classes, val.num_classes) == (3, 3, 3, 3)
    image, labels = val[1]
    assert image.shape == (3, 32, 32) and set(labels.unique().tolist()) == {1, IGNORE}
    assert val.unknown_labels == {}


@pytest.mark.parametrize("damage, message", [
    ("resized annotation", r"ADE_1\.png: 48x40, but its image ADE_1\.jpg is 64x64; .*never resized"),
    ("rgb annotation", r"ADE_0\.png: a RGB image; annotations hold one class index per pixel"),
    ("corrupt annotation", r"ADE_2\.png: not a readable annotation"),
    ("truncated annotation", r"ADE_2\.png: a damaged annotation"),
    ("corrupt image", r"ADE_0\.jpg: not a readable image"),
    ("missing annotation", r"1 images in images/validation/ have no annotation"),
    ("no validation split", r"the validation split is missing \(expected images/validation/"),
    ("no training split", r"the training split is missing"),
    ("flat folder", r"no training/ and validation/ sub-folders; the dense probe needs both splits"),
    ("empty split", r"no images in images/validation/"),
])
def test_a_bad_folder_is_refused_in_one_line_naming_the_file(tmp_path, damage, message):
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
    with pytest.raises(DataError, match=message):
        seg_folder_splits(str(root), image_size=32)


def test_seg_probe_cli_refuses_a_bad_folder_before_training(tmp_path, capsys):
    root = ade_folder(tmp_path / "ade")
    Image.fromarray(np.ones((40, 48), np.uint8)).save(root / "annotations" / "validation" / "ADE_1.png")
    code, _, err = _cli(["seg-probe", "random", "--preset", MICRO, "--data", str(root), "--steps", "2", "--no-save"],
                        capsys)
    assert code == 2 and err.count("\n") == 1 and "never resized" in err and "Traceback" not in err


def test_validation_labels_no_class_has_are_reported_not_hidden(tmp_path, capsys):
    root = ade_folder(tmp_path / "ade")
    ann = np.zeros((64, 64), np.uint8)
    ann[:, 32:] = 2
    ann[:8, :8] = 250   # a value the training split (classes 1-3) never holds
    Image.fromarray(ann).save(root / "annotations" / "validation" / "ADE_0.png")
    train, val = seg_folder_splits(str(root), image_size=64)
    assert val.num_classes == 3 and val.unknown_labels == {250: 64}
    assert set(val[0][1].unique().tolist()) == {1, IGNORE}
    code, out, err = _cli(["seg-probe", "random", "--preset", MICRO, "--data", str(root), "--steps", "2", "--no-save",
                           "--json"], capsys)
    assert code == 0
    out = json.loads(out)
    assert "64 validation pixels (0.52 %) carry labels no training class has (250)" in err
    assert out["ignored_val_pixels"] == {"values": [250], "pixels": 64, "share": pytest.approx(64 / (3 * 64 * 64))}


# --- export, job options, tiny images -----------------------------------------------------------

def test_export_format_follows_the_extension(tmp_path, capsys):
    shipped = str(ROOT / "milan_lab" / "assets" / "milan_tiny_offline.safetensors")
    code, _, err = _cli(["export", shipped, "--timm", str(tmp_path / "out.onnx")], capsys)
    assert code == 2 and "unsupported export format '.onnx'; name the file .safetensors or .pth or .pt" in err
    assert not (tmp_path / "out.onnx").exists()
    for name in ("out.safetensors", "out.pth"):
        assert _cli(["export", shipped, "--timm", str(tmp_path / name)], capsys)[0] == 0
    from milan_lab.io.weights import read_weights
    assert torch.equal(read_weights(tmp_path / "out.safetensors")["pos_embed"], read_weights(tmp_path / "out.pth")["pos_embed"])


@pytest.mark.parametrize("command, option, message", [
    ("finetune", "sampler=random", "sampler is a pretraining option; fine-tuning has no masking"),
    ("finetune", "decoder=mae", "decoder is a pretraining option; fine-tuning has no decoder"),
    ("finetune", "model.target=pixels", "target is a pretraining option; fine-tuning has no reconstruction target"),
    ("finetune", "mask_ratio=0.5", "mask_ratio is a pretraining option; fine-tuning has no masking"),
    ("finetune", "teacher=ViT-B-16", "teacher is a pretraining option; fine-tuning has no teacher"),
    ("linear-probe", "decoder=mae", "decoder is a pretraining option; linear probing has no decoder"),
    ("linear-probe", "drop_path=0.3", "drop_path is a fine-tuning option; linear probing has no drop path"),
])
def test_an_option_the_job_does_not_use_is_refused(command, option, message, capsys, tmp_path):
    code, _, err = _cli([command, option, f"output_dir={tmp_path}"], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # refused before any work


def test_job_help_lists_only_the_options_the_job_uses(capsys):
    from milan_lab.cli import build_parser
    text = build_parser()._subparsers._group_actions[0].choices["linear-probe"].format_help()
    assert "model.embed_dim" in text and "model.sampler" not in text and "model.drop_path" not in text
    text = build_parser()._subparsers._group_actions[0].choices["finetune"].format_help()
    assert "model.drop_path" in text and "model.decoder" not in text


@pytest.mark.parametrize("side", [1, 3, 15])
def test_tiny_images_are_refused_by_predict_test_and_the_api(side, tmp_path, capsys):
    from milan_lab.zoo import get_model, inference_model
    Image.new("RGB", (side, side), (200, 10, 10)).save(tmp_path / "tiny.png")
    code, out, err = _cli(["predict", "vit-tiny-p8_milan-pre_offline-ft", str(tmp_path / "tiny.png")], capsys)
    assert code == 1 and out == "" and f"too small ({side}x{side}); at least 16 px" in err
    with pytest.raises(BadImage, match="too small"):
        inference_model(get_model("vit-tiny-p8_milan-pre_offline-ft", pretrained=True), str(tmp_path / "tiny.png"))
    folder = tmp_path / "data" / "circle"
    folder.mkdir(parents=True)
    (tmp_path / "tiny.png").rename(folder / "tiny.png")
    from milan_lab.data.scenes import make_scene
    Image.fromarray(make_scene(0, "val", 0, 64)[0]).save(folder / "scene.png")
    code, out, err = _cli(["test", "vit-tiny-p8_milan-pre_offline-ft", "--data", str(tmp_path / "data")], capsys)
    result = json.loads(out[:out.rindex("}") + 1])
    assert code == 1 and result["images"] == 1 and result["skipped"] == 1 and "tiny.png: Image is too small" in err


# --- a real full disk ---------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_is_reported_as_disk_full(small_disk):
    from milan_lab.io.checkpoints import load_checkpoint, save_checkpoint
    first = save_checkpoint(small_disk, 1, {"w": torch.ones(1000)})
    # tensors that fit in what is free but whose file (one zip record per tensor) does not:
    # torch's zip writer fails with "unexpected pos", which must read as a full disk
    (small_disk / "filler").write_bytes(b"0" * (1024 * 1024 - 200 * 1024))
    many_small = {f"w{i}": torch.randn(10) for i in range(2000)}
    with pytest.raises(DiskFull, match=r"no space left on device while writing .*step_00000002\.pt .*MB free\); "
                                       r"the partial file was removed"):
        save_checkpoint(small_disk, 2, many_small)
    # tensors larger than the free space: refused before anything is written
    with pytest.raises(DiskFull, match=r"step_00000003\.pt \(at least 1\.2 MB needed.*nothing was written"):
        save_checkpoint(small_disk, 3, {"w": torch.ones(300_000)})
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "step_00000001.pt"]
    assert torch.equal(load_checkpoint(first)["w"], torch.ones(1000))


def test_a_really_full_disk_through_export(small_disk, tmp_path, capsys):
    shipped = str(ROOT / "milan_lab" / "assets" / "milan_tiny_offline.safetensors")
    (small_disk / "filler").write_bytes(b"0" * (1024 * 1024 - 300 * 1024))
    code, _, err = _cli(["export", shipped, "--timm", str(small_disk / "enc.safetensors")], capsys)
    assert code == 2 and "no space left on device while writing" in err and err.count("\n") == 1
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


# --- a bug is a traceback -----------------------------------------------------------------------

def test_a_value_error_inside_torch_is_a_traceback_not_a_user_error(tmp_path, monkeypatch, capsys):
    """The CLI turns only MilanLabError into one line; a ValueError from deep inside a run is a bug
    and must reach the user with its traceback (here: it propagates out of main)."""
    from tests.helpers import tiny_overrides, tiny_teacher_folder
    teacher = tiny_teacher_folder(tmp_path / "teacher")

    def broken(*args, **kwargs):
        raise ValueError("a bug deep inside torch")
    monkeypatch.setattr(torch.nn.functional, "layer_norm", broken)
    with pytest.raises(ValueError, match="a bug deep inside torch"):
        main(["pretrain", "--preset", MICRO, *tiny_overrides(teacher, tmp_path / "run", max_steps=1)])
    assert "error:" not in capsys.readouterr().err


def test_the_subprocess_cli_prints_that_traceback(tmp_path):
    code = ("import sys, torch; from milan_lab.cli import main\n"
            "torch.nn.functional.layer_norm = lambda *a, **k: (_ for _ in ()).throw(ValueError('a bug'))\n"
            f"sys.exit(main(['info', '{MICRO}']))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr and "ValueError: a bug" in done.stderr


# --- notebook parameters and benchmark options ---------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    ({"arms": ["MILANN"]}, "parameter 'arms': unknown 'MILANN'; known: MILAN, pixel targets"),
    ({"seeds": []}, "parameter 'seeds': expected a non-empty list"),
    ({"seeds": "[0]"}, r"expected a list, got the text '\[0\]' .*use -y"),
    ({"seg_steps": -1}, "parameter 'seg_steps': expected an integer >= 1, got -1"),
    ({"variant": "crowded"}, "parameter 'variant': 'crowded' is not one of dense, sparse"),
    ({"primary": "accuracy"}, "parameter 'primary': 'accuracy' is not one of"),
])
def test_ablation_parameters_are_checked_naming_the_parameter(bad, message):
    from milan_lab.tools.notebook import check_parameters
    good = dict(preset=MICRO, variant="dense", seeds=[0], arms=["MILAN"], primary="linear_mean", epochs=1,
                offline_size=64, batch_size=32, max_steps=None, eval_train=8, eval_val=8, seg_train=8, seg_val=8,
                seg_steps=1, output_dir="x")
    check_parameters("ablation", **good)
    with pytest.raises(ConfigError, match=message):
        check_parameters("ablation", **{**good, **bad})


@pytest.mark.parametrize("notebook, bad, message", [
    ("segmentation", {"steps": 0}, "parameter 'steps'"),
    ("tour", {"mask_ratio": 1.5}, "parameter 'mask_ratio'"),
    ("teacher", {"n_eval": "many"}, "parameter 'n_eval'"),
    ("pretrain", {"sampler": "smart"}, "parameter 'sampler'"),
    ("linear_probe", {"knn_train": -5}, "parameter 'knn_train'"),
])
def test_every_notebook_checks_its_parameters(notebook, bad, message):
    import json as json_

    import re
    from milan_lab.tools.notebook import check_parameters
    nb = json_.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in (c["metadata"].get("tags") or []))
    params = {}
    exec("".join(cell["source"]), params)  # noqa: S102 -- the notebook's own defaults
    defaults = {k: v for k, v in params.items() if not k.startswith("__")}
    check_parameters(notebook, **defaults)  # the defaults pass
    assert re.search(r"check_parameters\(", "".join("".join(c["source"]) for c in nb["cells"]))
    with pytest.raises(ConfigError, match=message):
        check_parameters(notebook, **{**defaults, **bad})


def test_a_bad_notebook_parameter_stops_papermill_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "papermill", "notebooks/ablation.ipynb", str(tmp_path / "o.ipynb"),
                           "-y", "{arms: [MILANN], seeds: [0]}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "ConfigError: parameter 'arms': unknown 'MILANN'" in done.stderr
    assert "Traceback (most recent call last)" not in done.stderr.split("Exception encountered at")[-1]


@pytest.mark.parametrize("candidate, message", [
    ('{"epochs": 2', "--candidate 2: not valid JSON"),
    ('{"epoch": 2}', "--candidate 2: unknown config key 'epoch'"),
    ('{"mask_ratio": 2}', "--candidate 2: bad value for 'mask_ratio'"),
    ("[1]", "--candidate 2: expected a JSON object"),
])
def test_time_to_quality_checks_every_candidate_before_training(candidate, message, tmp_path):
    out = tmp_path / "ttq"
    done = subprocess.run([sys.executable, "benchmarks/time_to_quality.py", "--candidate", '{"epochs": 3}',
                           "--candidate", candidate, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith(f"time_to_quality: error: {message}")
    assert done.stderr.count("\n") == 1 and done.stdout == ""  # one line, nothing else printed
    assert not out.exists()  # refused before the first run (the reference) wrote anything
