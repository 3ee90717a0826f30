import json

from tests.helpers import run_cli


def test_info_vit_b16_reports_the_runnable_count():
    res = run_cli("info", "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k", "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout)
    assert round(info["params_total_without_teacher"] / 1e6, 2) == 111.78
    assert round(info["params_encoder"] / 1e6, 2) == 85.80 and round(info["params_decoder"] / 1e6, 2) == 25.98
    assert round(info["params_classifier"] / 1e6, 2) == 86.57
    assert 17.4 < info["gmacs_classifier"] < 17.7  # paper: 17.58 (mmcv also counts norms and activations)
    assert info["params_teacher"] > 80e6  # the ViT-B/16 CLIP image tower, built without weights


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
