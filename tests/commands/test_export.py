"""``milan-lab export``: the format follows the file's extension (an unknown one is one line naming it, before
anything is written), and a full disk is one line with nothing left behind."""
import torch

from tests.helpers import SHIPPED, call_cli


def test_export_format_follows_the_extension(tmp_path, capsys):
    code, _, err = call_cli(["export", SHIPPED, "--timm", str(tmp_path / "out.onnx")], capsys)
    assert code == 2 and "out.onnx" in err and "'.onnx'" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.onnx").exists()
    for name in ("out.safetensors", "out.pth"):
        assert call_cli(["export", SHIPPED, "--timm", str(tmp_path / name)], capsys)[0] == 0
    from milan_lab.io.weights import read_weights
    assert torch.equal(read_weights(tmp_path / "out.safetensors")["pos_embed"], read_weights(tmp_path / "out.pth")["pos_embed"])


def test_a_really_full_disk_through_export(small_disk, capsys):
    (small_disk / "filler").write_bytes(b"0" * (1024 * 1024 - 300 * 1024))
    code, _, err = call_cli(["export", SHIPPED, "--timm", str(small_disk / "enc.safetensors")], capsys)
    assert code == 2 and "no space left on device" in err and "enc.safetensors" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
