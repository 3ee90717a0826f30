"""Bad inputs, faults and wrong-number traps: each gets one clear line (exit code 2 from the CLI, a
dedicated exception from the API), nothing is lost, and no result is silently wrong."""
import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from milan_lab.cli import main
from milan_lab.config import get_config
from milan_lab.errors import BadImage, CheckpointError, ConfigError, DiskFull, TrainingDiverged
from tests.helpers import run_cli, tiny_overrides, tiny_teacher_folder

SHIPPED_FT = "vit-tiny-p8_milan-pre_offline-ft"


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return tiny_teacher_folder(tmp_path_factory.mktemp("teacher") / "tiny")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """One of each kind of bad checkpoint file, with the words its message must contain."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.pt").write_bytes(b"")
    good = d / "good.pt"
    torch.save({"model": {"encoder.cls_token": torch.zeros(1, 1, 4)}}, good)
    (d / "truncated.pt").write_bytes(good.read_bytes()[:300])
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    with open(d / "evil.pt", "wb") as f:
        pickle.dump({"model": _RunsCode()}, f)
    torch.save({"model": _RunsCode()}, d / "evil_zip.pt")
    return {"empty.pt": "empty", "truncated.pt": "truncated or not a checkpoint",
            "random.pt": "not a checkpoint", "evil.pt": "refused for safety", "evil_zip.pt": "refused for safety"}, d


def _cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def test_bad_checkpoint_files_through_every_command(bad_files, capsys, tmp_path):
    cases, d = bad_files
    for name, words in cases.items():
        path = str(d / name)
        commands = [["knn", path], ["export", path, "--timm", str(tmp_path / "x.safetensors")],
                    ["predict", SHIPPED_FT, "img.png", "--pretrained", path],
                    ["test", SHIPPED_FT, "--data", str(tmp_path), "--pretrained", path],
                    ["finetune", f"checkpoint={path}", f"output_dir={tmp_path / 'ft'}", "progress=false"],
                    ["linear-probe", f"checkpoint={path}", f"output_dir={tmp_path / 'lp'}", "progress=false"],
                    ["app", "--checkpoint", path]]
        for argv in commands:
            code, err = _cli(argv, capsys)
            assert code == 2, (argv, err)
            assert words in err and name in err and "Traceback" not in err, (argv, err)
            assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ft" / "checkpoints").exists()  # refused before any training


def test_bad_checkpoint_files_through_the_api(bad_files):
    from milan_lab import get_model, load_teacher
    cases, d = bad_files
    for name, words in cases.items():
        with pytest.raises(CheckpointError, match=words):
            get_model(SHIPPED_FT, pretrained=str(d / name))
        with pytest.raises(CheckpointError, match=words):
            load_teacher(pretrained=str(d / name))


def test_checkpoint_of_another_architecture_or_missing_a_key(tmp_path, capsys):
    from milan_lab import get_model
    from milan_lab.models.classifier import MILANClassifier
    from milan_lab.io.weights import save_weights
    other = get_config("finetune", "milan_vit-micro-p8_offline").model
    model = MILANClassifier(other, 8, "finetune")
    save_weights(tmp_path / "micro.pt", model.state_dict())
    with pytest.raises(CheckpointError, match=r"another architecture .*encoder\..*\[1, 65, 96\] in the file vs "
                                              r"\[1, 65, 192\] here"):
        get_model(SHIPPED_FT, pretrained=str(tmp_path / "micro.pt"))
    big = get_model(SHIPPED_FT).state_dict()
    big.pop("head.bias")
    save_weights(tmp_path / "missing.pt", big)
    with pytest.raises(CheckpointError, match=r"1 missing \(head.bias\)"):
        get_model(SHIPPED_FT, pretrained=str(tmp_path / "missing.pt"))
    code, err = _cli(["predict", SHIPPED_FT, "x.png", "--pretrained", str(tmp_path / "micro.pt")], capsys)
    assert code == 2 and "another architecture" in err and "Traceback" not in err


def test_resume_into_an_output_dir_of_another_architecture(teacher_dir, tmp_path):
    from milan_lab.jobs.pretrain import pretrain
    out = tmp_path / "run"
    pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", tiny_overrides(teacher_dir, out, max_steps=2)))
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    wider = get_config("pretrain", "milan_vit-micro-p8_offline",
                       tiny_overrides(teacher_dir, out, max_steps=4, embed_dim=24, num_heads=3))
    with pytest.raises(CheckpointError, match=rf"output_dir {out} holds checkpoints of another architecture "
                                              r"\(embed_dim 48 in the checkpoint vs 24 here\); use a new output_dir"):
        pretrain(wider)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before


def test_config_errors_are_one_line(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("epochs: 3\nbatch_size: [1, 2\nlr: 0.1\n")
    code, err = _cli(["pretrain", "--config", str(bad_yaml)], capsys)
    assert code == 2 and f"{bad_yaml}:3:" in err and "YAML syntax error" in err and "Traceback" not in err
    out_of_range = {"warmup_epochs=-1": "'warmup_epochs': must be at least 0",
                    "weight_decay=-0.1": "'weight_decay': must be at least 0",
                    "min_lr=1.0": "'min_lr': 1.0 is above the peak lr", "min_crop_scale=0": "'min_crop_scale'",
                    "min_crop_scale=1.5": "'min_crop_scale'", "mask_ratio=1": "'mask_ratio'",
                    "warmup_epochs=100": "more than epochs", "beta2=1.0": "'beta2'", "clip_grad=0": "'clip_grad'",
                    "num_workers=-2": "'num_workers'", "drop_path=-0.1": "'drop_path'", "device=tpu": "'device'",
                    "lr=[1,": "cannot be parsed", "device=cuda": "CUDA is not available"}
    for override, words in out_of_range.items():
        code, err = _cli(["pretrain", override], capsys)
        assert code == 2 and words in err and "Traceback" not in err, (override, err)
    for override, words in {"label_smoothing=1": "'label_smoothing'", "layer_decay=0": "'layer_decay'",
                            "mixup=-1": "'mixup'", "random_erasing=2": "'random_erasing'"}.items():
        code, err = _cli(["finetune", override], capsys)
        assert code == 2 and words in err, (override, err)
    res = run_cli("pretrain", "device=cuda", timeout=120)  # the same, through a real process
    assert res.returncode == 2 and "CUDA is not available" in res.stderr and "Traceback" not in res.stderr


def test_a_diverging_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(teacher_dir, tmp_path):
    from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
    from milan_lab.jobs.pretrain import pretrain
    from milan_lab.factory.models import create_model
    cfg = get_config("pretrain", "milan_vit-micro-p8_offline", tiny_overrides(teacher_dir, tmp_path / "nan"))
    model = create_model(cfg.model)
    calls = {"n": 0}
    real = model.forward_train

    def poisoned(images, **kw):
        out = real(images, **kw)
        calls["n"] += 1
        return out._replace(loss=out.loss * float("nan")) if calls["n"] >= 3 else out
    model.forward_train = poisoned
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite at step 3; the last good checkpoint is .*"
                                               r"step_00000002\.pt\. Try a lower lr"):
        pretrain(cfg, model=model)
    ckpt = latest_checkpoint(tmp_path / "nan" / "checkpoints")
    assert ckpt.name == "step_00000002.pt"
    assert all(torch.isfinite(v).all() for v in load_checkpoint(ckpt)["model"].values())


@pytest.mark.parametrize("failure", ["torch", "os"])
def test_a_full_disk_while_saving(failure, monkeypatch, tmp_path):
    import errno

    from milan_lab.io import checkpoints as ck
    ck.save_checkpoint(tmp_path, 1, {"w": torch.ones(1000)})
    real_save = torch.save

    def full_disk(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        if failure == "torch":
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0: file write failed")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFull, match=r"no space left on device while writing .*step_00000002\.pt \(at least 0\.0 MB needed"):
        ck.save_checkpoint(tmp_path, 2, {"w": torch.ones(1000)})
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt"]  # no temporary left behind
    assert torch.equal(ck.load_checkpoint(tmp_path / "step_00000001.pt")["w"], torch.ones(1000))


def test_stale_temporaries_of_a_killed_run_are_removed_on_resume(teacher_dir, tmp_path):
    from milan_lab.jobs.pretrain import pretrain
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    stale = out / "checkpoints" / ".step_00000004.pt.999.tmp"
    stale.write_bytes(b"x" * 1000)
    pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", tiny_overrides(teacher_dir, out, max_steps=1)))
    assert not stale.exists()


def _scene_folder(root, names, per_class=6):
    from milan_lab.data.scenes import make_scene
    i = 0
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    kept = {n: 0 for n in names}
    while min(kept.values()) < per_class:
        img, spec = make_scene(0, "test", i, 64)
        i += 1
        if spec.shape in kept and kept[spec.shape] < per_class:
            Image.fromarray(img).save(root / spec.shape / f"{i}.png")
            kept[spec.shape] += 1
    return root


def test_test_command_maps_labels_by_class_name(tmp_path):
    from milan_lab import get_model, inference_model
    from milan_lab.zoo import evaluate_folder
    model = get_model(SHIPPED_FT, pretrained=True)
    data = _scene_folder(tmp_path / "data", ["star", "circle", "triangle"])  # sorted order is not the model's
    expected = np.mean([inference_model(model, str(p))["pred_class"] == p.parent.name for p in data.rglob("*.png")])
    result = evaluate_folder(model, str(data))
    assert result["label_mapping"] == "by class name" and result["images"] == 18
    assert result["top1"] == pytest.approx(expected) and expected > 0.5
    (tmp_path / "data" / "blob").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "data" / "blob" / "x.png")
    with pytest.raises(ValueError, match=r"match none of the model's classes: \['blob'\]"):
        evaluate_folder(model, str(data))
    renamed = _scene_folder(tmp_path / "other", ["star", "circle"])
    for i, d in enumerate(sorted(renamed.iterdir())):
        d.rename(renamed / f"class_{i}")
    with pytest.raises(ValueError, match="2 class sub-folders but the model predicts 8 classes"):
        evaluate_folder(model, str(renamed))


def test_predict_and_test_go_on_past_bad_files(tmp_path):
    data = _scene_folder(tmp_path / "data", ["star", "ring"], per_class=3)
    (data / "star" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 50)
    good = sorted(str(p) for p in data.rglob("*.png") if p.name != "corrupt.png")
    res = run_cli("predict", SHIPPED_FT, good[0], str(data / "star" / "corrupt.png"), good[1])
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert good[0] in res.stdout and good[1] in res.stdout and "corrupt.png" not in res.stdout
    assert "skipped" in res.stderr and "corrupt.png: not a readable image" in res.stderr
    res = run_cli("test", SHIPPED_FT, "--data", str(data))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    result = json.loads(res.stdout)
    assert result["images"] == 6 and result["skipped"] == 1 and "corrupt.png" in res.stderr


def test_exif_orientation_is_applied_everywhere(tmp_path):
    from milan_lab.data.datasets import CaptionPairs, ClassFolder
    from milan_lab.data.images import load_image
    img = Image.new("RGB", (80, 40), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 40, 40))  # blue on the left half of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    (tmp_path / "cls" / "a").mkdir(parents=True)
    img.save(tmp_path / "cls" / "a" / "portrait.jpg", exif=exif.tobytes(), quality=95)
    path = tmp_path / "cls" / "a" / "portrait.jpg"
    upright = load_image(str(path))
    assert upright.size == (40, 80)
    assert np.asarray(upright)[2, 20, 2] > 200  # blue is now at the top
    assert ClassFolder(str(tmp_path / "cls"))[0][0].size == (40, 80)
    (tmp_path / "cls" / "a" / "captions.csv").write_text("image,caption\nportrait.jpg,a red square\n")
    assert CaptionPairs(str(tmp_path / "cls" / "a"))[0][0].size == (40, 80)
    from milan_lab.viz.panels import Explorer
    shown, _ = Explorer._views(str(path), 64)
    assert shown[5, 128, 2] > 0.8 and shown[250, 128, 0] > 0.8  # app's view: blue on top, red below
    assert shown[128, 5, 0] > 0.8 or shown[128, 5, 2] < 0.5  # (sideways, blue would be on the left)


def test_identical_requests_give_identical_pictures():
    from milan_lab.viz import maps
    from milan_lab.viz.panels import Explorer
    ex = Explorer.from_defaults()
    from milan_lab.data.scenes import make_scene
    scene = make_scene(0, "test", 3, 128)[0]
    a = ex.reconstruction(scene, "semantic", 0.75, 7, ["a star"])
    b = ex.reconstruction(scene, "semantic", 0.75, 7, ["a star"])
    for key in ("pca_target", "pca_pred", "cosine", "text_pred"):
        assert np.array_equal(a[key], b[key]), key
    t = torch.randn(64, 32)
    first = maps.pca_rgb(t, t + 0.1)
    for _ in range(3):
        again = maps.pca_rgb(t, t + 0.1)
        assert all(np.array_equal(x, y) for x, y in zip(first, again))


def test_bad_image_types_are_badimage():
    from milan_lab.data.images import load_image
    with pytest.raises(BadImage, match="no such file"):
        load_image("/nonexistent/x.png")


def test_config_error_is_a_value_error_for_old_callers():
    with pytest.raises(ConfigError):
        get_config("pretrain", overrides=["epochs=0"])
    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointError, ValueError)
