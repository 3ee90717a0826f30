"""benchmarks/score_repeat.py: a study's random-init arm scored again in fresh processes, one per instruction-set
limit, exactly as the study scores it, beside the records that hold it."""
import json
import sys
from pathlib import Path

import pytest
import yaml

from milan_lab.tools import ablation
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import score_repeat  # noqa: E402

SIZES = {"eval_train": 24, "eval_val": 16, "seg_train": 8, "seg_val": 4, "seg_steps": 2}


def _plan(tmp_path, **changes) -> Path:
    content = yaml.safe_load((ROOT / "benchmarks" / "plans" / "decoder.yaml").read_text())
    content.update({"name": "toy", "sizes": SIZES, **changes})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def _record(tmp_path, plan: Path, scores: dict, seed: int = 1, variant: str = "dense", name: str = "study") -> Path:
    row = {"arm": "random init", "seed": seed, "variant": variant, **scores,
           "scored_on": {"sizes": {**ablation.EVAL_SIZES, **SIZES}}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"commit": "abc1234", "cpu": "some CPU", "matmul_peak_gflops": 50.0,
                                "result": {"rows": [row]}}))
    return path


@pytest.mark.parametrize("extra, named", [(["--probes", "linear_mean", "nope"], "nope"),
                                          (["--probes", "linear_mean", "linear_dense"], "linear_dense"),
                                          (["--isa", "sse"], "--isa"),
                                          (["--seed", "-1"], "--seed")])
def test_bad_options_are_one_line_before_any_scoring(tmp_path, monkeypatch, capsys, extra, named):
    monkeypatch.setattr(score_repeat, "child", lambda *a: pytest.fail("a process started for a refused option"))
    with pytest.raises(SystemExit) as e:
        score_repeat.main(["--plan", str(_plan(tmp_path)), "--compare", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and named in err[0], err


def test_a_record_scored_otherwise_or_without_the_row_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(score_repeat, "child", lambda *a: pytest.fail("a process started for a refused record"))
    plan = _plan(tmp_path)
    for record, named in ((_record(tmp_path, plan, {"linear_mean": 0.5}, seed=3, name="a"), "no 'random init' row for seed 1"),
                          (_record(tmp_path, plan, {"linear_mean": 0.5}, variant="mid", name="b"), "mid scenes"),
                          (_record(tmp_path, plan, {}, name="c"), "no 'linear_mean'")):
        with pytest.raises(SystemExit):
            score_repeat.main(["--plan", str(plan), "--seed", "1", "--probes", "linear_mean", "--compare", str(record)])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0] and str(record) in err[0], err


def test_a_limit_torch_does_not_honour_is_refused_before_any_scoring(monkeypatch):
    calls = []

    def child(limit, task):
        calls.append((limit, task))
        return {"capability": "AVX2"}  # what torch says under the avx512 limit on a CPU without AVX-512
    monkeypatch.setattr(score_repeat, "child", child)
    with pytest.raises(score_repeat.ConfigError, match="--isa avx512: torch runs AVX2 under it"):
        score_repeat.check_limits(["native", "avx512"])
    assert all(task is None for _, task in calls)  # only the capability asked, nothing scored


def test_each_process_scores_as_the_study_does_and_the_record_holds_them_beside_the_compared(tmp_path):
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    limits = ["native", "avx2"] if " avx2" in flags else ["native"]
    plan = _plan(tmp_path)
    probes = ["linear_mean", "knn_cls"]
    content = yaml.safe_load(plan.read_text())
    # the study's own scoring, in this process: what the native process must reproduce (same CPU, same kernels)
    here = ablation.score_arm(content["preset"], "random init", 1, tmp_path / "here", content.get("overrides"),
                              content["variant"], probes=probes, device="cpu", **{**ablation.EVAL_SIZES, **SIZES})
    compared = _record(tmp_path, plan, {"linear_mean": here["linear_mean"], "knn_cls": 0.0})
    out = tmp_path / "repeat.json"
    assert score_repeat.main(["--plan", str(plan), "--seed", "1", "--probes", *probes, "--isa", *limits,
                              "--compare", str(compared), "--record", str(out)]) == 0
    result = json.loads(out.read_text())["result"]
    assert list(result["processes"]) == limits and result["metrics"] == probes and result["eval_val"] == SIZES["eval_val"]
    assert result["processes"]["native"]["scores"] == {p: here[p] for p in probes}
    if "avx2" in limits:
        assert result["processes"]["avx2"]["capability"] == "AVX2"
    assert result["compared"][0]["scores"] == {"linear_mean": here["linear_mean"], "knn_cls": 0.0}
    text = score_repeat.table(result)
    assert "study.json" in text and f"{round(here['knn_cls'] * 16)} ({100 * here['knn_cls']:.2f} %)" in text


def test_a_compared_record_is_named_relative_to_the_checkout(tmp_path, monkeypatch):
    from milan_lab.tools.plans import load_plan
    plan = load_plan(_plan(tmp_path))
    (tmp_path / "docs").mkdir()
    path = _record(tmp_path / "docs", plan, {"linear_mean": 0.5})
    monkeypatch.setattr(score_repeat, "CHECKOUT", tmp_path)  # the record lies inside the checkout: no machine's folders
    assert score_repeat.recorded(path, plan, 1, ["linear_mean"])["record"] == "docs/study.json"
    monkeypatch.setattr(score_repeat, "CHECKOUT", tmp_path / "elsewhere")  # outside it: the path as given
    assert score_repeat.recorded(path, plan, 1, ["linear_mean"])["record"] == str(path)
