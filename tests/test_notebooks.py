"""Every notebook runs top to bottom through papermill with tiny parameters; assertions are on
the metrics each one saves."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MICRO = "milan_vit-micro-p8_offline"


def run(name: str, out_dir: Path, **params) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"), cwd=str(ROOT),
                        parameters={"output_dir": str(out_dir), **params}, kernel_name="python3", progress_bar=False)
    stem = "linear_probe" if name == "linear_probe" else name
    return json.loads((out_dir / f"{stem}_metrics.json").read_text())


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The README's main command (papermill CLI with --log-output), with tiny parameters: the
    training progress must reach the terminal."""
    out = tmp_path_factory.mktemp("nb") / "pretrain"
    out.mkdir()
    params = dict(preset=MICRO, max_steps=6, offline_size=256, batch_size=32, output_dir=str(out))
    res = subprocess.run([sys.executable, "-m", "papermill", "--log-output", str(NOTEBOOKS / "pretrain.ipynb"),
                          str(out / "pretrain.ipynb"), *[a for k, v in params.items() for a in ("-p", k, str(v))]],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    progress = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("pretrain:")]
    assert any("6/6" in line and "loss=" in line for line in progress), progress
    return out, json.loads((out / "pretrain_metrics.json").read_text())


def test_notebooks_are_committed_clean_with_a_parameters_cell():
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert "parameters" in code[0].metadata.get("tags", []), path.name


def test_pretrain_notebook(pretrained):
    out, metrics = pretrained
    assert metrics["summary"]["steps"] == 6 and metrics["summary"]["final_loss"] > 0
    assert all(Path(f).is_file() for f in metrics["figures"])
    # a re-run with the same output_dir resumes instead of starting over
    again = run("pretrain", out, preset=MICRO, max_steps=8, offline_size=256, batch_size=32)
    history = json.loads((out / "metrics.json").read_text())["history"]
    # the first run logged step 6 (its last); the re-run resumed from it and logged step 8
    assert again["summary"]["steps"] == 8 and [r["step"] for r in history if "loss" in r] == [6, 8]


def test_finetune_and_linear_probe_notebooks(pretrained, tmp_path):
    out, _ = pretrained
    ft = run("finetune", tmp_path / "ft", preset=MICRO, checkpoint=str(out), max_steps=4, offline_size=256,
             batch_size=32, eval_size=64)
    assert 0 <= ft["summary"]["top1"] <= 1 and len(ft["figures"]) == 2
    lp = run("linear_probe", tmp_path / "lp", preset=MICRO, checkpoint=str(out), max_steps=4, offline_size=256,
             batch_size=32, eval_size=64, knn_train=128)
    assert set(lp["results"]) == {"pretrained", "random_init"}
    assert all(0 <= v["knn_top1"] <= 1 for v in lp["results"].values())


def test_teacher_notebook(tmp_path):
    m = run("teacher", tmp_path / "teacher", n_eval=64)
    assert m["result"]["zero_shot"]["shape"] > 0.8 and m["result"]["attention_on_objects"] > 2


def test_explore_and_tour_notebooks(tmp_path):
    e = run("explore", tmp_path / "explore")
    assert e["model_loaded"] and e["examples"] >= 4 and Path(e["figure"]).is_file()
    t = run("tour", tmp_path / "tour")
    assert t["kept_attention"]["semantic"] > t["kept_attention"]["random"]
    assert len(t["figures"]) == 6 and all(Path(f).is_file() for f in t["figures"])
    # the shipped student attends where its teacher does, far more than a random encoder of its size
    agree = t["attention_agreement"]  # the student against the best of three random initialisations
    assert agree["student"] > agree["random"] + 0.1 and agree["student_object_ratio"] > agree["random_object_ratio"]


def test_ablation_notebook(tmp_path):
    params = dict(seeds=[0, 1], epochs=1, offline_size=64, batch_size=32, max_steps=1, eval_train=64, eval_val=32,
                  seg_train=32, seg_val=16, seg_steps=5, arms=["MILAN", "MAE decoder"], variant="sparse")
    m = run("ablation", tmp_path / "ablation", **params)
    assert [(r["arm"], r["seed"]) for r in m["rows"]] == [("MILAN", 0), ("MAE decoder", 0), ("MILAN", 1),
                                                          ("MAE decoder", 1)]
    by_arm = {r["arm"]: r for r in m["summary"]}
    assert set(by_arm) == {"MILAN", "MAE decoder"} and Path(m["figure"]).is_file()
    diffs = [a["linear_mean"] - b["linear_mean"] for a, b in zip(m["rows"][::2], m["rows"][1::2])]
    assert by_arm["MAE decoder"]["linear_mean_milan_minus_arm"] == pytest.approx(sum(diffs) / 2)
    lo, hi = by_arm["MAE decoder"]["linear_mean_ci"]
    assert lo <= by_arm["MAE decoder"]["linear_mean_milan_minus_arm"] <= hi
    assert all(r["variant"] == "sparse" for r in m["rows"])
    record = json.loads((tmp_path / "ablation" / "record.json").read_text())
    assert record["kind"] == "ablation" and record["seeds"] == [0, 1] and record["result"]["rows"] == m["rows"]
    assert record["command"].startswith("papermill notebooks/ablation.ipynb")
    again = run("ablation", tmp_path / "ablation", **params)  # finished runs are reused, not repeated
    assert again["rows"] == m["rows"]


def test_segmentation_notebook(tmp_path):
    m = run("segmentation", tmp_path / "seg", train_size=64, val_size=32, steps=20, n_show=2)
    assert set(m["results"]) == {"pretrained", "random init"}
    assert all(Path(f).is_file() for f in m["figures"])
    assert all(0 <= r["miou"] <= 1 and len(r["iou"]) == 9 for r in m["results"].values())
