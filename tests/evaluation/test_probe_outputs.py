"""A measurement never writes into the installed package: the dense probe trained for the shipped
model goes under outputs/probes/ (or --out), and the app finds it there, else the shipped probe."""
import hashlib

import torch

from milan_lab.evaluation.probes import probe_path_for, seg_probe_eval
from milan_lab.viz.panels import SHIPPED_MODEL, load_probe
from tests.helpers import ASSETS

TINY = dict(preset="milan_vit-tiny-p8_offline", train_size=4, val_size=2, steps=2)


def _hashes() -> dict:
    """Every file the package ships besides its code (the models, their probes, the teacher), by content."""
    return {str(p.relative_to(ASSETS)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(ASSETS.rglob("*")) if p.is_file()}


def _same_weights(found, probe) -> bool:
    return all(torch.equal(a, b) for a, b in zip(found[0].state_dict().values(), probe.state_dict().values()))


def test_seg_probe_on_the_shipped_model_leaves_the_package_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outputs/ is relative to the working folder
    shipped_probe = load_probe(str(SHIPPED_MODEL))  # what the app shows before any run: the probe shipped with the model
    assert shipped_probe is not None
    before = _hashes()
    result, _, probe = seg_probe_eval(str(SHIPPED_MODEL), return_models=True, **TINY)
    assert _hashes() == before
    saved = tmp_path / "outputs" / "probes" / "milan_tiny_offline" / "milan_tiny_offline.seg_probe.safetensors"
    assert saved.is_file() and result["probe"] == str(probe_path_for(SHIPPED_MODEL)) and (tmp_path / result["probe"]).is_file()
    assert _same_weights(load_probe(str(SHIPPED_MODEL)), probe)  # the app now finds the new probe
    monkeypatch.chdir(tmp_path / "outputs")  # no outputs/probes here: the app falls back to the shipped probe
    assert _same_weights(load_probe(str(SHIPPED_MODEL)), shipped_probe[0])


def test_seg_probe_out_and_own_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _hashes()
    out = tmp_path / "mine" / "probe.safetensors"
    result = seg_probe_eval(str(SHIPPED_MODEL), out=str(out), **TINY)
    assert result["probe"] == str(out) and out.is_file() and not (tmp_path / "outputs").exists()
    assert _hashes() == before
    own = tmp_path / "run" / "step_00000010.pt"  # a checkpoint of one's own keeps its probe beside it
    assert probe_path_for(own) == tmp_path / "run" / "step_00000010.seg_probe.safetensors"
