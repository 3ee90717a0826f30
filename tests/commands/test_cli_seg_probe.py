"""``milan-lab seg-probe --data FOLDER``: a bad folder is one line naming the file before any training, and
validation labels no training class has are reported (on stderr and in --json), not silently scored."""
import json

import numpy as np
import pytest
from PIL import Image

from milan_lab.data.segmentation import IGNORE, seg_folder_splits
from tests.helpers import MICRO, ade_folder, call_cli


def test_seg_probe_cli_refuses_a_bad_folder_before_training(tmp_path, capsys):
    root = ade_folder(tmp_path / "ade")
    Image.fromarray(np.ones((40, 48), np.uint8)).save(root / "annotations" / "validation" / "ADE_1.png")
    code, _, err = call_cli(["seg-probe", "random", "--preset", MICRO, "--data", str(root), "--steps", "2", "--no-save"],
                            capsys)
    assert code == 2 and err.count("\n") == 1 and "ADE_1.png" in err and "Traceback" not in err, err


def test_validation_labels_no_class_has_are_reported_not_hidden(tmp_path, capsys):
    root = ade_folder(tmp_path / "ade")
    ann = np.zeros((64, 64), np.uint8)
    ann[:, 32:] = 2
    ann[:8, :8] = 250   # a value the training split (classes 1-3) never holds
    Image.fromarray(ann).save(root / "annotations" / "validation" / "ADE_0.png")
    train, val = seg_folder_splits(str(root), image_size=64)
    assert val.num_classes == 3 and val.unknown_labels == {250: 64}
    assert set(val[0][1].unique().tolist()) == {1, IGNORE}
    code, out, err = call_cli(["seg-probe", "random", "--preset", MICRO, "--data", str(root), "--steps", "2", "--no-save",
                               "--json"], capsys)
    assert code == 0
    out = json.loads(out)
    assert "64 validation pixels (0.52 %)" in err and "(250)" in err, err
    assert out["ignored_val_pixels"] == {"values": [250], "pixels": 64, "share": pytest.approx(64 / (3 * 64 * 64))}
