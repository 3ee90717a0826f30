"""The benchmark scripts that follow a study plan (benchmarks/views_grid.py): checked against their plan
before any work, every run stamped with the commit it started from, a changed plan refused in one line;
and benchmarks/hidden_object.py's options checked by the shared argument types."""
import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from milan_lab.tools import plans, records
from tests.helpers import ROOT, env

PLANS = ROOT / "benchmarks" / "plans"
sys.path.insert(0, str(ROOT / "scripts"))  # the documents' tables (scripts/ is a folder of scripts)
import tables  # noqa: E402


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"plans_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _boom(*args, **kwargs):
    raise AssertionError("work started before the arguments were refused")


@pytest.fixture
def grid(monkeypatch):
    """The views grid with a fast arm (no training: fixed scores, the baseline a point better on the
    linear probe) that counts its calls in ``grid.calls``, and no peak measurement."""
    module = _script("views_grid")
    module.calls = []

    def score_arm(preset, arm, seed, steps, out):
        module.calls.append((arm, seed))
        bonus = 0.01 if arm == module.BASELINE else 0.0
        return {"arm": arm, "seed": seed, "steps": steps, **{m: 0.5 + bonus + 0.001 * seed for m in module.METRICS}}
    monkeypatch.setattr(module, "score_arm", score_arm)
    monkeypatch.setattr(records, "matmul_peak_gflops", lambda: 42.0)
    return module


def _grid_plan(tmp_path, **changes):
    """The views grid's plan with two of its arms (and ``changes``), under another name."""
    content = yaml.safe_load((PLANS / "views_grid.yaml").read_text())
    content.update(name="grid_small", arms=["fixed views, all tokens", "random crops, all tokens"], **changes)
    path = tmp_path / "grid_small.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_the_grid_reads_its_committed_plan_by_default(grid):
    assert grid.PLAN == PLANS / "views_grid.yaml" and grid.PLAN.is_file()
    plan = plans.load_plan(grid.PLAN)
    grid.check_plan(plan, plan["preset"], plan["sizes"]["steps"], list(grid.ARMS), plan["seeds"])  # its defaults pass


def test_each_grid_run_carries_the_commit_it_started_from_and_the_record_lists_them(grid, tmp_path, monkeypatch):
    real = records.provenance
    commits = iter(["c0ffee1", "beef002", "cafe003", "dead004", "f00d005"])
    state = {"commit": next(commits)}
    monkeypatch.setattr(records, "provenance", lambda command=None: {**real(command), "commit": state["commit"]})
    fast = grid.score_arm

    def slow_score(*args):  # someone commits while each run trains
        row = fast(*args)
        state["commit"] = next(commits)
        return row
    monkeypatch.setattr(grid, "score_arm", slow_score)
    path = _grid_plan(tmp_path, seeds=[0, 1, 2])
    plan = plans.load_plan(path)
    out = tmp_path / "runs"
    assert grid.main(["--plan", str(path), "--seeds", "0", "1", "--out", str(out)]) == 0
    assert len(grid.calls) == 4
    res = json.loads((out / "record.json").read_text())["result"]
    assert res["plan"] == plan.summary() and res["complete"] is True
    assert [(r["arm"], r["seed"], r["commit"]) for r in res["runs"]] == [
        ("fixed views, all tokens", 0, "c0ffee1"), ("random crops, all tokens", 0, "beef002"),
        ("fixed views, all tokens", 1, "cafe003"), ("random crops, all tokens", 1, "dead004")]
    assert all(r["plan_hash"] == plan.hash for r in res["rows"])
    stored = json.loads((grid.run_folder(out, "random crops, all tokens", 1) / "result.json").read_text())
    assert stored["plan_hash"] == plan.hash and stored["started"]["commit"] == "dead004"

    folder = tmp_path / "results"  # the record's table: its plan, the deviation (fewer seeds), the runs' commits
    folder.mkdir()
    shutil.copy(out / "record.json", folder / "views_grid.json")
    text = tables.table_views_grid(folder)
    assert f"Plan `grid_small` ({plan.hash[:12]})" in text and "fixed views, all tokens: 2 of 3 planned seeds (missing 2)" in text
    assert "runs started from commits beef002, c0ffee1, cafe003, dead004" in text

    assert grid.main(["--plan", str(path), "--seeds", "0", "1", "--out", str(out)]) == 0  # the same plan: reused
    assert len(grid.calls) == 4
    again = json.loads((out / "record.json").read_text())["result"]
    assert [r["commit"] for r in again["runs"]] == [r["commit"] for r in res["runs"]]  # when each run started


def test_a_plan_changed_after_a_run_is_refused_in_one_line_before_any_work(grid, tmp_path, monkeypatch, capsys):
    path = _grid_plan(tmp_path)
    plan = plans.load_plan(path)
    out = tmp_path / "runs"
    assert grid.main(["--plan", str(path), "--seeds", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    _grid_plan(tmp_path, tost_margin=0.02)  # the plan edited after its first runs
    changed = plans.load_plan(path)
    monkeypatch.setattr(grid, "score_arm", _boom)
    monkeypatch.setattr(records, "matmul_peak_gflops", _boom)
    assert grid.main(["--plan", str(path), "--seeds", "0", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("views_grid: error: ") and captured.out == ""
    assert "fixed_views_all_tokens_s0" in lines[0] and plan.hash[:12] in lines[0] and changed.hash[:12] in lines[0]


@pytest.mark.parametrize("args, words", [(["--steps", "2"], "steps"), (["--seeds", "0", "7"], "seed 7"),
                                         (["--arms", "fixed views, masked + cls"], "fixed views, masked + cls"),
                                         (["--preset", "milan_vit-micro-p8_offline"], "preset")])
def test_arguments_outside_the_plan_are_refused_before_any_work(grid, tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.setattr(grid, "run_arm", _boom)
    monkeypatch.setattr(records, "matmul_peak_gflops", _boom)
    assert grid.main(["--plan", str(_grid_plan(tmp_path)), *args, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("views_grid: error: plan grid_small: ") and words in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_runs_made_without_a_plan_are_not_mixed_into_a_planned_grid(grid, tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    old = grid.run_folder(out, grid.BASELINE, 0) / "result.json"  # a run of the grid before it had a plan
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"arm": grid.BASELINE, "seed": 0, **{m: 0.5 for m in grid.METRICS}}))
    monkeypatch.setattr(grid, "score_arm", _boom)
    assert grid.main(["--plan", str(_grid_plan(tmp_path)), "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no plan" in err and "grid_small" in err and err.count("\n") == 1


def test_a_missing_or_bad_plan_is_one_line_before_torch_loads(tmp_path):
    bad = tmp_path / "views_grid.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load((PLANS / "views_grid.yaml").read_text()), "baseline": "nobody"}))
    for plan, words in ((tmp_path / "none.yaml", "not found"), (bad, "baseline 'nobody'")):
        res = subprocess.run([sys.executable, "-X", "importtime", "benchmarks/views_grid.py", "--plan", str(plan),
                              "--out", str(tmp_path / "runs")], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
        imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
        message = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
        assert res.returncode == 2 and len(message) == 1 and str(plan) in message[0] and words in message[0], res.stderr[-2000:]
        assert "torch" not in imported and not (tmp_path / "runs").exists()


# --- benchmarks/hidden_object.py: the shared argument types --------------------------------------
@pytest.mark.parametrize("args, words", [(["--record", "/dev/null"], "--record: /dev/null: is not a regular file"),
                                         (["--record", "{folder}"], ": is a folder"),
                                         (["--seed", "-1"], "--seed: must be at least 0"),
                                         (["--preset", "nope"], "--preset: unknown preset 'nope'")])
def test_hidden_object_refuses_a_bad_option_in_one_line_before_the_work(tmp_path, monkeypatch, capsys, args, words):
    hidden = _script("hidden_object")
    monkeypatch.setattr(hidden, "run", _boom)
    with pytest.raises(SystemExit) as stop:
        hidden.main([a.format(folder=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("hidden_object: error: argument ") and words in err and err.count("\n") == 1
