"""Edge cases of the file reader, the image views, the download probe, the hidden-object measurement's
presets, compile=true's checks, the detectable effect, the memory guard, the curves figure and the CLI's
words for a teacher download."""
import argparse
import importlib.util
import math
import os
import sys
import warnings

import matplotlib
import pytest
import torch
from PIL import Image

from tests.helpers import ROOT


# -- safetensors headers whose length bytes look like a pickle's protocol mark ------------------------
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


# -- DecodeView takes a dataset's file of any size --------------------------------------------------
def test_fixed_view_of_an_image_over_the_upload_cap(tmp_path):
    from milan_lab.data.images import MAX_PIXELS
    from milan_lab.data.transforms import DecodeView
    width, height = 8000, 5100  # 40.8 MP, one grey value: fast to write and to decode at 1/8 scale
    assert width * height > MAX_PIXELS
    path = tmp_path / "big.jpg"
    Image.new("L", (width, height), 128).save(path, quality=50)
    view = DecodeView(64)(path)
    assert view.shape == (3, 64, 64) and view.dtype == torch.uint8
    assert abs(float(view.float().mean()) - 128) < 3


# -- the download probe behind a proxy and at the hub's endpoint --------------------------------------
@pytest.fixture
def clean_network_env(monkeypatch):
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in ("HF_HUB_OFFLINE", "MILAN_LAB_OFFLINE", "HF_ENDPOINT"):
            monkeypatch.delenv(name)
    from milan_lab.io import network
    calls = []

    def connect(address, timeout=None):
        calls.append(address)
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(network.socket, "create_connection", connect)
    return network, calls


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"])
def test_behind_a_proxy_no_direct_probe_is_made(clean_network_env, monkeypatch, name):
    network, calls = clean_network_env
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert network.unreachable("https://huggingface.co/org/model/resolve/main/weights.bin", timeout=0.5) is None
    assert network.unreachable("https://download.pytorch.org/models/x.pth", timeout=0.5) is None
    assert calls == []  # the direct connection would have said "no network"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline mode still refuses at once
    assert "HF_HUB_OFFLINE" in network.unreachable("https://huggingface.co/org/model/resolve/main/weights.bin")
    assert calls == []


def test_the_hub_is_probed_at_its_configured_endpoint(clean_network_env, monkeypatch):
    network, calls = clean_network_env
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example:8443/")
    reason = network.unreachable("https://huggingface.co/org/model/resolve/main/weights.bin", timeout=2)
    assert calls == [("hf-mirror.example", 8443)] and "hf-mirror.example" in reason
    calls.clear()
    network.unreachable("https://download.pytorch.org/models/x.pth", timeout=2)  # not the hub: its own host
    assert calls == [("download.pytorch.org", 443)]


# -- the hidden-object measurement takes only presets with the shipped teacher -----------------------
def _hidden_object():
    spec = importlib.util.spec_from_file_location("hidden_object_script", ROOT / "benchmarks" / "hidden_object.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hidden_object_refuses_a_preset_with_another_teacher_in_one_line(capsys):
    script = _hidden_object()
    assert script.shipped_teacher_preset("milan_vit-tiny-p8_offline") == "milan_vit-tiny-p8_offline"
    preset = "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k"
    with pytest.raises(argparse.ArgumentTypeError, match="ViT-B-16"):
        script.shipped_teacher_preset(preset)
    with pytest.raises(SystemExit) as exit_:
        script.main(["--preset", preset, "--scenes", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and preset in err and "shipped" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # argparse's usage line and the error


# -- compile=true: the private compiler check, and DDP ------------------------------------------------
def test_compiler_check_that_cannot_be_imported_is_skipped(monkeypatch):
    from milan_lab.engine import trainer
    monkeypatch.setitem(sys.modules, "torch._inductor.cpp_builder", None)  # import raises ImportError
    marker = torch.nn.Identity()
    monkeypatch.setattr(torch, "compile", lambda module, **kw: marker)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "running eagerly" warning
        assert trainer.compiled(torch.nn.Linear(2, 2), torch.device("cpu")) is marker


def test_failed_first_compiled_step_under_ddp_is_not_retaken(monkeypatch):
    from milan_lab.engine.trainer import Trainer
    from milan_lab.errors import ConfigError
    t = Trainer.__new__(Trainer)  # only what _first_compiled_step reads
    t.world, t.rank = 2, 1
    compiled_net, eager_net, taken = object(), object(), []

    def step(net, model, optimizer, batch, loss_fn):
        taken.append(net)
        if net is compiled_net:
            raise RuntimeError("InductorError: C++ compile error\nmore")
        return torch.zeros(())

    t._step = step
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="compile=false"):
        t._first_compiled_step(compiled_net, eager_net, model, torch.optim.SGD(model.parameters(), 0.1), None, None)
    assert taken == [compiled_net]


# -- the minimum detectable effect with equal differences ---------------------------------------------
def test_equal_differences_over_few_seeds_detect_nothing():
    from milan_lab.evaluation.stats import min_detectable_effect, paired_test
    from milan_lab.tools.ablation import BASELINE, markdown_tables, summarise
    assert math.isinf(min_detectable_effect([0.02] * 3))  # the exact test's p is at least 2 / 8
    assert paired_test([0.02] * 6)["p"] < 0.05 and min_detectable_effect([0.02] * 6) == 0.0
    rows = [{"arm": arm, "seed": s, "knn_cls": 0.5 + (0.02 if arm == BASELINE else 0), "ms_per_step": None}
            for arm in (BASELINE, "random") for s in range(3)]
    table = markdown_tables(summarise(rows, metrics=("knn_cls",)), metrics=("knn_cls",), primary="knn_cls")
    mde_rows = table.split("minimum detectable effect")[1].splitlines()
    assert any(line.startswith("| random |") and "not resolvable" in line for line in mde_rows), table


# -- one memory measure, within the cgroup's limit ----------------------------------------------------
def test_available_memory_holds_to_the_cgroup_limit_everywhere(tmp_path, monkeypatch):
    from milan_lab.data import images
    from milan_lab.io import memory
    from milan_lab.jobs import teacher_cache
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    monkeypatch.setattr(memory, "CGROUP", tmp_path)
    assert memory.available_memory() == 600_000
    assert images.available_memory() == 600_000
    assert teacher_cache.available_bytes(torch.device("cpu")) == 600_000
    (tmp_path / "memory.max").write_text("max\n")  # no limit: the machine's own free memory
    assert memory.available_memory() > 600_000


# -- the curves figure leaves the backend alone; subfolder figures go up --------------------------------
def test_curves_keep_the_backend_and_subfolder_figures_are_uploaded(tmp_path):
    from milan_lab.engine import loggers
    history = [{"step": i, "loss": 1.0 / (i + 1), "lr": 1e-3} for i in range(4)] + [{"step": 3, "knn_acc": 0.4}]
    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        loggers.write_curves(tmp_path / "curves.png", history)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"

    (tmp_path / "figures").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "figures" / "masks.png")
    (tmp_path / "wandb" / "media").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "wandb" / "media" / "logged.png")

    class Keeper:
        keeps_files = True

        def finish(self, config, summary, files):
            self.files = files

    keeper = Keeper()
    loggers.finish_loggers([keeper], tmp_path, {}, {}, history)
    names = {loggers.artefact_name(p, tmp_path) for p in keeper.files}
    assert {"curves.png", "figures/masks.png"} <= names and "wandb/media/logged.png" not in names


# -- a teacher download from a checkpoint's config, in the words of the command -----------------------
@pytest.mark.parametrize("command", ["attention", "knn", "seg-probe"])
def test_checkpoint_commands_name_no_option_they_lack(command):
    from milan_lab import cli
    from milan_lab.errors import DownloadError
    error = DownloadError("no network (huggingface.co: refused): the weights of ViT-B-16 are not in the local cache",
                          option="pretrained")
    words = cli._in_cli_words(error, command)
    assert "no network" in words and "checkpoint" in words and "teacher_pretrained" in words
    assert "pretrained=PATH" not in words and "--pretrained" not in words and "--teacher-pretrained" not in words
