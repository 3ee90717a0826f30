"""Study plans: loaded and hashed, stamped on every run with the provenance of its start, and a study
that refuses to mix runs made under another plan."""
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from milan_lab.errors import ConfigError
from milan_lab.tools import ablation, plans, records
from tests.helpers import ROOT

PLANS = ROOT / "benchmarks" / "plans"
sys.path.insert(0, str(ROOT / "scripts"))  # the documents' tables (scripts/ is a folder of scripts)
import tables  # noqa: E402


def _fake_score(calls):
    """A fast arm: no training, fixed probe scores (MILAN a point better), and a count of its calls."""
    def score(preset, arm, seed, out, overrides, variant, **sizes):
        calls.append((arm, seed))
        bonus = 0.01 if arm == ablation.BASELINE else 0.0
        return {"arm": arm, "seed": seed, "variant": variant, "steps": 1, "ms_per_step": 1.0,
                **{m: 0.5 + bonus + 0.001 * seed for m in ablation.PROBES}}
    return score


def _small_plan(tmp_path, **changes):
    content = yaml.safe_load((PLANS / "ablation_dense.yaml").read_text())
    content.update({"name": "small", "arms": ["MILAN", "random masking"], "retrospective": False, **changes})
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_the_hash_is_of_the_content_not_of_the_layout(tmp_path):
    plan = plans.load_plan(PLANS / "views_grid.yaml")
    relaid = tmp_path / "views_grid.yaml"
    relaid.write_text("# another comment\n" + yaml.safe_dump(plan.content, default_flow_style=True, width=60))
    assert plans.load_plan(relaid).hash == plan.hash and len(plan.hash) == 64
    relaid.write_text(yaml.safe_dump({**plan.content, "seeds": [0, 1, 2, 3]}))
    assert plans.load_plan(relaid).hash != plan.hash


@pytest.mark.parametrize("change, key", [({"decision_rule": None, "seeds": []}, "seeds"),
                                         ({"baseline": "nobody"}, "baseline"),
                                         ({"tost_margin": -1}, "tost_margin"),
                                         ({"primary": ["miou"], "holm_family": ["knn_cls"]}, "miou")])
def test_a_bad_plan_is_one_line_naming_the_file_and_the_key(tmp_path, change, key):
    path = _small_plan(tmp_path, **change)
    with pytest.raises(ConfigError, match=key) as err:
        plans.load_plan(path)
    assert str(path) in str(err.value)
    content = yaml.safe_load(path.read_text())
    del content["decision_rule"]
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ConfigError, match="decision_rule"):
        plans.load_plan(path)


def test_each_existing_study_has_a_plan_that_reproduces_how_its_record_was_run():
    for variant in ("dense", "sparse"):
        plan = plans.load_plan(PLANS / f"ablation_{variant}.yaml")
        rec = records.read_record(f"ablation_{variant}", ROOT / "docs" / "results")
        params = rec["result"]["params"]
        assert plan["arms"] == params["arms"] == list(ablation.ARMS) and plan["seeds"] == rec["seeds"]
        assert {**plan["overrides"], **plan["sizes"], "preset": plan["preset"], "variant": plan["variant"],
                "primary": plan["primary"][0]} == {k: v for k, v in params.items() if k not in ("arms", "max_steps")}
        assert plan["holm_family"] == list(ablation.PROBES) and plan["tost_margin"] is None  # the family it reported
    grid = plans.load_plan(PLANS / "views_grid.yaml")
    rec = records.read_record("views_grid", ROOT / "docs" / "results")["result"]
    assert grid["arms"] == list(rec["arms"]) and grid["baseline"] == rec["baseline"] and grid["sizes"] == {"steps": rec["steps"]}
    assert grid["primary"] == grid["holm_family"] == rec["primary"] and grid["preset"] == rec["preset"]


def test_a_run_carries_the_commit_it_started_from_and_a_changed_plan_is_refused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ablation, "score_arm", _fake_score(calls))
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    plan = plans.load_plan(_small_plan(tmp_path))
    out = tmp_path / "runs"
    rows = ablation.run_plan(plan, str(out), seeds=[0, 1])
    assert len(calls) == 4 and all(r["plan"] == "small" and r["plan_hash"] == plan.hash for r in rows)
    assert all(r["started"]["commit"] == head and isinstance(r["started"]["uncommitted_changes"], bool) for r in rows)
    stored = json.loads((ablation.run_folder(out, "MILAN", 0) / "result.json").read_text())
    assert stored["plan_hash"] == plan.hash and stored["started"]["commit"] == head
    assert ablation.run_plan(plan, str(out), seeds=[0, 1]) == rows and len(calls) == 4  # the same plan: reused

    changed = plans.load_plan(_small_plan(tmp_path, tost_margin=0.02))  # the plan edited after its first runs
    assert changed.hash != plan.hash
    with pytest.raises(ConfigError) as err:
        ablation.run_plan(changed, str(out), seeds=[0])
    message = str(err.value)
    assert "MILAN_s0" in message and plan.hash[:12] in message and changed.hash[:12] in message and "\n" not in message
    assert len(calls) == 4  # refused before any work
    with pytest.raises(ConfigError, match="no plan"):  # a run of the plan is not reused by an unplanned study either
        ablation.run_ablation("milan_vit-micro-p8_offline", [0], str(out), plan["overrides"], ["MILAN"])


def test_provenance_is_taken_when_the_run_starts(tmp_path, monkeypatch):
    commits = iter(["c0ffee1", "beef002", "cafe003", "dead004"])
    state = {"commit": next(commits)}
    monkeypatch.setattr(records, "provenance", lambda command=None: {"commit": state["commit"], "uncommitted_changes": False,
                                                                       "date": "2030-01-01T00:00:00+00:00",
                                                                       "cpu_capability": "AVX2"})
    real = _fake_score([])

    def slow_score(*args, **kwargs):  # someone commits while the run trains
        state["commit"] = next(commits)
        return real(*args, **kwargs)
    monkeypatch.setattr(ablation, "score_arm", slow_score)
    plan = plans.load_plan(_small_plan(tmp_path))
    rows = ablation.run_plan(plan, str(tmp_path / "runs"), seeds=[0], arms=["MILAN", "random masking"])
    assert [r["started"]["commit"] for r in rows] == ["c0ffee1", "beef002"]
    assert [r["cpu_capability"] for r in plans.runs_table(rows)] == ["AVX2", "AVX2"]  # each run's instruction set


def test_arguments_outside_the_plan_are_refused_and_fewer_seeds_are_a_footer_line(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "score_arm", _fake_score([]))
    plan = plans.load_plan(_small_plan(tmp_path))
    with pytest.raises(ConfigError, match="seed 7"):
        ablation.run_plan(plan, str(tmp_path / "runs"), seeds=[0, 7])
    with pytest.raises(ConfigError, match="eval_val"):
        ablation.run_ablation(plan["preset"], [0], str(tmp_path / "runs"), plan["overrides"], plan["arms"], plan["variant"],
                              plan=plan, **{**plan["sizes"], "eval_val": 64})
    since = plans.now()
    rows = ablation.run_plan(plan, str(tmp_path / "runs"), seeds=[0, 1])
    result = ablation.plan_result(plan, rows, since)
    assert result["plan"]["hash"] == plan.hash and [r["reused"] for r in result["runs"]] == [False] * 4
    folder = tmp_path / "results"
    records.write_record(folder / "ablation_small.json", "ablation", result, seeds=[0, 1], wall_s=60.0, peak=1.0)
    text = tables.table_ablation(folder, "ablation_small")
    assert "Plan `small`" in text and "MILAN: 2 of 3 planned seeds (missing 2)" in text
    assert "random masking: 2 of 3 planned seeds (missing 2)" in text
    assert plans.runs_table(rows, "2999-01-01T00:00:00+00:00")[0]["reused"] is True


def test_the_footer_says_run_as_planned_when_nothing_deviates(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "score_arm", _fake_score([]))
    plan = plans.load_plan(_small_plan(tmp_path, seeds=[0, 1]))
    rows = ablation.run_plan(plan, str(tmp_path / "runs"))
    footer = plans.plan_footer(ablation.plan_result(plan, rows))
    assert footer.startswith(f"Plan `small` ({plan.hash[:12]}): run as planned") and "commit" in footer
    assert "instruction sets" not in footer  # every run on one CPU kind
    result = ablation.plan_result(plan, rows)
    for run, isa in zip(result["runs"], ["AVX2", "AVX512", "AVX512", None]):  # None: a run from an older record
        run["cpu_capability"] = isa
    footer = plans.plan_footer(result)
    assert "runs on CPUs with different instruction sets (AVX2, AVX512); 1 run with no recorded instruction set" in footer
    old = [{**r, "started": {k: v for k, v in r["started"].items() if k != "cpu_capability"}} for r in rows]
    assert [r["cpu_capability"] for r in plans.runs_table(old)] == [None] * 4  # older records read, not refused
    shutil.rmtree(tmp_path / "runs")


def test_plans_are_read_like_config_files_and_a_retrospective_plan_says_so(tmp_path):
    from milan_lab.errors import ConfigError
    from milan_lab.tools.plans import load_plan, plan_footer
    text = (ROOT / "benchmarks" / "plans" / "views_grid.yaml").read_text()
    bomb = tmp_path / "views_grid.yaml"
    bomb.write_text("x: &a [1, 2]\ny: [*a, *a]\n" + text)
    with pytest.raises(ConfigError, match="views_grid.yaml"):  # aliases refused, as in --config files
        load_plan(bomb)
    plan = load_plan(ROOT / "benchmarks" / "plans" / "views_grid.yaml")
    assert plan["retrospective"] is True
    footer = plan_footer({"plan": plan.summary(), "rows": [], "runs": []})
    assert "retrospective" in footer


def test_a_run_from_a_sitting_that_ended_within_the_same_second_is_still_reused():
    since = "2030-01-01T00:00:00.500000+00:00"  # this sitting began half a second into the second
    rows = [{"arm": "MILAN", "seed": 0, "started": {"date": "2030-01-01T00:00:00+00:00"}},  # an older record: seconds
            {"arm": "MILAN", "seed": 1, "started": {"date": "2030-01-01T00:00:00.400000+00:00"}},  # the sitting before
            {"arm": "MILAN", "seed": 2, "started": {"date": "2030-01-01T00:00:00.600000+00:00"}}]  # this sitting's
    assert [r["reused"] for r in plans.runs_table(rows, since)] == [True, True, False]
    assert "." in plans.now()  # a sitting's start is taken to the microsecond
