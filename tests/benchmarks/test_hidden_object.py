"""benchmarks/hidden_object.py: how often a mask sampler hides the main object (no training)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from milan_lab.config import SCENE_KINDS
from tests.helpers import ROOT, env

sys.path.insert(0, str(ROOT / "benchmarks"))
import hidden_object  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))  # the documents' tables (scripts/ is a folder of scripts)
import tables  # noqa: E402


def test_object_pixels_are_counted_in_the_vits_patch_order(monkeypatch):
    import milan_lab.data.scenes as scenes

    def one_object(seed, split, i, size, variant):
        coverage = np.zeros((size, size))
        coverage[8:12, 16:24] = 1.0   # patch row 1, column 2 of an 8 x 8 grid: 32 pixels
        coverage[0, 0] = 0.4          # under half: not the object's pixel (the label map's rule)
        return np.zeros((size, size, 3), np.uint8), coverage
    monkeypatch.setattr(scenes, "make_scene_with_main_object", one_object)
    _, counts = hidden_object.object_patches(2, "dense", 64, 8, 0)
    assert counts.shape == (2, 64) and counts[0, 1 * 8 + 2] == 32 and counts.sum() == 64


def test_the_measures_on_a_scene_whose_object_fills_one_patch():
    counts = torch.zeros(4, 16)
    counts[:, 5] = 64.0                       # the object: all of patch 5 (8-px patches)
    counts[:, 6] = 10.0                       # and a sliver of patch 6
    towards = torch.full((4, 16), 1e-6)
    towards[:, 5] = 1.0                       # an importance that points at the object
    r = hidden_object.measure(counts, towards, 0.75, "semantic", 8, 0)
    assert r["kept_patches"] == 4 and r["none_visible"]["mean"] == 0.0 and r["none_half_visible"]["mean"] == 0.0
    assert r["visible_share"]["mean"] >= 64 / 74
    away = torch.ones(4, 16)
    away[:, 5:7] = 1e-9                       # pointing away: the object's patches are masked
    hidden = hidden_object.measure(counts, away, 0.75, "semantic", 8, 0)
    assert hidden["none_visible"] == {"mean": 1.0, "ci95": pytest.approx([0.51, 1.0], abs=0.01), "count": 4}
    assert hidden["visible_share"]["mean"] == 0.0


def test_a_small_run_writes_a_record_and_its_table(tmp_path):
    rec = tmp_path / "hidden_object.json"
    res = subprocess.run([sys.executable, "benchmarks/hidden_object.py", "--scenes", "24", "--ratios", "0.75", "0.9",
                          "--record", str(rec)], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(rec.read_text())
    assert record["kind"] == "hidden-object" and record["seeds"] == [0] and record["commit"]
    r = record["result"]
    assert r["image_size"] == 64 and r["patch_size"] == 8 and list(r["variants"]) == list(SCENE_KINDS)
    for v in r["variants"].values():
        assert set(v["by_ratio"]) == {"0.75", "0.9"}
        for by in v["by_ratio"].values():
            for s in ("random", "semantic"):
                m = by[s]
                assert 0 <= m["none_visible"]["mean"] <= m["none_half_visible"]["mean"] <= 1
                assert m["none_visible"]["ci95"][0] <= m["none_visible"]["mean"] <= m["none_visible"]["ci95"][1]
            # the teacher looks at the object: semantic masking keeps more of it than random masking
            assert by["semantic"]["visible_share"]["mean"] > by["random"]["visible_share"]["mean"]
        assert v["by_ratio"]["0.9"]["random"]["kept_patches"] == 6  # int(64 * 0.1)
    assert hidden_object.table(r) in res.stdout
    (tmp_path / "results").mkdir()
    rec.rename(tmp_path / "results" / "hidden_object.json")
    table = tables.table_hidden_object(tmp_path / "results")
    assert "| sparse (object" in table and "24 validation scenes per kind" in table


@pytest.mark.parametrize("args, word", [(["--ratios", "1.5"], "mask ratio"), (["--seed", "-1"], "at least 0"),
                                        (["--preset", "nope"], "unknown preset"), (["--record", "."], "--record")])
def test_bad_arguments_are_one_line_before_any_work(args, word):
    res = subprocess.run([sys.executable, "benchmarks/hidden_object.py", *args], cwd=ROOT, env=env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and word in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2  # argparse's usage line and the error

