"""benchmarks/hidden_object.py measures with the shipped teacher only: a preset with another teacher is one
line naming it (argparse's usage line and the error), before any work."""
import argparse
import sys

import pytest

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import hidden_object  # noqa: E402


def test_hidden_object_refuses_a_preset_with_another_teacher_in_one_line(capsys):
    assert hidden_object.shipped_teacher_preset("milan_vit-tiny-p8_offline") == "milan_vit-tiny-p8_offline"
    preset = "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k"
    with pytest.raises(argparse.ArgumentTypeError, match="ViT-B-16"):
        hidden_object.shipped_teacher_preset(preset)
    with pytest.raises(SystemExit) as exit_:
        hidden_object.main(["--preset", preset, "--scenes", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and preset in err and "shipped" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # argparse's usage line and the error
