"""The ablation studio: paired runs and the interval arithmetic behind its conclusions."""
import statistics

import pytest
import torch

from milan_lab.config import get_config
from milan_lab.tools import ablation
from milan_lab.jobs.pretrain import pretrain
from milan_lab.models.milan import MILAN
from tests.helpers import tiny_overrides, tiny_teacher_folder


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return tiny_teacher_folder(tmp_path_factory.mktemp("teacher") / "tiny")


def _first_steps(monkeypatch, teacher_dir, out, arm: dict, steps: int = 2) -> list[dict]:
    """What the student saw in its first steps: input images, kept patches, initial encoder weights."""
    seen = []
    real = MILAN.forward_train

    def spy(self, images, generator=None, **kwargs):
        copy = torch.Generator()
        copy.set_state(generator.get_state())
        mask_draw = torch.rand(4, generator=copy)
        seen.append({"images": images.clone(), "noise": mask_draw,
                     "encoder": {k: v.clone() for k, v in self.encoder.state_dict().items()} if not seen else None})
        return real(self, images, generator=generator, **kwargs)
    monkeypatch.setattr(MILAN, "forward_train", spy)
    pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", tiny_overrides(teacher_dir, out, max_steps=steps,
                                                                                  **arm)))
    monkeypatch.setattr(MILAN, "forward_train", real)
    return seen


def test_arms_of_one_seed_see_the_same_weights_images_and_mask_noise(monkeypatch, teacher_dir, tmp_path):
    milan = _first_steps(monkeypatch, teacher_dir, tmp_path / "a", {})
    mae = _first_steps(monkeypatch, teacher_dir, tmp_path / "b", ablation.ARMS["MAE (all three)"])
    assert len(milan) == len(mae) == 2
    for a, b in zip(milan, mae):
        assert torch.equal(a["images"], b["images"])    # same scenes, crops and flips
        assert torch.equal(a["noise"], b["noise"])      # same mask noise stream
    for k, v in milan[0]["encoder"].items():           # same initial student, teacher or not
        assert torch.equal(v, mae[0]["encoder"][k]), k
    other_seed = _first_steps(monkeypatch, teacher_dir, tmp_path / "c", {"seed": 1})
    assert not torch.equal(other_seed[0]["images"], milan[0]["images"])
    assert not torch.equal(other_seed[0]["noise"], milan[0]["noise"])


def test_t_interval_matches_a_hand_computation():
    diffs = [0.02, 0.05, 0.01, 0.04, 0.03]
    mean, lo, hi = ablation.t_interval(diffs)
    half = 2.7764451051977987 * statistics.stdev(diffs) / 5 ** 0.5  # t(0.975, 4 degrees of freedom)
    assert mean == pytest.approx(0.03) and (lo, hi) == pytest.approx((0.03 - half, 0.03 + half))
    assert lo > 0


def test_summary_pairs_by_seed_and_calls_a_difference_only_when_the_interval_excludes_zero():
    rows = []
    for seed, (m, r, d) in enumerate([(0.60, 0.50, 0.61), (0.62, 0.53, 0.60), (0.58, 0.47, 0.59)]):
        base = {"linear": 0.0, "miou": 0.0, "final_loss": 0.0, "ms_per_step": 1.0}
        rows += [{"arm": "MILAN", "seed": seed, "knn": m, **base},
                 {"arm": "random masking", "seed": seed, "knn": r, **base},
                 {"arm": "MAE decoder", "seed": seed, "knn": d, **base}]
    rows.append({"arm": "MAE decoder", "seed": 7, "knn": 0.0, "linear": 0, "miou": 0, "final_loss": 0,
                 "ms_per_step": 1})  # no MILAN run for seed 7: not paired, left out of the difference
    summary = {r["arm"]: r for r in ablation.summarise(rows)}
    assert summary["random masking"]["knn_milan_minus_arm"] == pytest.approx(0.1)
    assert summary["random masking"]["knn_differs"] is True
    assert summary["MAE decoder"]["knn_milan_minus_arm"] == pytest.approx(0.0)
    assert summary["MAE decoder"]["knn_differs"] is False and summary["MAE decoder"]["runs"] == 4
    assert "knn_ci" not in summary["MILAN"]


def test_markdown_tables_show_mean_std_and_the_paired_interval_with_its_verdict():
    rows = []
    for seed, (m, r) in enumerate([(0.60, 0.50), (0.62, 0.53), (0.58, 0.47)]):
        base = {"linear": 0.3, "miou": 0.2, "final_loss": 0.5, "ms_per_step": 100.0}
        rows += [{"arm": "MILAN", "seed": seed, "knn": m, **base}, {"arm": "random masking", "seed": seed, "knn": r, **base}]
    summary = ablation.summarise(rows)
    text = ablation.markdown_tables(summary)
    diff, lo, hi = ablation.t_interval([0.10, 0.09, 0.11])
    milan_row = next(line for line in text.splitlines() if line.startswith("| MILAN |"))
    assert "| 60.0 ± 2.0 |" in milan_row and "| 0.500 | 100 |" in milan_row
    paired = text.splitlines()[-1]
    # kNN differs (interval above 0: starred); linear and mIoU are equal in both arms: a zero-width interval
    # at 0, which does not exclude 0 (no star)
    assert paired.startswith(f"| random masking | {100 * diff:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] * |")
    assert paired.endswith("| +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] |")
