"""Each config field is declared once (type, default, range or choices, help): the config's check, --help,
the notebooks' parameter checks and the explorer's sliders all read that declaration."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from milan_lab.config import (
    JOBS, ModelConfig, Options, PretrainConfig, TeacherTrainConfig, apply_overrides, describe, get_config, option, option_of,
)
from milan_lab.errors import ConfigError
from milan_lab.tools import notebook
from tests.helpers import call_cli

PRESET = "milan_vit-tiny-p8_offline"


def _notebook_check(name: str, value, notebook_name: str = "pretrain") -> None:
    """The check a notebook's first cell makes of one job parameter."""
    notebook._spec()[notebook_name][name](name, value)


def _help_line(out: str, key: str) -> str:
    """The range-and-help line under ``key``'s row in a job's --help."""
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split() and line.split()[0] == key)
    return lines[row + 1]


def test_a_bound_declared_once_is_enforced_by_the_config_the_notebooks_and_help(monkeypatch, capsys):
    get_config("pretrain", PRESET, ["mask_ratio=0.85"])
    _notebook_check("mask_ratio", 0.85)
    monkeypatch.setattr(option_of(ModelConfig, "mask_ratio"), "lt", 0.8)  # the one declaration, changed
    with pytest.raises(ConfigError, match="'mask_ratio'.*0.8"):
        get_config("pretrain", PRESET, ["mask_ratio=0.85"])
    with pytest.raises(ConfigError, match="parameter 'mask_ratio'.*0.8"):
        _notebook_check("mask_ratio", 0.85)
    with pytest.raises(ConfigError, match="parameter 'mask_ratio'"):
        _notebook_check("mask_ratio", 0.85, "tour")
    get_config("pretrain", PRESET, ["mask_ratio=0.7"])
    _notebook_check("mask_ratio", 0.7)
    with pytest.raises(SystemExit):
        call_cli(["pretrain", "--help"], capsys)
    assert _help_line(capsys.readouterr().out, "model.mask_ratio").split()[:3] == ["in", "[0,", "0.8);"]


def test_changed_choices_are_followed_by_the_config_and_the_notebooks(monkeypatch):
    monkeypatch.setattr(option_of(PretrainConfig, "offline_variant"), "choices", ("dense",))
    with pytest.raises(ConfigError, match="'offline_variant'.*sparse"):
        get_config("pretrain", PRESET, ["offline_variant=sparse"])
    monkeypatch.setattr(option_of(PretrainConfig, "seed"), "ge", 5)
    with pytest.raises(ConfigError, match="parameter 'seed'.*at least 5|parameter 'seed'.*\\[5,"):
        _notebook_check("seed", 3, "finetune")
    with pytest.raises(ConfigError, match="'seed'"):
        get_config("finetune", PRESET, ["seed=3"])


def test_notebook_job_parameters_take_the_fields_types_and_none_keeps_the_preset():
    for name, value in (("epochs", 2.5), ("batch_size", True), ("resume", "yes"), ("lr", "0.1"), ("epochs", 0)):
        with pytest.raises(ConfigError, match=f"parameter '{name}'"):
            _notebook_check(name, value)
    for name, value in (("epochs", None), ("lr", 1), ("lr", 5e3), ("sampler", "random"), ("max_steps", None)):
        _notebook_check(name, value)  # an int is a number; lr has no upper bound in the config
    with pytest.raises(ConfigError, match="parameter 'eval_size'"):
        _notebook_check("eval_size", 0, "linear_probe")


def test_a_subclass_that_changes_a_default_keeps_the_range():
    assert option_of(PretrainConfig, "epochs") is option_of(JOBS["finetune"], "epochs")
    assert PretrainConfig().epochs != JOBS["finetune"]().epochs
    with pytest.raises(ConfigError, match="'epochs': must be positive"):
        get_config("pretrain", PRESET, ["epochs=0"])


def test_every_job_option_declares_its_help():
    for cls in (*JOBS.values(), TeacherTrainConfig):
        for f in dataclasses.fields(cls):
            if f.name in ("preset", "model"):
                continue
            assert option_of(cls, f.name) is not None and option_of(cls, f.name).help, (cls.__name__, f.name)
    for f in dataclasses.fields(ModelConfig):
        assert option_of(ModelConfig, f.name).help, f.name


def test_a_toy_configs_declarations_drive_its_check_and_its_description():
    @dataclass
    class Toy(Options):
        rate: float = option(0.5, gt=0, le=1, help="a share")
        steps: int | None = option(None, ge=1, help="how many")
        kind: str = option("a", choices=("a", "b"), help="which")

    Toy().validate()
    with pytest.raises(ConfigError, match="'rate': must be in \\(0, 1\\]"):
        Toy(rate=0.0).validate()
    with pytest.raises(ConfigError, match="'steps': must be at least 1 \\(or none\\)"):
        Toy(steps=0).validate()
    with pytest.raises(ConfigError, match="'kind'"):
        apply_overrides(Toy(), ["kind=c"]).validate()
    with pytest.raises(ConfigError, match="'rate': must be a finite number"):
        Toy(rate=float("nan")).validate()
    rows = {row[0]: row[1:] for row in describe(Toy, details=True)}
    assert rows["rate"] == ("float", 0.5, "in (0, 1]", "a share")
    assert rows["steps"] == ("int | None", None, "at least 1 or none", "how many")
    assert rows["kind"] == ("{a,b}", "a", "", "which")
    assert option_of(Toy, "rate").span(0.1) == (0.1, 1)


def test_help_shows_each_options_range_and_help(capsys):
    with pytest.raises(SystemExit):
        call_cli(["pretrain", "--help"], capsys)
    out = capsys.readouterr().out
    assert _help_line(out, "seed").startswith("  ") and "in [0, 2**32);" in _help_line(out, "seed")
    assert "positive;" in _help_line(out, "epochs") and "at least 1 or none;" in _help_line(out, "max_steps")
    assert "share of the patches masked" in _help_line(out, "model.mask_ratio")


def test_the_sliders_end_where_the_configs_mask_ratio_range_ends():
    from milan_lab.app_blocks import MASK_RATIOS
    assert MASK_RATIOS == (0, 0.95)  # [0, 1) in steps of 0.05
    assert option_of(ModelConfig, "mask_ratio").admits(MASK_RATIOS[1])
    assert not option_of(ModelConfig, "mask_ratio").admits(MASK_RATIOS[1] + 0.05)


# -- teacher training's config -------------------------------------------------------------------------------
def test_teacher_config_lives_beside_the_others_with_a_key_that_does_not_shadow_model():
    from milan_lab.jobs import teacher
    assert teacher.TeacherTrainConfig is TeacherTrainConfig
    assert "model" not in {f.name for f in dataclasses.fields(TeacherTrainConfig)}
    assert apply_overrides(TeacherTrainConfig(), ["clip_model=ViT-B-32"]).clip_model == "ViT-B-32"
    with pytest.raises(ConfigError, match="'model'.*'clip_model'") as refused:
        apply_overrides(TeacherTrainConfig(), ["model=ViT-B-32"])
    assert len(str(refused.value).splitlines()) == 1


def test_the_teacher_command_refuses_the_old_key_in_one_line_naming_the_new(capsys):
    code, _, err = call_cli(["teacher", "train", "model=milan-clip-tiny"], capsys)
    assert code == 2 and "clip_model" in err and len(err.strip().splitlines()) == 1


def test_teacher_options_are_checked_from_their_declarations():
    for key, value in (("steps", 0), ("caption_drop", 1.5), ("threads", -1), ("warmup_steps", -1), ("captions", "some")):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            apply_overrides(TeacherTrainConfig(), {key: value}).validate()
    with pytest.raises(ConfigError, match="group_size"):
        TeacherTrainConfig(batch_size=20, group_size=8).validate()


def test_teacher_train_help_lists_its_options_with_ranges(capsys):
    with pytest.raises(SystemExit):
        call_cli(["teacher", "train", "--help"], capsys)
    out = capsys.readouterr().out
    assert "milan-clip-tiny" in out.split("clip_model", 1)[1].splitlines()[0]
    assert "in [0, 1];" in _help_line(out, "caption_drop")
    assert not any(line.split()[:1] == ["model"] for line in out.splitlines())


@pytest.mark.parametrize("make, key", [
    (lambda: TeacherTrainConfig(steps=None), "steps"),
    (lambda: dataclasses.replace(PretrainConfig(), epochs=None), "epochs"),
    (lambda: PretrainConfig(model=dataclasses.replace(ModelConfig(), mask_ratio=None)), "mask_ratio"),
    (lambda: PretrainConfig(model=None), "model"),
])
def test_none_set_in_code_is_refused_for_a_field_that_is_not_optional(make, key):
    with pytest.raises(ConfigError, match=rf"'{key}'.*got None"):
        make().validate()
    PretrainConfig(max_steps=None, clip_grad=None, lr=None).validate()  # the optional ones take None


@pytest.mark.parametrize("value", [["bf16"], []])
def test_a_list_is_no_value_of_a_field_of_one_choice(value):
    with pytest.raises(ConfigError, match="'precision'"):
        TeacherTrainConfig(precision=value).validate()
    with pytest.raises(ConfigError, match="'sampler'"):
        PretrainConfig(model=dataclasses.replace(ModelConfig(), sampler=value)).validate()
    with pytest.raises(ConfigError, match="'logger'"):  # a list field takes a list of its choices, not one name
        TeacherTrainConfig(logger="tensorboard").validate()
    TeacherTrainConfig(logger=["tensorboard", "mlflow"]).validate()
    TeacherTrainConfig(logger=[]).validate()
