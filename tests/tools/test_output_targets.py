"""Every output target is checked before the work: a --record, --out, export target or output_dir that
cannot be written is one line (exit 2) before anything is measured; the long benchmarks write their
record after each finished run; every benchmark script refuses a bad option before it loads torch."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from milan_lab.cli import main
from milan_lab.config import get_config
from milan_lab.errors import OutputError
from milan_lab.io.targets import check_writable
from tests.helpers import ROOT, env



@pytest.fixture(scope="module")
def no_new_files() -> Path:
    """A folder that takes no new files, even from root (tests run as root, who passes every
    permission check, so a chmod-ed folder would not do): /sys, a kernel file system."""
    probe = Path("/sys") / f".milan-lab-test-{os.getpid()}"
    try:
        probe.touch()
    except OSError:
        return Path("/sys")
    probe.unlink()
    pytest.skip("this machine's /sys takes new files")


@pytest.fixture
def targets(tmp_path):
    """A folder and a file, and the bad targets made of them with the words their message must hold."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    return {"folder": (tmp_path / "folder", "is a folder"),
            "under a file": (tmp_path / "file" / "x.json", "is a file, not a folder")}


def _boom(*args, **kwargs):
    raise AssertionError("the work ran although its output target cannot be written")


# --- the helper -------------------------------------------------------------------------------------
def test_check_writable_names_the_path_and_the_reason(tmp_path, targets):
    for path, words in targets.values():
        with pytest.raises(OutputError, match=words) as e:
            check_writable(path, "--record")
        assert str(path) in str(e.value) and "--record" in str(e.value)
    with pytest.raises(OutputError, match="not a regular file"):
        check_writable("/dev/null")  # a rename over it would replace the device
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file", folder=True)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "sub", folder=True)
    # a path whose folders do not exist yet is fine, and checking it creates nothing
    assert check_writable(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    assert check_writable(tmp_path / "folder", folder=True) == tmp_path / "folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_check_writable_finds_a_place_that_takes_no_files_even_as_root(no_new_files):
    with pytest.raises(OutputError, match=f"cannot write in {no_new_files}"):
        check_writable(no_new_files / "record.json")
    with pytest.raises(OutputError, match=f"cannot write in {no_new_files}"):
        check_writable(no_new_files / "new" / "run", folder=True)


# --- the CLI: refused before the measurement -------------------------------------------------------
# (command line before --record, the measuring function that must not run)
MEASURED = {
    "info": (["info", "milan_vit-tiny-p8_offline"], "milan_lab.tools.info.model_info"),
    "knn": (["knn", "random"], "milan_lab.evaluation.probes.knn_eval"),
    "seg-probe": (["seg-probe", "random"], "milan_lab.evaluation.probes.seg_probe_eval"),
    "attention": (["attention", "some_run"], "milan_lab.evaluation.probes.attention_eval"),
    "teacher eval": (["teacher", "eval"], "milan_lab.evaluation.teacher.evaluate_teacher"),
    "bench": (["bench"], "milan_lab.tools.bench.bench"),
}


@pytest.mark.parametrize("command", list(MEASURED))
@pytest.mark.parametrize("kind", ["folder", "under a file"])
def test_a_bad_record_is_one_line_before_the_measurement(command, kind, targets, monkeypatch, capsys):
    argv, measure = MEASURED[command]
    monkeypatch.setattr(measure, _boom)
    monkeypatch.setattr("milan_lab.factory.teachers.load_teacher", _boom)
    monkeypatch.setattr("milan_lab.tools.records.matmul_peak_gflops", _boom)
    path, words = targets[kind]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--record", str(path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--record" in err and str(path) in err and words in err and "Traceback" not in err


def test_a_record_where_nothing_can_be_written_is_refused_as_root(no_new_files, monkeypatch, capsys):
    monkeypatch.setattr("milan_lab.evaluation.probes.knn_eval", _boom)
    with pytest.raises(SystemExit) as e:
        main(["knn", "random", "--record", str(no_new_files / "knn.json")])
    assert e.value.code == 2 and f"cannot write in {no_new_files}" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["folder", "under a file"])
def test_export_to_a_folder_is_refused_before_reading_the_checkpoint(kind, targets, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("milan_lab.factory.models.read_checkpoint", _boom)
    path, words = targets[kind]
    # the right suffix, but a folder, or under a file
    path = path.rename(tmp_path / "x.safetensors") if kind == "folder" else path.with_suffix(".safetensors")
    with pytest.raises(SystemExit) as e:
        main(["export", "some.pt", "--timm", str(path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and str(path) in err and words in err
    from milan_lab.factory.models import export_timm  # the API checks too
    with pytest.raises(OutputError, match=words):
        export_timm("some.pt", path)


def test_seg_probe_checks_where_its_probe_goes_before_training(tmp_path, monkeypatch):
    from milan_lab.evaluation import probes
    checkpoint = tmp_path / "step_10.pt"
    checkpoint.write_bytes(b"weights")
    probes.probe_path_for(checkpoint).mkdir()  # a folder where the probe file would go
    monkeypatch.setattr(probes, "_encoder", _boom)
    with pytest.raises(OutputError, match="the probe file .*seg_probe.safetensors: is a folder"):
        probes.seg_probe_eval(str(checkpoint), "milan_vit-tiny-p8_offline")


def test_a_run_whose_output_dir_cannot_be_created_stops_before_the_model(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr("milan_lab.jobs.pretrain.create_model", _boom)
    from milan_lab.jobs.pretrain import pretrain
    cfg = get_config("pretrain", "milan_vit-tiny-p8_offline", {"output_dir": str(tmp_path / "file" / "run")})
    with pytest.raises(OutputError, match=r"output_dir .*file/run: cannot be created: .*file is a file"):
        pretrain(cfg)


def test_write_record_checks_its_target_before_measuring_the_peak(tmp_path, monkeypatch):
    from milan_lab.tools import records
    monkeypatch.setattr(records, "matmul_peak_gflops", _boom)
    with pytest.raises(OutputError, match="record .*: is a folder"):
        records.write_record(tmp_path, "knn", {"knn_top1": 0.5})
    # a peak measured earlier in the same run is written as it is, not measured again
    path = records.write_record(tmp_path / "r.json", "knn", {"knn_top1": 0.5}, peak=12.5)
    assert json.loads(path.read_text())["matmul_peak_gflops"] == 12.5


# --- the benchmark scripts: every option refused before any work, in one line ----------------------
def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BAD_OPTIONS = {  # script, its arguments, words the line must hold, whether the check needs torch
    "views_grid preset": ("views_grid", ["--preset", "nope"], "unknown preset 'nope'", False),
    "profile_step preset": ("profile_step", ["nope"], "unknown preset 'nope'", False),
    "views_grid seed": ("views_grid", ["--seeds", "0", "-1"], "--seeds: must be at least 0", False),
    "time_to_quality seed": ("time_to_quality", ["--seeds", "-3"], "--seeds: must be at least 0", False),
    "views_grid out": ("views_grid", ["--out", "{file}"], "is a file, not a folder", False),
    "time_to_quality out": ("time_to_quality", ["--out", "{file}/x"], "is a file, not a folder", False),
    "time_to_quality record": ("time_to_quality", ["--record", "{folder}"], "--record: ", False),
    "data_pipeline out": ("data_pipeline", ["--out", "{file}/x"], "is a file, not a folder", False),
    "app_latency record": ("app_latency", ["--record", "{folder}"], "is a folder", False),
    "profile_step device": ("profile_step", ["--device", "cuda"], "CUDA is not available", True),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_benchmark_scripts_refuse_a_bad_option_in_one_line_before_any_work(case, tmp_path):
    name, args, words, needs_torch = BAD_OPTIONS[case]
    if needs_torch:
        import torch
        if torch.cuda.is_available():
            pytest.skip("checks the refusal of cuda on a machine without a GPU")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    args = [a.format(file=tmp_path / "file", folder=tmp_path / "folder") for a in args]
    # -X importtime lists every module the script imported before it stopped
    res = subprocess.run([sys.executable, "-X", "importtime", f"benchmarks/{name}.py", *args], cwd=ROOT, env=env(),
                         capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    message = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
    assert res.returncode == 2 and res.stdout == "" and len(message) == 1, res.stderr[-2000:]
    assert message[0].startswith(f"{name}: error: ") and words in message[0]
    heavy = {"timm", "open_clip", "milan_lab.jobs", "milan_lab.models", "gradio"} | (set() if needs_torch else {"torch"})
    assert not heavy & imported, f"imported before refusing: {sorted(heavy & imported)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"] and not list((tmp_path / "folder").iterdir())


@pytest.mark.parametrize("name", ["time_to_quality", "views_grid"])
def test_a_folder_where_the_default_record_goes_is_refused_before_training(name, tmp_path, monkeypatch, capsys):
    script = _script(name)
    monkeypatch.setattr(script, "run" if name == "time_to_quality" else "run_arm", _boom)
    monkeypatch.setattr("milan_lab.tools.records.matmul_peak_gflops", _boom)
    (tmp_path / "record.json").mkdir()  # OUT/record.json, the record's default place, is a folder
    assert script.main(["--seeds", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{name}: error: record ") and "record.json: is a folder" in err


# --- long benchmarks write their record as they go --------------------------------------------------
def _fake_ttq_run(calls, stop_at):
    def run(name, overrides, out, target, seed=0, eval_every=25, val_size=2048):
        calls.append((name, seed))
        if len(calls) == stop_at:
            raise KeyboardInterrupt  # the study is stopped during this run
        return {"recipe": name, "seed": seed, "at_target": {"train_s": 10.0 * len(calls), "steps": 5, "images": 50,
                                                            "tflops": 1.0}, "final": {"knn": 0.7, "steps": 9}}
    return run


def test_time_to_quality_keeps_every_finished_run_in_its_record(tmp_path, monkeypatch):
    ttq = _script("time_to_quality")
    monkeypatch.setattr("milan_lab.tools.records.matmul_peak_gflops", lambda: 42.0)  # measured once, not per run
    calls = []
    monkeypatch.setattr(ttq, "run", _fake_ttq_run(calls, stop_at=3))
    record = tmp_path / "ttq.json"
    with pytest.raises(KeyboardInterrupt):
        ttq.main(["--seeds", "0", "--out", str(tmp_path / "ttq"), "--record", str(record)])
    rec = json.loads(record.read_text())  # the two runs finished before the stop
    assert [(r["recipe"], r["seed"]) for r in rec["result"]["runs"]] == [("reference", 0), ("views only", 0)]
    assert rec["result"]["complete"] is False and rec["result"]["planned_runs"] == 3
    assert rec["result"]["ratios"] == {"views only": [2.0]} and rec["matmul_peak_gflops"] == 42.0
    calls.clear()
    monkeypatch.setattr(ttq, "run", _fake_ttq_run(calls, stop_at=0))
    assert ttq.main(["--seeds", "0", "--out", str(tmp_path / "ttq"), "--record", str(record)]) == 0
    rec = json.loads(record.read_text())
    assert rec["result"]["complete"] is True and len(rec["result"]["runs"]) == 3 and rec["seeds"] == [0]


def test_views_grid_keeps_every_finished_run_in_its_record(tmp_path, monkeypatch):
    grid = _script("views_grid")
    monkeypatch.setattr("milan_lab.tools.records.matmul_peak_gflops", lambda: 42.0)
    calls = []

    def run_arm(preset, arm, seed, steps, out, plan=None):
        calls.append((arm, seed))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {"arm": arm, "seed": seed, **{m: 0.5 for m in grid.METRICS}}
    monkeypatch.setattr(grid, "run_arm", run_arm)
    arms = [grid.BASELINE, "random crops, all tokens"]
    with pytest.raises(KeyboardInterrupt):
        grid.main(["--seeds", "0", "1", "--arms", *arms, "--out", str(tmp_path)])  # the plan's steps
    rec = json.loads((tmp_path / "record.json").read_text())
    assert [(r["arm"], r["seed"]) for r in rec["result"]["rows"]] == [(arms[0], 0), (arms[1], 0)]
    assert rec["result"]["complete"] is False and "summary" not in rec["result"] and rec["seeds"] == [0]
