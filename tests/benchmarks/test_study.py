"""benchmarks/study.py and the lab's study plans: each plan runs under the runner as written, the label-free
teacher arm loads the other teacher, and one command runs a plan into a record whose table renders."""
import json
import shutil
import sys
import time

import pytest
import yaml

from milan_lab.config import SCENE_KINDS, get_config
from milan_lab.evaluation.suite import metrics_of
from milan_lab.tools import ablation, plans
from tests.helpers import ROOT, tiny_overrides, tiny_teacher_folder

sys.path.insert(0, str(ROOT / "benchmarks"))
import study  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))  # the documents' tables (scripts/ is a folder of scripts)
import tables  # noqa: E402

STUDIES = ("targets", "masking_dense", "masking_mid", "masking_dense_075", "masking_mid_075", "decoder")
ARMS = {"targets": {"MILAN", "label-free teacher", "pixel targets", "random init"},
        "masking_dense": {"MILAN", "random masking", "random init"}, "masking_mid": {"MILAN", "random masking", "random init"},
        "masking_dense_075": {"MILAN", "random masking", "random init"},
        "masking_mid_075": {"MILAN", "random masking", "random init"},
        "decoder": {"MILAN", "MAE decoder", "prompting, 4 layers", "MAE decoder, 4 layers", "random init"}}


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_plan_is_declared_before_its_runs_and_runs_under_the_runner(name):
    plan = plans.load_plan(ROOT / "benchmarks" / "plans" / f"{name}.yaml")
    study.check_plan(plan)  # arms known, variant a scene kind, probes registered, primary and family among their metrics
    assert plan["retrospective"] is False and set(plan["arms"]) == ARMS[name] and plan["baseline"] == "MILAN"
    assert plan["preset"] == "milan_vit-tiny-p8_offline" and plan["variant"] in SCENE_KINDS and "random init" in plan["arms"]
    assert len(plan["seeds"]) >= 3 and plan["sizes"]["eval_val"] == 8192 and plan["tost_margin"] > 0
    assert set(plan["primary"]) <= set(plan["holm_family"]) <= set(metrics_of(ablation.plan_probes(plan)))
    assert f"--plan benchmarks/plans/{name}.yaml" in plan["notes"] and f"docs/results/{name}.json" in plan["notes"]
    cfg = get_config("pretrain", plan["preset"], plan["overrides"])
    assert cfg.teacher_cache  # the preset's default recipe
    if name.startswith("masking"):
        assert plan["primary"] == ["linear_object"] and cfg.model.mask_ratio == (0.75 if name.endswith("_075") else 0.875)
    else:
        assert plan["primary"] == ["linear_mean"] and plan["variant"] == "dense"


def test_the_label_free_arm_loads_the_other_teacher_with_targets_as_wide():
    from milan_lab.factory.teachers import load_teacher
    preset = "milan_vit-tiny-p8_offline"
    base = get_config("pretrain", preset, ablation.KNOWN_ARMS["MILAN"]).model
    free = get_config("pretrain", preset, ablation.KNOWN_ARMS["label-free teacher"]).model
    assert base.teacher == "shipped" and free.teacher == "offline-noshape"
    a, b = load_teacher(base.teacher), load_teacher(free.teacher)
    assert a.embed_dim == b.embed_dim == free.target_dim  # the model's check (models.milan) passes: targets as wide
    wa, wb = next(a.parameters()), next(b.parameters())
    assert wa.shape == wb.shape and not (wa == wb).all()  # another set of weights
    deep = get_config("pretrain", preset, ablation.KNOWN_ARMS["MAE decoder, 4 layers"]).model
    assert (deep.decoder, deep.decoder_depth, base.decoder, base.decoder_depth) == ("mae", 4, "prompting", 2)


def _plan_file(tmp_path, **changes):
    content = yaml.safe_load((ROOT / "benchmarks" / "plans" / "masking_mid.yaml").read_text())
    content.update({"name": "toy", **changes})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.mark.parametrize("change, named", [({"arms": ["MILAN", "nobody"]}, "nobody"),
                                           ({"variant": "cluttered"}, "cluttered"),
                                           ({"probes": ["linear_mean", "nope"]}, "nope"),
                                           ({"probes": ["linear_mean"]}, "linear_object"),
                                           ({"study": "views_grid"}, "views_grid"),
                                           # an arm the preset's config refuses, though the plan's overrides pass
                                           ({"preset": "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k",
                                             "arms": ["MILAN", "random masking", "label-free teacher"]}, "label-free teacher")])
def test_a_plan_the_runner_cannot_run_is_one_line_naming_the_file_and_what(tmp_path, capsys, change, named):
    path = _plan_file(tmp_path, **change)
    with pytest.raises(SystemExit) as exit_:
        study.main(["--plan", str(path), "--output-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("study: error:") and named in err and "toy.yaml" in err
    assert "\n" not in err and not (tmp_path / "runs").exists()


def test_one_command_runs_a_plan_into_a_record_whose_table_names_the_missing_seeds(tmp_path, capsys, monkeypatch):
    from milan_lab.tools import records
    monkeypatch.setattr(records, "matmul_peak_gflops", lambda: 1.0)  # the machine's peak is not what this checks
    teacher = tiny_teacher_folder(tmp_path / "teacher")
    over = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in tiny_overrides(teacher, tmp_path / "unused",
                                                                                         max_steps=2, offline_size=32))}
    for key in ("output_dir", "progress", "knn_every", "keep_every"):  # the runner sets these per run
        over.pop(key)
    path = _plan_file(tmp_path, seeds=[0, 1], overrides={**over, "mask_ratio": 0.875},
                      sizes={"eval_train": 32, "eval_val": 16, "seg_train": 16, "seg_val": 8, "seg_steps": 3},
                      probes=["linear_object", "knn_mean"])  # the primary and one more: seconds, not minutes
    record, runs = tmp_path / "toy.json", tmp_path / "runs"
    argv = ["--plan", str(path), "--output-dir", str(runs), "--record", str(record), "--device", "cpu", "--seeds", "0",
            "--arms", "MILAN", "random init"]
    assert study.main(argv) == 0
    out = capsys.readouterr().out
    rec = json.loads(record.read_text())
    res = rec["result"]
    assert rec["kind"] == "study" and rec["seeds"] == [0] and res["device"] == "cpu"
    assert {r["arm"] for r in res["rows"]} == {"MILAN", "random init"}
    assert all(r["plan_hash"] == plans.load_plan(path).hash and "linear_object" in r for r in res["rows"])
    text = study.table(res, {"offline-shape": {"knn_mean": {"mean": 0.86, "se": 0.01, "n": 1024}}})
    assert text.splitlines()[0].startswith("| arm | runs | linear, object-pooled (primary) %")  # the primary first
    assert "teacher `offline-shape`" in text and "| not recorded | 86.0 ± 1.0 |" in text and "random init (this study's floor)" in text
    assert "MILAN: 1 of 2 planned seeds (missing 1)" in text and "arm 'random masking' not run" in text
    # a ceiling without a binomial error (the dense probe's mIoU) on its own, smaller validation set
    own = study.table(res, {"offline-shape": {"knn_mean": {"mean": 0.86, "se": 0.01, "n": 1024},
                                              "linear_object": {"mean": 0.4, "n": 256}}})
    assert "| 40.0 (256 scenes) | 86.0 ± 1.0 |" in own
    assert f"Plan file: `{path}`" in text and out.strip() == study.table(res, study.ceilings("mid")).strip()
    shutil.copy(ROOT / "docs" / "results" / "teacher_ceilings.json", tmp_path / "teacher_ceilings.json")
    doc = tables.table_study(tmp_path, "toy")  # the documents' table of the record: the same tables, then the machine
    assert study.table(res, study.ceilings("mid", tmp_path / "teacher_ceilings.json")) in doc and rec["commit"] in doc
    steps = json.loads((ablation.run_folder(runs, "MILAN", 0) / "metrics.json").read_text())["history"]
    assert study.main(argv) == 0  # resumed: the finished runs are reused, nothing trains again
    assert json.loads((ablation.run_folder(runs, "MILAN", 0) / "metrics.json").read_text())["history"] == steps
    assert json.loads(record.read_text())["result"]["runs"][0]["reused"] is True


def test_cuda_without_a_gpu_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert study.resolve_device("auto") == "cpu"
    with pytest.raises(SystemExit):
        study.main(["--plan", str(_plan_file(tmp_path)), "--device", "cuda", "--output-dir", str(tmp_path / "runs")])
    assert "cuda" in capsys.readouterr().err and not (tmp_path / "runs").exists()


@pytest.fixture()
def untrained(monkeypatch):
    """Runs without the training: each scores 0.5 + seed / 100 on every metric; the (arm, seed) of each listed."""
    from milan_lab.tools import records
    monkeypatch.setattr(records, "matmul_peak_gflops", lambda: 1.0)
    trained = []

    def score(preset, arm, seed, out, overrides, variant, probes=ablation.PROBES, device="cpu", **sizes):
        trained.append((arm, seed))
        return {"arm": arm, "seed": seed, "variant": variant, "steps": 1, **{m: 0.5 + 0.01 * seed for m in metrics_of(probes)}}
    monkeypatch.setattr(ablation, "score_arm", score)
    return trained


def test_a_study_resumes_from_its_record_when_its_run_folders_are_gone(tmp_path, capsys, untrained):
    path = _plan_file(tmp_path, seeds=[0, 1], arms=["MILAN", "random init"])
    first, runs = tmp_path / "first.json", tmp_path / "runs"
    base = ["--plan", str(path), "--device", "cpu", "--output-dir", str(runs)]
    assert study.main([*base, "--record", str(first), "--seeds", "0"]) == 0
    shutil.rmtree(runs)  # the scratch disk is wiped: only the record is left
    time.sleep(1.1)  # a later sitting: runs count as reused when they started before it (dates to the second)
    second = tmp_path / "second.json"
    assert study.main([*base, "--record", str(second), "--resume", str(first)]) == 0
    assert "2 finished run(s) written back" in capsys.readouterr().err
    assert untrained == [("MILAN", 0), ("random init", 0), ("MILAN", 1), ("random init", 1)]  # seed 0 not trained again
    old, new = json.loads(first.read_text()), json.loads(second.read_text())
    assert new["result"]["rows"][:2] == old["result"]["rows"] and new["seeds"] == [0, 1]  # the restored runs, as recorded
    assert [r["reused"] for r in new["result"]["runs"]] == [True, True, False, False]
    sitting = new["result"]["earlier_sittings"]
    assert len(sitting) == 1 and sitting[0]["wall_s"] == old["wall_s"] and sitting[0]["commit"] == old["commit"]
    shutil.copy(ROOT / "docs" / "results" / "teacher_ceilings.json", tmp_path / "teacher_ceilings.json")
    assert "min in 1 earlier sitting (fp32 matmul peak 1 GFLOP/s)" in tables.table_study(tmp_path, "second")
    shutil.rmtree(runs)  # wiped again; this sitting re-scores one seed only, into the record it resumes from
    assert study.main([*base, "--record", str(second), "--resume", str(second), "--seeds", "1"]) == 0
    third = json.loads(second.read_text())
    assert len(untrained) == 4 and third["result"]["rows"] == new["result"]["rows"]  # seed 0 kept, though not asked
    assert [s["date"] for s in third["result"]["earlier_sittings"]] == [old["date"], new["date"]]
    assert "min in 2 earlier sittings" in tables.table_study(tmp_path, "second")


def _record_of(tmp_path, plan, damage):
    """A study record of ``plan`` with one run (MILAN, seed 0) as the study would write it, then damaged."""
    row = {"arm": "MILAN", "seed": 0, "plan": plan.name, "plan_hash": plan.hash,
           "scored_on": ablation.plan_scored_on(plan, "cpu"), "linear_mean": 0.5}
    result = {"plan": plan.summary(), "rows": [row]}
    kind = "study"
    if damage == "plan":
        result["plan"] = {**result["plan"], "hash": "0" * 64}
    elif damage == "row":
        row["plan_hash"] = "f" * 64
    elif damage == "device":
        row["scored_on"] = ablation.plan_scored_on(plan, "cuda")
    elif damage == "unrecorded":
        del row["scored_on"]  # a run made before runs recorded what they were scored on
    elif damage == "not a row":
        result["rows"] = ["MILAN"]
    elif damage == "kind":
        kind = "bench"
    record = tmp_path / "old.json"
    record.write_text(json.dumps({"kind": kind, "result": result}))
    return record


@pytest.mark.parametrize("damage, named", [("plan", "a record of plan 'toy' (000000000000)"), ("row", "seed 0 of the record"),
                                           ("device", "device 'cuda', not 'cpu'"), ("unrecorded", "unrecorded"),
                                           ("not a row", "run 1 of the record"), ("kind", "not a study's record"),
                                           ("missing", "no study record to resume from")])
def test_resuming_from_a_record_the_study_cannot_reuse_is_one_line_before_anything_is_written(tmp_path, capsys, damage, named):
    path = _plan_file(tmp_path)
    record = _record_of(tmp_path, plans.load_plan(path), damage)
    if damage == "missing":
        record.unlink()
    with pytest.raises(SystemExit) as exit_:
        study.main(["--plan", str(path), "--device", "cpu", "--output-dir", str(tmp_path / "runs"), "--resume", str(record)])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and named in err and "old.json" in err and "\n" not in err
    assert not (tmp_path / "runs").exists()


def test_restoring_keeps_a_run_folders_own_result(tmp_path):
    plan = plans.load_plan(_plan_file(tmp_path))
    mine = ablation.run_folder(tmp_path / "runs", "MILAN", 0) / "result.json"
    mine.parent.mkdir(parents=True)
    mine.write_text('{"arm": "MILAN", "seed": 0, "mine": true}')
    on = ablation.plan_scored_on(plan, "cpu")
    rows = [{"arm": arm, "seed": 0, "plan_hash": plan.hash, "scored_on": on} for arm in ("MILAN", "random init")]
    assert ablation.restore_runs(rows, plan, tmp_path / "runs", on) == ["random_init_s0"]
    assert json.loads(mine.read_text())["mine"] is True


def test_a_study_stopped_between_runs_has_every_finished_run_in_its_record(tmp_path, monkeypatch, untrained):
    def stop_at_the_floor(preset, arm, seed, *args, **kwargs):
        if arm == "random init":
            raise KeyboardInterrupt  # stopped during the second run of the seed
        return score(preset, arm, seed, *args, **kwargs)
    score = ablation.score_arm
    monkeypatch.setattr(ablation, "score_arm", stop_at_the_floor)
    record = tmp_path / "stopped.json"
    with pytest.raises(KeyboardInterrupt):
        study.run(plans.load_plan(_plan_file(tmp_path, arms=["MILAN", "random init"])), str(tmp_path / "runs"),
                  device="cpu", record=str(record))
    rec = json.loads(record.read_text())
    assert [(r["arm"], r["seed"]) for r in rec["result"]["rows"]] == [("MILAN", 0)]
    assert rec["seeds"] == []  # seed 0 is not a whole pair: its floor did not run
