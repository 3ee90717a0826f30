"""Files that are not checkpoints (text, CSV, JSON, images, truncated weights, random bytes) get one
CheckpointError naming the file and what it looks like, through every reader and the CLI.

The unpicklers fail differently on different bytes, so the corpus holds many random files with
fixed seeds, not one: a single random file passes by luck about nine times in ten."""
import io
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from milan_lab.errors import CheckpointError
from tests.helpers import ASSETS, SHIPPED_FT, call_cli

PRESET = "milan_vit-tiny-p8_offline"
# file name -> words its message must hold (random files: only "not a checkpoint" or "truncated")
DESCRIBED = {"metrics.csv": "a CSV text file", "notes.txt": "a text file", "config.json": "a JSON text file",
             "empty.pth": "empty", "scene.png": "a PNG image", "photo.jpg": "a JPEG image",
             "half.safetensors": "truncated", "half_zip.pt": "truncated", "half_legacy.pt": "truncated"}


def _image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _torch_bytes(**kw) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": {"encoder.cls_token": torch.zeros(1, 1, 192), "w": torch.ones(64, 64)}}, buf, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[Path, str]:
    """Each non-checkpoint file, with the words its message must contain."""
    d = tmp_path_factory.mktemp("not_checkpoints")
    shipped = (ASSETS / "milan_tiny_offline.safetensors").read_bytes()
    contents = {"metrics.csv": b"step,loss,lr\n1,0.91,0.001\n2,0.87,0.001\n3,0.85,0.001\n",
                "notes.txt": "pretraining notes: loss went down \u2713\n".encode(), "config.json": b'{"epochs": 3}\n',
                "empty.pth": b"", "scene.png": _image_bytes("PNG"), "photo.jpg": _image_bytes("JPEG"),
                "half.safetensors": shipped[:len(shipped) // 2], "half_zip.pt": (z := _torch_bytes())[:len(z) // 2],
                "half_legacy.pt": (p := _torch_bytes(_use_new_zipfile_serialization=False))[:len(p) // 2]}
    words = dict(DESCRIBED)
    prefixes = [b"", b"\x80", b"\x80\x02", b"\x80\x04", b"PK\x03\x04"]  # plain, pickle-like, zip-like
    for seed in range(50):
        rng = random.Random(seed)
        name = f"random_{seed}" + (".safetensors" if seed % 7 == 0 else ".pth")
        contents[name] = prefixes[seed % len(prefixes)] + rng.randbytes(rng.randint(1, 3000))
        words[name] = "not a checkpoint|truncated"
    for name, data in contents.items():
        (d / name).write_bytes(data)
    return {d / name: words[name] for name in contents}


def _refused(call, path: Path, words: str) -> None:
    with pytest.raises(CheckpointError) as info:
        call(str(path))
    message = str(info.value)
    assert path.name in message and len(message.splitlines()) == 1, message
    assert any(w in message for w in words.split("|")), message
    assert "weights_only=False" not in message, message


def test_non_checkpoint_files_name_what_they_are(corpus):
    from milan_lab.io.weights import read_weights
    for path, words in corpus.items():
        _refused(read_weights, path, words)
    d = next(iter(corpus)).parent
    assert "not a checkpoint (a CSV text file)" in _message(read_weights, d / "metrics.csv")
    assert "not a checkpoint (unreadable: random bytes?)" in _message(read_weights, d / "random_1.pth")


def _message(call, path) -> str:
    with pytest.raises(CheckpointError) as info:
        call(str(path))
    return str(info.value)


def test_every_reader_refuses_the_corpus(corpus):
    from milan_lab import get_model, load_teacher
    from milan_lab.evaluation.probes import knn_eval
    from milan_lab.factory.models import load_encoder_weights, load_model
    from milan_lab.models.classifier import MILANClassifier
    from milan_lab.config import get_config
    classifier = MILANClassifier(get_config("finetune", PRESET).model, 9, "finetune")
    readers = {"knn_eval": lambda p: knn_eval(p, PRESET, 8, 8), "load_model": load_model,
               "get_model": lambda p: get_model(SHIPPED_FT, pretrained=p), "load_teacher": load_teacher,
               "load_teacher(pretrained=)": lambda p: load_teacher(pretrained=p),
               "finetune checkpoint": lambda p: load_encoder_weights(classifier, p)}
    for path, words in corpus.items():
        for name, reader in readers.items():
            try:
                _refused(reader, path, words)
            except BaseException as e:  # name the reader and file that failed
                raise AssertionError(f"{name} on {path.name}: {type(e).__name__}: {e}") from None


def test_a_bad_parse_of_a_well_formed_header_is_still_one_line(tmp_path):
    from milan_lab.io.weights import read_weights
    bad_config = tmp_path / "bad_meta.safetensors"  # valid tensors, metadata 'config' that is no JSON
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(bad_config), metadata={"config": "{not json"})
    _refused(read_weights, bad_config, "safetensors")


def test_cli_refuses_a_csv_and_random_bytes_in_one_line(corpus, capsys):
    # in this process: the CLI's own refusal in a fresh interpreter is tested in tests/commands/test_cli.py
    d = next(iter(corpus)).parent
    for argv in (["knn", str(d / "metrics.csv")], ["attention", str(d / "random_1.pth")]):
        name = Path(argv[1]).name
        code, _, err = call_cli(argv, capsys)
        assert code == 2, (argv, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"milan-lab {argv[0]}: error:") and name in lines[0], err


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """One of each kind of bad checkpoint file, with the words its message must contain."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.pt").write_bytes(b"")
    good = d / "good.pt"
    torch.save({"model": {"encoder.cls_token": torch.zeros(1, 1, 4)}}, good)
    (d / "truncated.pt").write_bytes(good.read_bytes()[:300])
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    with open(d / "evil.pt", "wb") as f:
        pickle.dump({"model": _RunsCode()}, f)
    torch.save({"model": _RunsCode()}, d / "evil_zip.pt")
    return {"empty.pt": "empty", "truncated.pt": "truncated or not a checkpoint",
            "random.pt": "not a checkpoint", "evil.pt": "refused for safety", "evil_zip.pt": "refused for safety"}, d


def test_bad_checkpoint_files_through_every_command(bad_files, capsys, tmp_path):
    cases, d = bad_files
    for name, words in cases.items():
        path = str(d / name)
        commands = [["knn", path], ["export", path, "--timm", str(tmp_path / "x.safetensors")],
                    ["predict", SHIPPED_FT, "img.png", "--pretrained", path],
                    ["test", SHIPPED_FT, "--data", str(tmp_path), "--pretrained", path],
                    ["finetune", f"checkpoint={path}", f"output_dir={tmp_path / 'ft'}", "progress=false"],
                    ["linear-probe", f"checkpoint={path}", f"output_dir={tmp_path / 'lp'}", "progress=false"],
                    ["app", "--checkpoint", path]]
        for argv in commands:
            code, _, err = call_cli(argv, capsys)
            assert code == 2, (argv, err)
            assert words in err and name in err and "Traceback" not in err, (argv, err)
            assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ft" / "checkpoints").exists()  # refused before any training


def test_bad_checkpoint_files_through_the_api(bad_files):
    from milan_lab import get_model, load_teacher
    cases, d = bad_files
    for name, words in cases.items():
        with pytest.raises(CheckpointError, match=words):
            get_model(SHIPPED_FT, pretrained=str(d / name))
        with pytest.raises(CheckpointError, match=words):
            load_teacher(pretrained=str(d / name))
