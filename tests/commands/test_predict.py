"""``milan-lab predict`` and ``milan-lab test`` go on past files they cannot use (unreadable, too small),
naming each on stderr and exiting 1; the API refuses a too-small image as BadImage."""
import json

import pytest
from PIL import Image

from milan_lab.errors import BadImage
from tests.helpers import SHIPPED_FT, call_cli, scene_folder


def test_predict_and_test_go_on_past_bad_files(tmp_path, capsys):
    # in this process: `python -m milan_lab` in a fresh interpreter is tested in tests/commands/test_cli.py (help, bad keys)
    data = scene_folder(tmp_path / "data", ["star", "ring"], per_class=3)
    (data / "star" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 50)
    good = sorted(str(p) for p in data.rglob("*.png") if p.name != "corrupt.png")
    code, out, err = call_cli(["predict", SHIPPED_FT, good[0], str(data / "star" / "corrupt.png"), good[1]], capsys)
    assert code == 1 and "Traceback" not in err
    assert good[0] in out and good[1] in out and "corrupt.png" not in out
    assert "skipped" in err and "corrupt.png" in err
    code, out, err = call_cli(["test", SHIPPED_FT, "--data", str(data)], capsys)
    assert code == 1 and "Traceback" not in err
    result = json.loads(out)
    assert result["images"] == 6 and result["skipped"] == 1 and "corrupt.png" in err


@pytest.mark.parametrize("side", [1, 3, 15])
def test_tiny_images_are_refused_by_predict_test_and_the_api(side, tmp_path, capsys):
    from milan_lab.zoo import get_model, inference_model
    Image.new("RGB", (side, side), (200, 10, 10)).save(tmp_path / "tiny.png")
    code, out, err = call_cli(["predict", SHIPPED_FT, str(tmp_path / "tiny.png")], capsys)
    assert code == 1 and out == "" and "tiny.png" in err and f"({side}x{side})" in err, err
    with pytest.raises(BadImage, match="too small"):
        inference_model(get_model(SHIPPED_FT, pretrained=True), str(tmp_path / "tiny.png"))
    folder = tmp_path / "data" / "circle"
    folder.mkdir(parents=True)
    (tmp_path / "tiny.png").rename(folder / "tiny.png")
    from milan_lab.data.scenes import make_scene
    Image.fromarray(make_scene(0, "val", 0, 64)[0]).save(folder / "scene.png")
    code, out, err = call_cli(["test", SHIPPED_FT, "--data", str(tmp_path / "data")], capsys)
    result = json.loads(out[:out.rindex("}") + 1])
    assert code == 1 and result["images"] == 1 and result["skipped"] == 1 and "tiny.png" in err, err
