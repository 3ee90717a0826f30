"""The benchmark scripts run (they print figures; these tests check they work, not their numbers)."""
import json
import subprocess
import sys

import pytest
import torch

from milan_lab.errors import ConfigError
from tests.helpers import ROOT, env


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_check_refuses_clearly_without_a_gpu():
    res = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env(), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert "no CUDA device" in res.stderr and "Traceback" not in res.stderr


def test_gpu_check_smoke_prints_one_json_with_every_part():
    res = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--smoke", "--no-compile"], cwd=ROOT, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["peak_matmul_tflops"] > 0
    (pre,) = out["vit_b_pretrain"]
    assert pre["img_per_s"] > 0 and 0 < pre["mfu"] < 1.5 and pre["gflops_per_step"] > 0
    assert out["vit_b_finetune"]["img_per_s"] > 0 and 0 < out["vit_b_finetune"]["mfu"] < 1.5
    off = out["offline_default"]
    assert off["steps"] == 2 and off["train_img_per_s"] > 0 and off["data_only_img_per_s"] > 0
    assert isinstance(off["data_keeps_up"], bool)
    jpeg = out["jpeg_pipeline"]
    assert jpeg["workers"] == 2 and jpeg["img_per_s"] > 0 and jpeg["model_img_per_s"] == pre["img_per_s"]
    assert jpeg["workers_needed"] >= 1 and isinstance(jpeg["data_keeps_up"], bool)


def test_time_to_quality_counts_the_cached_teacher_once_and_interpolates(teacher_dir, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from time_to_quality import interpolate_time, ratios, run

    from milan_lab.tools.info import model_info
    from tests.helpers import tiny_overrides
    # a 32-px student of the micro preset with a tiny teacher: 2 epochs x 2 steps x 16 images, kNN after every step
    tiny = dict(arg.split("=", 1) for arg in tiny_overrides(teacher_dir, tmp_path))
    tiny = {k: v for k, v in tiny.items() if k not in ("output_dir", "progress", "knn_every")}
    small = {**tiny, "offline_size": 32, "batch_size": 16, "knn_train_size": 16}
    preset = "milan_vit-micro-p8_offline"
    cached = run("cached", {**small, "teacher_cache": True, "min_crop_scale": 1.0}, tmp_path / "cached", target=0.0,
                 eval_every=1, val_size=16, preset=preset)
    plain = run("plain", {**small, "teacher_cache": False}, tmp_path / "plain", target=0.0, eval_every=1, val_size=16,
                preset=preset)
    info = model_info(preset)
    teacher, student = info["gflops_teacher"], info["gflops_pretrain_step_per_image"] - info["gflops_teacher"]
    for r, teacher_passes in ((cached, 32), (plain, 64)):  # the cache: one pass per scene; without: one per image seen
        end = r["final"]
        assert end["steps"] == 4 and end["images"] == 64
        assert end["tflops"] == pytest.approx((teacher_passes * teacher + 64 * student) / 1e3)
    assert [s for s, _, _ in cached["knn_curve"]] == [1, 2, 3, 4] and cached["teacher_cache"] is True
    assert cached["final_knn"] == pytest.approx(cached["knn_curve"][-1][2], abs=1e-4)
    assert cached["total_wall_s"] >= cached["knn_curve"][-1][1]  # training seconds leave the evaluations out
    # linear interpolation between the last evaluation below the target and the first at or above it
    curve = [(25, 10.0, 0.40), (50, 20.0, 0.55), (75, 30.0, 0.65)]
    assert interpolate_time(curve, 0.60) == pytest.approx((62.5, 25.0))
    assert interpolate_time(curve, 0.70) is None
    runs = [{"recipe": "reference", "seed": 0, "at_target": {"train_s": 100.0}},
            {"recipe": "views only", "seed": 0, "at_target": {"train_s": 50.0}},
            {"recipe": "reference", "seed": 1, "at_target": {"train_s": 80.0}},
            {"recipe": "views only", "seed": 1, "at_target": {"train_s": 60.0}}]
    assert ratios(runs) == {"views only": pytest.approx([0.5, 0.75])}
    # a finished run is reused as it is (its clock is one run's); one made with other settings is refused
    again = run("cached", {**small, "teacher_cache": True, "min_crop_scale": 1.0}, tmp_path / "cached", target=0.0,
                eval_every=1, val_size=16, preset=preset)
    assert again == json.loads(json.dumps(cached))
    with pytest.raises(ConfigError, match="a finished run made with"):
        run("cached", {}, tmp_path / "cached", target=0.6, eval_every=1, val_size=16, preset=preset)


def test_views_grid_applies_its_declared_rule_on_adjusted_intervals():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from views_grid import BASELINE, METRICS, PRIMARY, decide, summarise_grid

    from milan_lab.tools.ablation import markdown_tables

    def rows(arm, linear, ratio, noise=(0.0, 0.002, -0.002, 0.001, -0.001)):
        return [{"arm": arm, "seed": s, **{m: 0.5 + e for m in METRICS}, "linear_mean": linear + e,
                 "object_ratio": ratio + e} for s, e in enumerate(noise)]
    base = rows(BASELINE, 0.50, 2.0, noise=(0,) * 5)
    # better features, attention no worse: chosen; better features but attention clearly worse: not
    summary = summarise_grid(base + rows("crops", 0.60, 2.0) + rows("worse look", 0.70, 1.0))
    by = {r["arm"]: r for r in summary}
    assert by["crops"]["linear_mean_differs"] and by["worse look"]["object_ratio_differs"]
    assert "miou_p_holm" not in by["crops"]  # secondary metrics stay outside the adjusted family
    assert decide(summary) == "crops"
    # an improvement the seeds cannot resolve keeps the baseline
    noisy = summarise_grid(base + rows("crops", 0.51, 2.0, noise=(0.0, 0.05, -0.05, 0.04, -0.03)))
    assert decide(noisy) == BASELINE
    table = markdown_tables(summary, METRICS, primary=PRIMARY, baseline=BASELINE, diff_key="baseline_minus_arm")
    assert "object ratio (primary)" in table and f"| {BASELINE} - arm: [95 % CI]" in table and "ms / step" not in table


def test_app_latency_writes_a_record_and_its_table(tmp_path):
    rec = tmp_path / "app.json"
    res = subprocess.run([sys.executable, "benchmarks/app_latency.py", "--repeats", "1", "--size", "64", "--record",
                          str(rec)], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(rec.read_text())
    assert record["kind"] == "app-latency" and record["matmul_peak_gflops"] > 0
    assert record["command"] == f"python benchmarks/app_latency.py --repeats 1 --size 64 --record {rec}"
    times = record["result"]["interactions"]
    assert set(times) == {"attention (+rollout)", "masks (two samplers)", "reconstruction (+3 prompts)"}
    assert all(0 < t["median_ms"] <= t["max_ms"] for t in times.values())
    assert "| reconstruction (+3 prompts), 64 px scene |" in res.stdout
