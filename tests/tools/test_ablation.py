"""The ablation studio: paired runs and the interval arithmetic behind its conclusions."""

import gc
import json
import weakref

import pytest
import torch
from scipy import stats

from milan_lab.config import get_config
from milan_lab.engine.contract import RunResult
from milan_lab.errors import ConfigError
from milan_lab.evaluation.stats import t_interval
from milan_lab.tools import ablation
from milan_lab.jobs.pretrain import pretrain
from milan_lab.models.milan import MILAN
from tests.helpers import tiny_overrides


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


def _rows(values: dict[str, list[float]], metric: str = "knn_cls") -> list[dict]:
    base = dict.fromkeys(ablation.PROBES, 0.0) | {"ms_per_step": 1.0}
    return [{"arm": arm, "seed": seed, **base, metric: v} for arm, vs in values.items() for seed, v in enumerate(vs)]


def test_summary_pairs_by_seed_and_marks_only_what_survives_holm():
    rows = _rows({"MILAN": [0.60, 0.62, 0.58, 0.61], "random masking": [0.50, 0.53, 0.47, 0.51],
                  "MAE decoder": [0.61, 0.60, 0.59, 0.60]})
    rows.append({"arm": "MAE decoder", "seed": 7, **dict.fromkeys(ablation.PROBES, 0.0), "ms_per_step": 1.0})  # unpaired
    summary = {r["arm"]: r for r in ablation.summarise(rows)}
    rm = summary["random masking"]
    assert rm["knn_cls_milan_minus_arm"] == pytest.approx(0.1)
    raw = stats.ttest_1samp([0.10, 0.09, 0.11, 0.10], 0).pvalue
    assert rm["knn_cls_p"] == pytest.approx(raw)
    family = 2 * len(ablation.PROBES)  # two compared arms x five probes
    assert rm["knn_cls_p_holm"] == pytest.approx(min(1, family * raw)) and rm["knn_cls_differs"] is True
    assert summary["MAE decoder"]["knn_cls_differs"] is False and summary["MAE decoder"]["runs"] == 5
    assert "knn_cls_ci" not in summary["MILAN"]


def test_markdown_tables_show_raw_and_adjusted_p_and_the_primary_metric_first():
    rows = _rows({"MILAN": [0.60, 0.62, 0.58], "random masking": [0.50, 0.53, 0.47]}, metric="linear_mean")
    text = ablation.markdown_tables(ablation.summarise(rows))
    header = text.splitlines()[0]
    assert header.startswith("| arm | runs | linear, mean patch (primary) % |")
    milan_row = next(line for line in text.splitlines() if line.startswith("| MILAN |"))
    assert "| 60.0 ± 2.0 |" in milan_row and milan_row.endswith("| 1 |")
    diff, lo, hi = t_interval([0.10, 0.09, 0.11])
    paired = next(line for line in text.splitlines() if line.startswith("| random masking | +"))
    assert paired.startswith(f"| random masking | {100 * diff:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}], p ")
    assert "minimum detectable effect" in text


def test_random_init_and_equal_compute_arms(teacher_dir, tmp_path, monkeypatch):
    """The random-init arm trains nothing and is scored on the whole battery; the equal-FLOPs MAE arm trains
    longer by MILAN's FLOP ratio; a finished run is reused."""
    monkeypatch.setattr(ablation, "compute_factor", lambda preset: 2.0)
    over = dict(arg.split("=", 1) for arg in tiny_overrides(teacher_dir, tmp_path, epochs=1, offline_size=16, batch_size=8))
    over.pop("output_dir")
    sizes = dict(eval_train=16, eval_val=16, seg_train=8, seg_val=8, seg_steps=2)
    rand = ablation.run_arm("milan_vit-micro-p8_offline", ablation.RANDOM, 0, tmp_path, over, **sizes)
    assert rand["steps"] == 0 and set(ablation.PROBES) <= set(rand)
    # the trained arms' probes are the random arm's (above): their steps are what this checks
    corner = ablation.run_arm("milan_vit-micro-p8_offline", "MAE (all three)", 0, tmp_path, over, probes=(), **sizes)
    equal = ablation.run_arm("milan_vit-micro-p8_offline", ablation.EQUAL_COMPUTE, 0, tmp_path, over, probes=(), **sizes)
    assert corner["steps"] == 2 and equal["steps"] == 2 * corner["steps"] and corner["ms_per_step"] > 0
    assert ablation.run_arm("milan_vit-micro-p8_offline", ablation.RANDOM, 0, tmp_path, over, **sizes) == rand  # reused


def test_compute_factor_counts_the_teacher_for_milan_only(monkeypatch):
    """MILAN's cost per image: the teacher's forward + 3x (encoder + prompting decoder); the MAE corner's:
    3x (encoder + MAE decoder), no teacher."""
    costs = {"with teacher": 10.0, "no teacher": 0.0}
    monkeypatch.setattr(ablation, "model_info", lambda preset: {
        "gflops_teacher": costs[preset], "gflops_encoder_masked": 1.0, "gflops_decoder_by_type": {"prompting": 2.0, "mae": 1.0}})
    ablation.compute_factor.cache_clear()
    try:
        assert ablation.compute_factor("with teacher") == pytest.approx((10 + 3 * (1 + 2)) / (3 * (1 + 1)))
        assert ablation.compute_factor("no teacher") == pytest.approx(3 * (1 + 2) / (3 * (1 + 1)))
    finally:
        ablation.compute_factor.cache_clear()  # no made-up costs left for other tests
    monkeypatch.undo()
    info = ablation.model_info("milan_vit-micro-p8_offline")
    enc, dec = info["gflops_encoder_masked"], info["gflops_decoder_by_type"]
    assert info["gflops_teacher"] > 0 and ablation.compute_factor("milan_vit-micro-p8_offline") == pytest.approx(
        (info["gflops_teacher"] + 3 * (enc + dec["prompting"])) / (3 * (enc + dec["mae"])))


class _Stop(Exception):
    """Raised by a stand-in job once it has seen what a test checks: nothing trains."""


def test_an_arm_trains_on_the_device_it_is_asked_for_even_the_cpu(tmp_path, monkeypatch):
    """The preset says ``device: auto`` (CUDA on a GPU machine): a study asked for the CPU trains there too."""
    seen = []

    def job(cfg):
        seen.append(cfg.device)
        raise _Stop
    monkeypatch.setattr(ablation, "pretrain", job)
    assert get_config("pretrain", "milan_vit-micro-p8_offline").device == "auto"
    with pytest.raises(_Stop):
        ablation.score_arm("milan_vit-micro-p8_offline", "MILAN", 0, tmp_path, {}, "dense", probes=(), device="cpu")
    assert seen == ["cpu"]


def test_the_trained_model_is_let_go_before_the_encoder_is_scored(tmp_path, monkeypatch):
    """The job's result carries its whole model; only its numbers stay while the saved encoder is loaded and scored."""
    models = []

    def job(cfg):
        model = torch.nn.Linear(2, 2)
        models.append(weakref.ref(model))
        (tmp_path / "metrics.json").write_text(json.dumps({"history": []}))
        return RunResult({"steps": 3}, [], model)

    def load(source, arch, seed=0):
        gc.collect()
        assert models and models[0]() is None, "the trained model is still held while the encoder is loaded"
        return torch.nn.Identity()
    monkeypatch.setattr(ablation, "pretrain", job)
    monkeypatch.setattr(ablation, "load_encoder", load)
    monkeypatch.setattr(ablation, "score", lambda encoder, probes, sizes, **kw: {})
    row = ablation.score_arm("milan_vit-micro-p8_offline", "MILAN", 0, tmp_path, {}, "dense", probes=())
    assert row["steps"] == 3 and row["device"] == "cpu"


def test_an_arm_the_config_refuses_is_refused_before_the_first_run(tmp_path, monkeypatch):
    """The ViT-B preset refuses the label-free teacher's settings: refused before MILAN trains, naming the arm."""
    calls = []
    monkeypatch.setattr(ablation, "score_arm", lambda preset, arm, *a, **kw: calls.append(arm) or {"arm": arm})
    vit_b = "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k"
    with pytest.raises(ConfigError, match="label-free teacher") as err:
        ablation.run_ablation(vit_b, [0], str(tmp_path), {}, arms=("MILAN", "label-free teacher"), probes=())
    assert "teacher" in str(err.value) and "\n" not in str(err.value) and calls == []
