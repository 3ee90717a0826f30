"""Study arms (ablation, views grid, time to quality) keep no timeline snapshots unless asked: each arm is
scored once at its end, and the default keep_every=-1 would write about eight encoder files per run."""
import sys

import pytest

from tests.helpers import ROOT

PRESET = "milan_vit-micro-p8_offline"


class Stop(Exception):
    """Raised by the stand-in pretrain once it has seen the run's config."""


def catch_config(monkeypatch, module, seen):
    def fake(cfg):
        seen.append(cfg)
        raise Stop
    monkeypatch.setattr(module, "pretrain", fake)


def test_ablation_arms_keep_no_snapshots_unless_the_overrides_ask(monkeypatch, tmp_path):
    from milan_lab.tools import ablation
    seen = []
    catch_config(monkeypatch, ablation, seen)
    for overrides in (None, {"keep_every": 3}):
        with pytest.raises(Stop):
            ablation.score_arm(PRESET, "MILAN", 0, tmp_path, overrides, "dense")
    assert [c.keep_every for c in seen] == [0, 3]


def test_views_grid_and_time_to_quality_arms_keep_no_snapshots(monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import time_to_quality
    from views_grid import ARMS, arm_config

    import milan_lab.jobs.pretrain
    assert all(arm_config("milan_vit-tiny-p8_offline", arm, 0, 5, tmp_path).keep_every == 0 for arm in ARMS)
    seen = []
    catch_config(monkeypatch, milan_lab.jobs.pretrain, seen)
    with pytest.raises(Stop):
        time_to_quality.run("reference", {}, tmp_path / "ttq", target=0.5, preset=PRESET)
    assert seen[0].keep_every == 0
