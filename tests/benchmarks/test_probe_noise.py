"""benchmarks/probe_noise.py: the kNN probe's own spread at two validation sizes, beside a study's seed spread."""
import json
import statistics
import sys

import pytest
import torch

from milan_lab.errors import DataError
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import probe_noise  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))  # the documents' tables (scripts/ is a folder of scripts)
import tables  # noqa: E402


@pytest.mark.parametrize("argv, names", [
    (["--sizes", "0"], ["--sizes"]),
    (["--checkpoint", "no_such.safetensors"], ["no_such.safetensors"]),
    (["--memories", "-1"], ["--memories"]),
])
def test_bad_options_are_one_line_before_any_work(argv, names, capsys):
    with pytest.raises(SystemExit) as e:
        probe_noise.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and all(n in err[0] for n in names), err


def test_a_seed_spread_record_without_per_seed_rows_is_refused_in_one_line(tmp_path, capsys):
    bad = tmp_path / "hidden.json"
    bad.write_text((ROOT / "docs" / "results" / "hidden_object.json").read_text())
    with pytest.raises(DataError, match="hidden.json"):
        probe_noise.seed_spread(bad)
    with pytest.raises(SystemExit) as e:
        probe_noise.main(["--seed-spread", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "hidden.json" in err[0]


def test_the_seed_spread_is_the_sd_over_seeds_of_the_records_rows():
    path = ROOT / "docs" / "results" / "ablation_dense.json"
    s = probe_noise.seed_spread(path)
    rows = json.loads(path.read_text())["result"]["rows"]
    by = {(r["arm"], r["seed"]): r for r in rows}
    assert s["baseline"] == "MILAN" and s["seeds"] == [0, 1, 2] and s["val_images"] == 512
    diff = [by["MILAN", k]["knn_cls"] - by["random init", k]["knn_cls"] for k in (0, 1, 2)]
    assert s["probes"]["knn_cls"]["diff_sd"]["random init"] == pytest.approx(100 * statistics.stdev(diff))
    assert s["probes"]["linear_mean"]["arm_sd"]["MILAN"] == pytest.approx(
        100 * statistics.stdev(by["MILAN", k]["linear_mean"] for k in (0, 1, 2)))


def test_draws_are_disjoint_validation_sets_of_each_bank():
    # 2 banks x 8 scenes; the student is right on the first half of the pool in bank 0 and on all of it in bank 1
    student = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [1] * 8], dtype=torch.bool)
    floor = torch.zeros(2, 8, dtype=torch.bool)
    m = probe_noise.at_size({"student": student, "random init": floor}, 4, bootstrap=200, seed=0)
    assert m["validation_sets"] == 2 and m["banks"] == 2 and m["difference"]["draws"] == 4
    assert m["encoders"]["student"]["mean"] == pytest.approx(75.0)
    assert m["encoders"]["student"]["sd"] == pytest.approx(100 * statistics.stdev([1, 0, 1, 1]))
    assert m["encoders"]["random init"]["sd"] == 0 and m["difference"]["mean"] == pytest.approx(75.0)
    assert m["encoders"]["student"]["binomial_se"] == pytest.approx(100 * (0.75 * 0.25 / 4) ** 0.5)
    assert 10 < m["encoders"]["student"]["bootstrap_sd"] < 40  # bank 0: p = 0.5 on 4 scenes, SD 25 points


def test_a_small_run_writes_a_record_and_its_table(tmp_path, capsys):
    rec = tmp_path / "probe_noise.json"
    assert probe_noise.main(["--sizes", "16", "8", "--sets", "2", "--train", "16", "--memories", "2", "--bootstrap", "20",
                             "--record", str(rec)]) == 0
    record = json.loads(rec.read_text())
    assert record["kind"] == "probe-noise" and record["commit"]
    r = record["result"]
    assert r["checkpoint"] == "milan_lab/assets/milan_tiny_offline.safetensors" and r["val_pool"] == 32
    # every size, the largest too, has several disjoint validation sets: each draw changes the bank and the scenes
    assert list(r["sizes"]) == ["8", "16"] and r["sizes"]["8"]["cls"]["difference"]["draws"] == 8
    assert r["sizes"]["16"]["mean"]["validation_sets"] == 2 and r["sizes"]["16"]["mean"]["difference"]["draws"] == 4
    assert r["seed_spread"]["record"] == "docs/results/ablation_dense.json"
    table = tables.TABLES["probe-noise"](tmp_path)
    assert "| 8 | cls | 8 (4 × 2) |" in table and "changes both the bank" in table and "kNN, class token" in table
    assert table.split("\n\n")[0] in capsys.readouterr().out
