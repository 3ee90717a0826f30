"""The command line says what it computed: probes beside a random-init encoder and chance, progress
on a terminal only, the classes a model knows, the models the zoo has, and downloads that cannot
happen refused at once naming the option that takes a local file."""
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

import numpy as np
import pytest
from PIL import Image

from milan_lab.cli import main
from milan_lab.errors import DownloadError
from tests.helpers import ROOT, SHIPPED, SHIPPED_FT, call_cli, env, run_cli

PRESET = "milan_vit-tiny-p8_offline"  # the shipped model's architecture
TINY = ["--train-size", "64", "--val-size", "64"]


def _run_on_a_terminal(*args, timeout=300) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal on stderr showed) of the CLI with stderr on a pseudo-terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size (tqdm reads it)
    proc = subprocess.Popen([sys.executable, "-m", "milan_lab", *args], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=slave, text=True)
    os.close(slave)
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO once the child has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=timeout)
    reader.join(10)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


# --- knn and seg-probe: chance, the random-init floor, progress ------------------------------------

def test_knn_prints_a_line_with_the_random_init_floor_and_chance_and_shows_progress_on_a_terminal():
    code, out, err = _run_on_a_terminal("knn", SHIPPED, *TINY)
    assert code == 0, err[-2000:]
    line = out.strip()
    assert len(line.splitlines()) == 1 and "kNN top-1" in line
    assert "random init, same architecture:" in line and "chance 12.5 % (8 classes)" in line
    assert "kNN: train features" in err and "kNN, random init: val features" in err  # the bars, on the terminal


def test_knn_json_keeps_its_fields_and_quiet_hides_the_bars():
    code, out, err = _run_on_a_terminal("knn", "random", *TINY, "--json", "--quiet")
    assert code == 0, err[-2000:]
    result = json.loads(out)
    assert 0 <= result["knn_top1"] <= 1 and result["chance"] == pytest.approx(1 / 8) and result["num_classes"] == 8
    assert "random_init" not in result  # a random encoder is its own floor
    assert "features" not in err


def test_no_bars_when_stderr_is_not_a_terminal_and_no_floor_with_no_baseline(capsys):
    assert main(["knn", SHIPPED, *TINY, "--no-baseline"]) == 0
    captured = capsys.readouterr()
    assert "features" not in captured.err and "random init" not in captured.out and "chance 12.5 %" in captured.out


def test_knn_random_init_is_the_random_encoder_of_the_same_architecture(capsys):
    assert main(["knn", SHIPPED, *TINY, "--json", "--quiet"]) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert main(["knn", "random", "--preset", PRESET, *TINY, "--json"]) == 0
    random = json.loads(capsys.readouterr().out)
    assert shipped["random_init"] == random["knn_top1"]  # same probe, sizes and seed


def test_seg_probe_reports_the_random_init_floor_and_its_chance_rule(capsys):
    from milan_lab.data.segmentation import SegScenes
    from milan_lab.evaluation.probes import format_seg_probe
    argv = ["seg-probe", SHIPPED, *TINY, "--steps", "5", "--no-save", "--quiet"]
    assert main([*argv, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["random_init"]) == {"miou", "pixel_acc"} and "background" in r["chance"]["rule"]
    labels = np.stack([SegScenes("val", 64, 64, 0)[i][1].numpy() for i in range(64)])
    background = (labels == 0).mean()
    assert r["chance"]["pixel_acc"] == pytest.approx(background)  # every pixel called background
    present = len(np.unique(labels))  # classes in the truth; the constant prediction adds none
    assert r["chance"]["miou"] == pytest.approx(background / present)
    assert main(["seg-probe", "random", "--preset", PRESET, *TINY, "--steps", "5", "--json"]) == 0
    random = json.loads(capsys.readouterr().out)
    assert r["random_init"] == {"miou": random["miou"], "pixel_acc": random["pixel_acc"]}
    text = format_seg_probe(r)  # what the command prints without --json
    assert "random init, same architecture: mIoU" in text and "chance: mIoU" in text and "'background'" in text
    assert main([*argv, "--json", "--no-baseline"]) == 0
    assert "random_init" not in json.loads(capsys.readouterr().out)


# --- predict and list-models: what a model knows, what the zoo holds -------------------------------

def test_predict_names_the_classes_the_model_knows(tmp_path, capsys):
    from milan_lab.data.scenes import SHAPES, make_scene
    Image.fromarray(make_scene(0, "test", 0, 64)[0]).save(tmp_path / "scene.png")
    code, out, err = call_cli(["predict", SHIPPED_FT, str(tmp_path / "scene.png")], capsys)
    assert code == 0, err[-2000:]
    assert out.splitlines()[0] == f"model knows 8 classes: {', '.join(SHAPES)}"


def test_an_imagenet_classifier_is_said_to_know_imagenet():
    from milan_lab.zoo import get_model, known_classes
    model = get_model("vit-base-p16_milan-pre_8xb128-coslr-100e_in1k")  # random weights: no download
    assert known_classes(model) == "model knows the 1000 ImageNet-1k classes"


def test_list_models_gives_one_line_per_model_with_kind_size_and_source(capsys):
    from milan_lab.zoo import MODELS
    assert main(["list-models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(MODELS)
    for name, line in zip(MODELS, lines):
        assert line.startswith(f"{name}: ") and " M params " in line
        entry = MODELS[name]
        if "file" in entry:
            assert f"shipped in the package (milan_lab/assets/{entry['file']})" in line
        else:
            assert f"downloaded from {entry['url']} (SHA-256 " in line
    assert "111.78 M params" in lines[0] and "top-1 85.3 %" in lines[1]  # MILAN ViT-B/16; its fine-tuned model


# --- downloads that cannot happen: at once, naming the option ---------------------------------------

def _boom(*args, **kwargs):
    raise AssertionError("reached: the model was built or a download was tried")


def test_an_offline_hub_teacher_fails_at_once_naming_the_cli_flag():
    t = time.perf_counter()
    res = run_cli("app", "--teacher", "ViT-B-16", "--teacher-pretrained", "openai", "--port", "7999", timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr[-2000:]
    assert "offline mode (HF_HUB_OFFLINE=1)" in res.stderr and "--teacher-pretrained PATH" in res.stderr
    assert "pretrained=" not in res.stderr and "Traceback" not in res.stderr
    assert time.perf_counter() - t < 100  # imports only, not the hub's retries


def test_load_teacher_offline_refuses_before_building(monkeypatch):
    import open_clip

    from milan_lab.factory import teachers
    monkeypatch.setattr(open_clip, "create_model", _boom)
    with pytest.raises(DownloadError, match="offline mode") as e:
        teachers.load_teacher("ViT-B-16", "openai")
    assert e.value.option == "pretrained" and str(e.value).endswith("pass the local file as pretrained=PATH")
    assert e.value.naming("--teacher-pretrained PATH").endswith("--teacher-pretrained PATH")
    monkeypatch.setattr(teachers, "_weights_cached", lambda cfg: True)  # cached weights load offline as before
    with pytest.raises(AssertionError, match="reached"):
        teachers.load_teacher("ViT-B-16", "openai")


def test_no_network_is_found_in_seconds(monkeypatch):
    from milan_lab.io import network
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("MILAN_LAB_OFFLINE", raising=False)

    def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    assert network.unreachable("https://huggingface.co/x") == "no network (huggingface.co: Connection refused)"

    release = threading.Event()

    def hangs(*args, **kwargs):  # a name lookup that does not answer until the test is done
        release.wait(30)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", hangs)
    t = time.perf_counter()
    assert "did not answer within 0.2 s" in network.unreachable("https://download.openmmlab.com/x", timeout=0.2)
    assert time.perf_counter() - t < 2
    release.set()
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: socket.socket())
    assert network.unreachable("https://huggingface.co/x") is None


def test_zoo_pretrained_offline_fails_at_once(monkeypatch, tmp_path, capsys):
    import torch

    from milan_lab import zoo
    monkeypatch.setenv("MILAN_LAB_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _boom)
    monkeypatch.setattr(zoo, "create_model", _boom)
    monkeypatch.setattr(zoo, "load_model", _boom)
    with pytest.raises(DownloadError, match="offline mode") as e:
        zoo.get_model("vit-base-p16_milan-pre_8xb128-coslr-100e_in1k", pretrained=True)
    assert e.value.option == "pretrained" and "https://download.openmmlab.com/" in str(e.value)
    assert main(["predict", "vit-base-p16_milan-pre_8xb128-coslr-100e_in1k", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith("pass the local file as --pretrained PATH")
