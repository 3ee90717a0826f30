"""Every notebook runs top to bottom through papermill with tiny parameters; assertions are on
the metrics each one saves. One tiny pretraining run (made once for this module) is the "your own
run" that the other notebooks take as their checkpoint."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import torch
from PIL import Image

from milan_lab.data.scenes import make_scene
from milan_lab.evaluation.probes import attention_eval
from milan_lab.io.checkpoints import resolve_checkpoint
from milan_lab.io.timeline import list_snapshots
from milan_lab.tools import ablation
from milan_lab.viz.panels import SHIPPED_MODEL
from tests.helpers import MICRO, ROOT

NOTEBOOKS = ROOT / "notebooks"
RATIO = 0.6  # the run's mask ratio, from its config file: not the preset's 0.75


def run(name: str, out_dir: Path, **params) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"), cwd=str(ROOT),
                        parameters={"output_dir": str(out_dir), **params}, kernel_name="python3", progress_bar=False)
    return json.loads((out_dir / f"{name}_metrics.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread in this process and in the notebooks' kernels (which inherit the environment):
    the notebooks' tensors are tiny, and on a shared 2-core machine a second thread spinning for its
    share makes small ops many times slower (300 steps of the quick linear probe: 34 s with two threads
    under load, 1.3 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The README's main command (papermill CLI with --log-output), with tiny parameters and a config
    file that sets the mask ratio; the notebook's own mask_ratio parameter is left at None. The
    training progress must reach the terminal."""
    base = tmp_path_factory.mktemp("nb")
    out, config = base / "pretrain", base / "ratio.yaml"
    out.mkdir()
    config.write_text(f"mask_ratio: {RATIO}\n")
    params = dict(preset=MICRO, config=config, max_steps=6, offline_size=256, batch_size=32, output_dir=out)
    res = subprocess.run([sys.executable, "-m", "papermill", "--log-output", str(NOTEBOOKS / "pretrain.ipynb"),
                          str(out / "pretrain.ipynb"), *[a for k, v in params.items() for a in ("-p", k, str(v))]],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    progress = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("pretrain:")]
    assert any("6/6" in line and "loss=" in line for line in progress), progress
    return out, json.loads((out / "pretrain_metrics.json").read_text())


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> str:
    """A picture of one's own: a JPEG, not square, not one of the example scenes."""
    path = tmp_path_factory.mktemp("picture") / "mine.jpg"
    Image.fromarray(make_scene(7, "val", 5, 256)[0]).resize((300, 240)).save(path, quality=95)
    return str(path)


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
    # mask_ratio = None kept what lies beneath it (here the config file's), as every None parameter does
    assert json.loads((out / "metrics.json").read_text())["config"]["model"]["mask_ratio"] == RATIO
    # a re-run with the same output_dir resumes instead of starting over
    again = run("pretrain", out, preset=MICRO, config=str(out.parent / "ratio.yaml"), max_steps=8, offline_size=256,
                batch_size=32)
    history = json.loads((out / "metrics.json").read_text())["history"]
    # the first run logged step 6 (its last); the re-run resumed from it and logged step 8
    assert again["summary"]["steps"] == 8 and [r["step"] for r in history if "loss" in r] == [6, 8]


def test_finetune_and_linear_probe_notebooks(pretrained, tmp_path):
    out, _ = pretrained
    ft = run("finetune", tmp_path / "ft", preset=MICRO, checkpoint=str(out), max_steps=2, offline_size=64,
             batch_size=32, eval_size=32)
    assert 0 <= ft["summary"]["top1"] <= 1 and len(ft["figures"]) == 2
    lp = run("linear_probe", tmp_path / "lp", preset=MICRO, checkpoint=str(out), max_steps=2, offline_size=64,
             batch_size=32, eval_size=32, knn_train=64, knn_val=32)
    assert set(lp["results"]) == {"pretrained", "random_init"}
    assert all(0 <= v["knn_top1"] <= 1 for v in lp["results"].values())


def test_teacher_notebook(tmp_path):
    m = run("teacher", tmp_path / "teacher", n_eval=64)
    assert m["result"]["zero_shot"]["shape"] > 0.8 and m["result"]["attention_on_objects"] > 2


def test_tour_on_your_own_run_and_picture(pretrained, picture, tmp_path):
    out, _ = pretrained
    t = run("tour", tmp_path / "tour", checkpoint=str(out), image=picture, attention_scenes=32)
    assert t["checkpoint"] == str(resolve_checkpoint(out)) and t["image"] == picture
    assert t["mask_ratio"] == RATIO  # None: the model's own ratio
    assert t["kept_attention"]["semantic"] > t["kept_attention"]["random"]
    assert len(t["figures"]) == 6 and all(Path(f).is_file() for f in t["figures"])
    assert set(t["attention_agreement"]) == {"student", "random", "student_object_mass", "random_object_mass",
                                             "saliency_object_mass"}


def test_what_the_tour_shows_of_the_shipped_students_attention():
    """Section 7 of the tour, on the shipped model (the tour's default), over its dense validation scenes: the
    student puts more than twice the attention of the best of three random encoders of its size on the main
    object, and more than the colour-saliency map does; its map correlates with the teacher's more than every
    random encoder's does."""
    report = attention_eval(SHIPPED_MODEL, n=64, random_inits=3)
    student, randoms = report["encoder"], report["random"]
    best_random = max(r["object_mass"]["mean"] for r in randoms)
    assert student["object_mass"]["mean"] > 2 * best_random
    assert student["object_mass"]["ci95"][0] > report["saliency"]["object_mass"]["mean"]
    assert student["agreement"]["mean"] > max(r["agreement"]["mean"] for r in randoms)


def test_explore_on_your_own_run_and_picture(pretrained, picture, tmp_path):
    out, _ = pretrained
    e = run("explore", tmp_path / "explore", checkpoint=str(out), image=picture, bank_scenes=4, timeline_knn_train=32,
            timeline_knn_val=16, timeline_scenes=4)
    assert e["model_loaded"] and e["checkpoint"] == str(resolve_checkpoint(out))
    assert e["image"] == Path(picture).name and e["examples"] >= 5 and Path(e["figure"]).is_file()
    # your picture has no known main object: the preset falls back to the semantic sampler's mask, one patch flipped
    assert e["paint_hidden"] > 0 and set(e["paint_samplers"]) == {"semantic", "random"} and Path(e["paint_figure"]).is_file()
    assert e["bank_patches"] == 4 * 64 and 0 <= e["filled_accuracy"] <= 1 and Path(e["filled_figure"]).is_file()
    # every snapshot the shared run kept (it ends at step 6, or 8 once the pretrain test has resumed it), in order
    kept = [step for step, _ in list_snapshots(out)]
    assert e["timeline_steps"] == kept and kept[-1] in (6, 8) and Path(e["timeline_figure"]).is_file()


def test_segmentation_on_your_own_run_and_picture(pretrained, picture, tmp_path):
    out, _ = pretrained
    m = run("segmentation", tmp_path / "seg", checkpoint=str(out), image=picture, train_size=32, val_size=16, steps=5,
            n_show=1)
    assert m["checkpoint"] == str(resolve_checkpoint(out)) and set(m["results"]) == {"pretrained", "random init"}
    assert all(Path(f).is_file() for f in m["figures"]) and len(m["figures"]) == 3
    assert all(0 <= r["miou"] <= 1 and len(r["iou"]) == 9 for r in m["results"].values())
    # the probe trained on your run is saved beside its checkpoint, where the app and the explorer look
    assert Path(m["results"]["pretrained"]["probe"]).parent == resolve_checkpoint(out).parent


def test_ablation_notebook(tmp_path, monkeypatch):
    """The fewest runs that reach every part of the notebook: two seeds (intervals, the figure), a
    trained arm and the random-init floor (a pair per seed), one training step each."""
    params = dict(seeds=[0, 1], epochs=1, offline_size=32, batch_size=32, max_steps=1, eval_train=32, eval_val=16,
                  seg_train=16, seg_val=8, seg_steps=2, arms=["MILAN", "random init"], variant="sparse")
    out = tmp_path / "ablation"
    m = run("ablation", out, **params)
    assert [(r["arm"], r["seed"]) for r in m["rows"]] == [("MILAN", 0), ("random init", 0), ("MILAN", 1),
                                                          ("random init", 1)]
    by_arm = {r["arm"]: r for r in m["summary"]}
    assert set(by_arm) == {"MILAN", "random init"} and Path(m["figure"]).is_file()
    diffs = [a["linear_mean"] - b["linear_mean"] for a, b in zip(m["rows"][::2], m["rows"][1::2])]
    assert by_arm["random init"]["linear_mean_milan_minus_arm"] == pytest.approx(sum(diffs) / 2)
    lo, hi = by_arm["random init"]["linear_mean_ci"]
    assert lo <= by_arm["random init"]["linear_mean_milan_minus_arm"] <= hi
    assert all(r["variant"] == "sparse" for r in m["rows"])
    record = json.loads((out / "record.json").read_text())
    assert record["kind"] == "ablation" and record["seeds"] == [0, 1] and record["result"]["rows"] == m["rows"]
    assert record["command"].startswith("papermill notebooks/ablation.ipynb")
    # the notebook's call again, as a re-run makes it: finished runs are reused, nothing is trained
    monkeypatch.setattr(ablation, "pretrain", lambda cfg: pytest.fail("a finished run was trained again"))
    sizes = {k: params[k] for k in ("eval_train", "eval_val", "seg_train", "seg_val", "seg_steps")}
    again = ablation.run_ablation(MICRO, params["seeds"], str(out), dict(epochs=1, offline_size=32, batch_size=32,
                                                                         max_steps=1),
                                  arms=params["arms"], variant="sparse", **sizes)
    assert again == m["rows"]
