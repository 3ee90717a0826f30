import json
import subprocess
import sys

import pytest
import torch

from milan_lab.cli import main
from tests.helpers import MICRO, ROOT, call_cli, run_cli, tiny_overrides


def test_info_vit_b16_reports_the_runnable_count():
    res = run_cli("info", "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout)
    assert round(info["params_total_without_teacher"] / 1e6, 2) == 111.78
    assert round(info["params_encoder"] / 1e6, 2) == 85.80 and round(info["params_decoder"] / 1e6, 2) == 25.98
    assert round(info["params_classifier"] / 1e6, 2) == 86.57
    assert 17.4 < info["gmacs_classifier"] < 17.7  # paper: 17.58 (mmcv also counts norms and activations)
    assert info["params_teacher"] > 80e6  # the ViT-B/16 CLIP image tower, built without weights
    # the paper's cost claim: the prompting decoder updates only the mask tokens, so it is cheaper than MAE's
    by_type = info["gflops_decoder_by_type"]
    assert set(by_type) == {"prompting", "mae"} and 0 < by_type["prompting"] < by_type["mae"]
    assert by_type["prompting"] == pytest.approx(info["gflops_decoder"])


def test_help_lists_every_option_with_default():
    res = run_cli("pretrain", "--help")
    assert res.returncode == 0
    for key in ("model.mask_ratio", "epochs", "warmup_epochs", "clip_grad", "default: 0.75"):
        assert key in res.stdout


def test_bad_key_fails_before_any_work():
    res = run_cli("pretrain", "epoch=3", timeout=60)
    assert res.returncode == 2
    assert "unknown config key 'epoch'" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("finetune", "layer_decay=high", timeout=60)
    assert res.returncode == 2 and "bad value for 'layer_decay'" in res.stderr


def test_predict_and_test_commands_with_the_shipped_classifier(tmp_path, capsys):
    from PIL import Image

    from milan_lab.data.scenes import SHAPES, make_scene
    for i in range(24):
        img, spec = make_scene(0, "test", i, 64)
        folder = tmp_path / "data" / f"{SHAPES.index(spec.shape)}_{spec.shape}"  # sorted = label order
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    first = next((tmp_path / "data").rglob("*.png"))
    code, out, err = call_cli(["predict", "vit-tiny-p8_milan-pre_offline-ft", str(first)], capsys)
    assert code == 0, err[-2000:]
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 5
    code, out, err = call_cli(["test", "vit-tiny-p8_milan-pre_offline-ft", "--data", str(tmp_path / "data")], capsys)
    assert code == 0, err[-2000:]
    metrics = json.loads(out)
    assert metrics["images"] == 24 and metrics["top1"] > 0.4 and metrics["top5"] >= metrics["top1"]


def test_teacher_eval_and_knn_commands(capsys):
    code, out, err = call_cli(["teacher", "eval", "--json", "-n", "64"], capsys)
    assert code == 0, err[-2000:]
    result = json.loads(out)
    assert result["zero_shot"]["shape"] > 0.8 and result["attention_on_objects"] > 2
    code, out, err = call_cli(["knn", "random", "--train-size", "128", "--val-size", "64", "--json"], capsys)
    assert code == 0 and 0 <= json.loads(out)["knn_top1"] <= 1


def test_a_value_error_inside_torch_is_a_traceback_not_a_user_error(teacher_dir, tmp_path, monkeypatch, capsys):
    """The CLI turns only MilanLabError into one line; a ValueError from deep inside a run is a bug
    and must reach the user with its traceback (here: it propagates out of main)."""
    def broken(*args, **kwargs):
        raise ValueError("a bug deep inside torch")
    monkeypatch.setattr(torch.nn.functional, "layer_norm", broken)
    with pytest.raises(ValueError, match="a bug deep inside torch"):
        main(["pretrain", "--preset", MICRO, *tiny_overrides(teacher_dir, tmp_path / "run", max_steps=1)])
    assert "error:" not in capsys.readouterr().err


def test_the_subprocess_cli_prints_that_traceback():
    code = ("import sys, torch; from milan_lab.cli import main\n"
            "torch.nn.functional.layer_norm = lambda *a, **k: (_ for _ in ()).throw(ValueError('a bug'))\n"
            f"sys.exit(main(['info', '{MICRO}']))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr and "ValueError: a bug" in done.stderr
