"""Config errors through the CLI: a YAML syntax error names its file and line, an out-of-range value names its
key, an option the job does not use is refused naming it; each is one line (exit 2) before any work, and
ConfigError stays a ValueError for older callers."""
import pytest

from milan_lab.config import get_config
from milan_lab.errors import CheckpointError, ConfigError
from tests.helpers import call_cli, run_cli


def test_config_errors_are_one_line(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("epochs: 3\nbatch_size: [1, 2\nlr: 0.1\n")
    code, _, err = call_cli(["pretrain", "--config", str(bad_yaml)], capsys)
    assert code == 2 and f"{bad_yaml}:3:" in err and "YAML" in err and "Traceback" not in err
    named = {"warmup_epochs=-1": "'warmup_epochs'", "weight_decay=-0.1": "'weight_decay'", "min_lr=1.0": "'min_lr'",
             "min_crop_scale=0": "'min_crop_scale'", "min_crop_scale=1.5": "'min_crop_scale'",
             "mask_ratio=1": "'mask_ratio'", "warmup_epochs=100": "epochs", "beta2=1.0": "'beta2'",
             "clip_grad=0": "'clip_grad'", "num_workers=-2": "'num_workers'", "drop_path=-0.1": "'drop_path'",
             "device=tpu": "'device'", "lr=[1,": "lr", "device=cuda": "CUDA"}
    for override, key in named.items():
        code, _, err = call_cli(["pretrain", override], capsys)
        assert code == 2 and key in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (override, err)
    for override, key in {"label_smoothing=1": "'label_smoothing'", "layer_decay=0": "'layer_decay'",
                          "mixup=-1": "'mixup'", "random_erasing=2": "'random_erasing'"}.items():
        code, _, err = call_cli(["finetune", override], capsys)
        assert code == 2 and key in err and len(err.strip().splitlines()) == 1, (override, err)
    res = run_cli("pretrain", "device=cuda", timeout=120)  # the same, through a real process
    assert res.returncode == 2 and "CUDA" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("command, option, key, job", [
    ("finetune", "sampler=random", "sampler", "fine-tuning"),
    ("finetune", "decoder=mae", "decoder", "fine-tuning"),
    ("finetune", "model.target=pixels", "target", "fine-tuning"),
    ("finetune", "mask_ratio=0.5", "mask_ratio", "fine-tuning"),
    ("finetune", "teacher=ViT-B-16", "teacher", "fine-tuning"),
    ("linear-probe", "decoder=mae", "decoder", "linear probing"),
    ("linear-probe", "drop_path=0.3", "drop_path", "linear probing"),
])
def test_an_option_the_job_does_not_use_is_refused(command, option, key, job, capsys, tmp_path):
    code, _, err = call_cli([command, option, f"output_dir={tmp_path}"], capsys)
    assert code == 2 and key in err and job in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())  # refused before any work


def test_config_error_is_a_value_error_for_old_callers():
    with pytest.raises(ConfigError, match="epochs"):
        get_config("pretrain", overrides=["epochs=0"])
    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointError, ValueError)
