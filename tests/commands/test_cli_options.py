"""The command line's options: --help shows the defaults a run gets from its preset; unknown keys and
config-file problems are one line with the closest known name."""
import re

import pytest

from milan_lab.cli import main

BASE = "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k"


def _help_defaults(capsys, *argv) -> dict[str, str]:
    """The ``default:`` column of a job's --help, by key."""
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    assert done.value.code == 0
    out = capsys.readouterr().out
    return dict(re.findall(r"^  (\S+)\s+.*?default: (.*)$", out, re.M))


def test_pretrain_help_shows_the_default_presets_values(capsys):
    d = _help_defaults(capsys, "pretrain", "--help")
    assert (d["batch_size"], d["model.image_size"], d["model.depth"], d["model.teacher"]) == ("64", "64", "6", "'shipped'")
    assert (d["teacher_cache"], d["base_lr"], d["output_dir"]) == ("True", "0.003", "'outputs/pretrain'")
    assert d["preset"] == "'milan_vit-tiny-p8_offline'"


@pytest.mark.parametrize("argv", [("pretrain", "--preset", BASE, "--help"), ("pretrain", "-h", "--preset", BASE),
                                  ("pretrain", f"--preset={BASE}", "-h")])
def test_help_shows_the_chosen_presets_values_wherever_preset_stands(capsys, argv):
    d = _help_defaults(capsys, *argv)
    assert (d["batch_size"], d["model.image_size"], d["model.depth"], d["model.teacher"]) == ("4096", "224", "12",
                                                                                             "'ViT-B-16'")
    assert (d["teacher_cache"], d["base_lr"], d["epochs"]) == ("False", "0.00015", "400")


def test_finetune_and_linear_probe_help_show_their_presets_values(capsys):
    ft = _help_defaults(capsys, "finetune", "--preset", "milan_vit-micro-p8_offline", "--help")
    assert (ft["epochs"], ft["batch_size"], ft["model.embed_dim"], ft["model.drop_path"]) == ("2", "64", "96", "0.1")
    assert ft["output_dir"] == "'outputs/finetune'" and "model.sampler" not in ft
    lp = _help_defaults(capsys, "linear-probe", "--help")
    assert (lp["epochs"], lp["batch_size"], lp["base_lr"], lp["model.embed_dim"]) == ("10", "256", "0.1", "192")
    assert lp["output_dir"] == "'outputs/linear'" and "model.drop_path" not in lp


def test_an_unknown_key_on_the_command_line_suggests_the_closest(capsys):
    assert main(["pretrain", "epoch=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown config key 'epoch'" in err and "did you mean 'epochs'?" in err and len(err.splitlines()) == 1
    assert main(["finetune", "model.drop_pth=0.2"]) == 2
    assert "did you mean 'model.drop_path'?" in capsys.readouterr().err


def test_a_bad_config_file_is_one_line_naming_file_and_section(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    for text, expected in (("pretrian:\n  epochs: 3\n", "unknown section 'pretrian' (did you mean 'pretrain'?)"),
                           ("pretrain:\n  - epochs: 3\n", "section 'pretrain' must be a mapping of options"),
                           ("pretrain:\n  epochs: &e 3\n  seed: *e\n", "YAML aliases")):
        path.write_text(text)
        assert main(["pretrain", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("milan-lab pretrain: error: ") and str(path) in err and expected in err
        assert len(err.splitlines()) == 1


def test_job_help_lists_only_the_options_the_job_uses():
    from milan_lab.cli import build_parser
    text = build_parser()._subparsers._group_actions[0].choices["linear-probe"].format_help()
    assert "model.embed_dim" in text and "model.sampler" not in text and "model.drop_path" not in text
    text = build_parser()._subparsers._group_actions[0].choices["finetune"].format_help()
    assert "model.drop_path" in text and "model.decoder" not in text
