"""A finished ablation run is reused only when scored on the study's probes and sizes and made on its device:
its result.json records them, and a study asking for other probes, sizes or device is refused (one line naming
the run and what differs) before any work."""
import json

import pytest

from milan_lab.errors import ConfigError
from milan_lab.tools import ablation

PRESET = "milan_vit-micro-p8_offline"
SIZES = {"eval_train": 16, "eval_val": 8, "seg_train": 8, "seg_val": 4, "seg_steps": 2}


@pytest.fixture()
def calls(monkeypatch):
    seen = []

    def score(preset, arm, seed, out, overrides, variant, probes=ablation.PROBES, **sizes):
        seen.append((tuple(probes), sizes))
        return {"arm": arm, "seed": seed, "variant": variant, "steps": 1, **{p: 0.5 for p in probes}}
    monkeypatch.setattr(ablation, "score_arm", score)
    return seen


def test_a_run_records_what_it_was_scored_on_and_is_reused_for_the_same(tmp_path, calls):
    row = ablation.run_arm(PRESET, "MILAN", 0, tmp_path, probes=("knn_cls",), **SIZES)
    stored = json.loads((ablation.run_folder(tmp_path, "MILAN", 0) / "result.json").read_text())
    assert stored["scored_on"] == {"probes": ["knn_cls"], "sizes": SIZES, "device": "cpu"} == row["scored_on"]
    assert ablation.run_arm(PRESET, "MILAN", 0, tmp_path, probes=("knn_cls",), **SIZES) == row and len(calls) == 1


@pytest.mark.parametrize("change, named", [({"probes": ("knn_cls", "miou")}, "probes"), ({"eval_train": 32}, "eval_train")])
def test_a_run_scored_on_other_probes_or_sizes_is_refused(tmp_path, calls, change, named):
    ablation.run_arm(PRESET, "MILAN", 0, tmp_path, probes=("knn_cls",), **SIZES)
    asked = {"probes": ("knn_cls",), **SIZES, **change}
    with pytest.raises(ConfigError, match=named) as err:
        ablation.run_arm(PRESET, "MILAN", 0, tmp_path, **asked)
    assert "MILAN_s0" in str(err.value) and "\n" not in str(err.value)
    assert len(calls) == 1  # refused, not silently reused or re-run


def test_a_run_that_does_not_record_its_probes_is_refused(tmp_path, calls):
    done = ablation.run_folder(tmp_path, "MILAN", 0) / "result.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"arm": "MILAN", "seed": 0, "knn_cls": 0.5, "plan": None, "plan_hash": None}))
    with pytest.raises(ConfigError, match="unrecorded"):
        ablation.run_arm(PRESET, "MILAN", 0, tmp_path, probes=("knn_cls",), **SIZES)


def test_a_run_made_on_another_device_is_refused_naming_both(tmp_path, calls):
    ablation.run_arm(PRESET, "MILAN", 0, tmp_path, probes=("knn_cls",), device="cuda", **SIZES)
    with pytest.raises(ConfigError) as err:  # resumed on the CPU: the GPU's run is not silently reused
        ablation.run_arm(PRESET, "MILAN", 0, tmp_path, probes=("knn_cls",), device="cpu", **SIZES)
    message = str(err.value)
    assert "MILAN_s0" in message and "'cuda'" in message and "'cpu'" in message and "\n" not in message
    assert len(calls) == 1


def test_a_run_that_does_not_record_its_device_is_refused(tmp_path, calls):
    done = ablation.run_folder(tmp_path, "MILAN", 0) / "result.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"arm": "MILAN", "seed": 0, "knn_cls": 0.5, "plan": None, "plan_hash": None,
                                "scored_on": {"probes": ["knn_cls"], "sizes": SIZES}}))  # made before runs recorded it
    with pytest.raises(ConfigError, match="unrecorded device") as err:
        ablation.run_arm(PRESET, "MILAN", 0, tmp_path, probes=("knn_cls",), **SIZES)
    assert "MILAN_s0" in str(err.value) and "\n" not in str(err.value) and not calls
