"""milan-lab compare: run folders written by the trainer's own writers (MetricsLog, write_json, save_checkpoint)
with known configs and curves, so every number the comparison gives is known."""
import dataclasses
import json
import math

import pytest
from PIL import Image

from milan_lab import cli
from milan_lab import config as C
from milan_lab.engine.common import MetricsLog, write_json
from milan_lab.errors import CheckpointError, ConfigError, OutputError
from milan_lab.evaluation.stats import t_interval
from milan_lab.io.checkpoints import save_checkpoint
from milan_lab.tools.compare import compare, compare_runs, format_compare, read_run, value_at
from milan_lab.viz.compare import compare_figure


def _config(out, **overrides) -> dict:
    cfg = C.get_config("pretrain", None, [f"output_dir={out}", *(f"{k}={v}" for k, v in overrides.items())])
    return dataclasses.asdict(cfg)


def loss_at(images: float) -> float:
    """The loss every hand-made run logs: a function of images seen alone."""
    return 2.0 - images / 1000


def make_run(folder, images: int = 512, knn_every_images: int = 128, finished: bool = True, final_knn=None, **overrides):
    """A run folder as pretraining leaves it: metrics.csv (a loss row per step, a kNN row every
    ``knn_every_images``), and metrics.json (finished) or only a checkpoint (a run still going)."""
    config = _config(folder, **overrides)
    batch = config["batch_size"]
    log, history, last = MetricsLog(folder / "metrics.csv"), [], images // batch
    for step in range(1, last + 1):
        rows = [{"step": step, "epoch": step / 10, "elapsed_s": step, "loss": loss_at(step * batch), "lr": 1e-3,
                 "img_per_s": 100.0}]
        if (step * batch) % knn_every_images == 0:
            knn = final_knn if step == last and final_knn is not None else step * batch / 10_000
            rows.append({"step": step, "epoch": step / 10, "elapsed_s": step, "knn_acc": knn})
        for row in rows:
            log.log(row)
            history.append(row)
    if finished:
        summary = {"steps": last, "final_loss": loss_at(images), "knn_acc": final_knn}
        write_json(folder / "metrics.json", {"summary": summary, "history": history, "config": config})
    else:
        save_checkpoint(folder / "checkpoints", last, {"step": last, "history": history, "config": config})
    return folder


def test_the_differences_table_lists_exactly_the_changed_keys(tmp_path):
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", batch_size=32, mask_ratio=0.5, sampler="random")
    r = compare_runs([a, b])
    assert {d["key"]: d["values"] for d in r["differences"]} == {
        "batch_size": [64, 32], "model.mask_ratio": [0.75, 0.5], "model.sampler": ["semantic", "random"]}
    md = format_compare(r)
    table = md.split("## Config differences")[1]
    keys = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "key" not in line]
    assert keys == ["batch_size", "model.mask_ratio", "model.sampler"]
    assert r["recipe_group"] is None and "intervals" not in r
    assert "Not seeds of one recipe" in md


def test_curves_are_aligned_by_images_seen_when_batch_sizes_differ(tmp_path):
    a = make_run(tmp_path / "a", images=512, batch_size=16)  # 32 steps
    b = make_run(tmp_path / "b", images=384, batch_size=64)  # 6 steps, fewer images
    r = compare_runs([a, b])
    runs = {x["name"]: x for x in r["runs"]}
    assert (runs["a"]["steps"], runs["b"]["steps"]) == (32, 6)
    assert runs["a"]["curves"]["loss"][0] == [16, loss_at(16)]
    assert [p[0] for p in runs["b"]["curves"]["loss"]] == [64, 128, 192, 256, 320, 384]
    assert r["common_images"] == 384  # the most both have seen, not the smaller step count
    for run in runs.values():  # at equal images the two runs' curves read the same value
        assert run["at_common"]["loss"] == pytest.approx(loss_at(384))
        assert run["at_common"]["knn_acc"] == pytest.approx(384 / 10_000)
    assert runs["a"]["final"]["loss"] == pytest.approx(loss_at(512))
    assert "at 384 images" in format_compare(r)


def test_value_at_interpolates_between_logged_points_and_refuses_outside():
    points = [(100, 1.0), (300, 2.0)]
    assert value_at(points, 200) == pytest.approx(1.5)
    assert value_at(points, 300) == 2.0
    assert value_at(points, 50) is None and value_at(points, 301) is None


def test_seeds_of_one_recipe_give_a_mean_with_its_t_interval(tmp_path):
    knn = [0.30, 0.32, 0.37]
    runs = [make_run(tmp_path / f"s{i}", seed=i, final_knn=v) for i, v in enumerate(knn)]
    r = compare_runs(runs)
    assert r["recipe_group"] == {"seeds": [0, 1, 2]}
    assert [d["key"] for d in r["differences"]] == ["seed"]
    s = r["intervals"]["knn_acc"]
    mean, low, high = t_interval(knn)
    assert (s["mean"], s["low"], s["high"], s["n"]) == pytest.approx((mean, low, high, 3))
    assert low < 0.30 and high > 0.37  # three seeds: the t-interval is wider than their range
    md = format_compare(r)
    assert "Seeds of one recipe (seeds 0, 1, 2)" in md
    assert f"[{100 * low:.1f} %, {100 * high:.1f} %]" in md


def test_one_more_difference_is_not_a_recipe(tmp_path):
    runs = [make_run(tmp_path / "s0", seed=0), make_run(tmp_path / "s1", seed=1, base_lr=0.001)]
    r = compare_runs(runs)
    assert r["recipe_group"] is None and "intervals" not in r


def test_table_json_and_figure_are_written(tmp_path):
    a, b = make_run(tmp_path / "runs" / "a"), make_run(tmp_path / "runs" / "b", batch_size=32)
    result, paths = compare([a, b], tmp_path / "cmp")
    assert paths["md"].read_text() == format_compare(result)
    data = json.loads(paths["json"].read_text())
    assert [x["name"] for x in data["runs"]] == ["a", "b"] and data["differences"][0]["key"] == "batch_size"
    with Image.open(paths["png"]) as im:
        assert im.format == "PNG" and im.size[0] > 600
    assert not list((tmp_path / "cmp").glob(".*tmp"))  # atomic writes leave no temporaries


def test_the_figure_names_each_run_and_labels_its_axes():
    curves = {"a": {"loss": [(16, 2.0), (32, 1.9)], "knn_acc": [(32, 0.2)]}, "b": {"loss": [(32, 1.8)]}}
    fig = compare_figure(curves)
    loss_ax, knn_ax = fig.axes[:2]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["a", "b"]
    assert [t.get_text() for t in knn_ax.get_legend().get_texts()] == ["a"]  # b logged no kNN
    for ax in (loss_ax, knn_ax):
        assert "images seen" in ax.get_xlabel() and ax.get_ylabel()
    assert list(loss_ax.lines[0].get_xdata()) == [16, 32]


def test_a_run_still_going_is_read_from_its_checkpoint(tmp_path):
    run = read_run(make_run(tmp_path / "going", images=256, finished=False, batch_size=32))
    assert not run.finished and run.batch_size == 32 and run.images_seen == 256
    assert run.final("loss") == pytest.approx(loss_at(256))


def test_folders_of_the_same_name_are_told_apart(tmp_path):
    runs = [make_run(tmp_path / "study1" / "seed0"), make_run(tmp_path / "study2" / "seed0", base_lr=0.01)]
    assert [x["name"] for x in compare_runs(runs)["runs"]] == ["study1/seed0", "study2/seed0"]


def test_bad_input_is_one_error_naming_the_folder(tmp_path):
    a = make_run(tmp_path / "a")
    with pytest.raises(ConfigError, match="at least 2"):
        compare_runs([a])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty: not a run folder"):
        compare_runs([a, tmp_path / "empty"])
    with pytest.raises(CheckpointError, match="missing: no such run folder"):
        compare_runs([a, tmp_path / "missing"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="metrics.json"):
        compare_runs([a, tmp_path / "bad"])


def test_the_out_folder_is_checked_before_the_runs_are_read(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="file"):
        compare([tmp_path / "not-a-run", tmp_path / "also-not"], tmp_path / "file")


def test_cli_prints_the_table_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b", mask_ratio=0.6)
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| model.mask_ratio | 0.75 | 0.6 |" in out and (tmp_path / "out" / "compare.png").is_file()
    assert cli.main(["compare", str(a), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("milan-lab compare: error:") and "nope" in err[0]
    assert cli.main(["compare", str(a)]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_interval_bounds_are_nan_free_for_two_seeds(tmp_path):
    runs = [make_run(tmp_path / f"s{i}", seed=i, final_knn=0.3 + 0.01 * i) for i in range(2)]
    s = compare_runs(runs)["intervals"]["knn_acc"]
    assert not math.isnan(s["low"]) and s["low"] < 0.3 < 0.31 < s["high"]
