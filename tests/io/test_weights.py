"""The weights reader (io/weights.py): safetensors headers whose length bytes look like a pickle, a checkpoint of
another architecture or missing a tensor refused naming the file and the tensors, and the temporaries a killed
write left removed on resume."""
import pytest
import torch

from milan_lab.config import get_config
from milan_lab.errors import CheckpointError
from tests.helpers import MICRO, SHIPPED_FT, call_cli, tiny_overrides


def _safetensors_with_header(length: int) -> bytes:
    """A real safetensors file (safetensors' own writer) whose JSON header is ``length`` bytes long,
    reached by padding a metadata string."""
    from safetensors.torch import save
    tensors = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}

    def header_len(pad: int) -> tuple[int, bytes]:
        data = save(tensors, metadata={"pad": "x" * pad})
        return int.from_bytes(data[:8], "little"), data

    base, _ = header_len(0)
    for pad in range(max(0, length - base - 16), length - base + 16):
        n, data = header_len(pad)
        if n == length:
            return data
    raise AssertionError(f"no padding gives a {length}-byte header")


@pytest.mark.parametrize("length", [640, 896, 1152, 1408])
def test_safetensors_whose_header_length_starts_like_a_pickle_is_read(tmp_path, length):
    from milan_lab.io.weights import read_weights, sniff_format
    data = _safetensors_with_header(length)
    assert data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # what made it look like a pickle
    path = tmp_path / "weights.safetensors"
    path.write_bytes(data)
    assert sniff_format(path) == "safetensors"
    state = read_weights(path)
    assert torch.equal(state["w"], torch.arange(6, dtype=torch.float32).reshape(2, 3))


def test_checkpoint_of_another_architecture_or_missing_a_key(tmp_path, capsys):
    from milan_lab import get_model
    from milan_lab.io.weights import save_weights
    from milan_lab.models.classifier import MILANClassifier
    other = get_config("finetune", MICRO).model
    model = MILANClassifier(other, 8, "finetune")
    save_weights(tmp_path / "micro.pt", model.state_dict())
    with pytest.raises(CheckpointError, match=r"micro\.pt") as refused:
        get_model(SHIPPED_FT, pretrained=str(tmp_path / "micro.pt"))
    message = str(refused.value)  # the tensors that differ, with their shapes in the file and here
    assert "encoder." in message and "[1, 65, 96]" in message and "[1, 65, 192]" in message, message
    big = get_model(SHIPPED_FT).state_dict()
    big.pop("head.bias")
    save_weights(tmp_path / "missing.pt", big)
    with pytest.raises(CheckpointError, match=r"missing\.pt.*head\.bias"):
        get_model(SHIPPED_FT, pretrained=str(tmp_path / "missing.pt"))
    code, _, err = call_cli(["predict", SHIPPED_FT, "x.png", "--pretrained", str(tmp_path / "micro.pt")], capsys)
    assert code == 2 and "micro.pt" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_stale_temporaries_of_a_killed_run_are_removed_on_resume(teacher_dir, tmp_path):
    from milan_lab.jobs.pretrain import pretrain
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    stale = out / "checkpoints" / ".step_00000004.pt.999.tmp"
    stale.write_bytes(b"x" * 1000)
    pretrain(get_config("pretrain", MICRO, tiny_overrides(teacher_dir, out, max_steps=1)))
    assert not stale.exists()
