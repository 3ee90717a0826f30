"""logger=tensorboard | wandb | mlflow: runs read back with each tool's own API."""
import json
import struct
import time
from pathlib import Path

import pytest

from milan_lab import cli
from milan_lab.config import get_config
from milan_lab.errors import ConfigError
from tests.helpers import tiny_overrides


def pretrain_cli(teacher_dir, out, *extra) -> dict:
    """``milan-lab pretrain ... key=value`` in this process; returns the run's metrics.json."""
    overrides = tiny_overrides(teacher_dir, out, offline_size=32, epochs=2, checkpoint_every=2)
    assert cli.main(["pretrain", "--preset", "milan_vit-micro-p8_offline", *overrides, *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_logger_takes_a_name_or_a_list_and_refuses_unknown_names():
    assert get_config("pretrain", None, ["logger=mlflow"]).logger == ["mlflow"]
    assert get_config("pretrain", None, ["logger=[tensorboard,mlflow]"]).logger == ["tensorboard", "mlflow"]
    assert get_config("pretrain", None, ["logger=tensorboard,wandb"]).logger == ["tensorboard", "wandb"]
    assert get_config("pretrain", None).logger == ["tensorboard"]
    with pytest.raises(ConfigError, match="'logger'.*'neptune'"):
        get_config("pretrain", None, ["logger=[tensorboard,neptune]"])


def test_a_missing_extra_is_one_line_naming_the_pip_install(teacher_dir, tmp_path, monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    overrides = tiny_overrides(teacher_dir, tmp_path / "run", offline_size=32, epochs=1)
    assert cli.main(["pretrain", "--preset", "milan_vit-micro-p8_offline", *overrides, "logger=wandb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'milan-lab[wandb]'" in err[0]
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any work


def test_mlflow_run_holds_config_every_metric_final_numbers_and_files(teacher_dir, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out = tmp_path / "run"
    result = pretrain_cli(teacher_dir, out, "logger=mlflow", "max_steps=2")
    run_id = (out / "mlflow_run_id").read_text().strip()
    # the interrupted run goes on: the same MLflow run, no step logged twice
    result = pretrain_cli(teacher_dir, out, "logger=mlflow")
    assert (out / "mlflow_run_id").read_text().strip() == run_id
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["batch_size"] == "16" and run.data.params["model.mask_ratio"] == "0.75"
    assert run.data.params["logger"] == "mlflow"
    losses = client.get_metric_history(run_id, "loss")
    assert [m.step for m in losses] == [r["step"] for r in result["history"] if "loss" in r] == [1, 2, 3, 4]
    assert [m.value for m in losses] == pytest.approx([r["loss"] for r in result["history"] if "loss" in r])
    assert {"lr", "img_per_s", "epoch"} <= set(run.data.metrics)
    assert run.data.metrics["final/final_loss"] == pytest.approx(result["summary"]["final_loss"])
    files = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "figures")}
    assert {"metrics.json", "metrics.csv", "figures/curves.png"} <= files
    assert not list(out.glob("events.out.tfevents.*"))  # logger=mlflow alone: no TensorBoard events


def wandb_records(run_file: Path):
    """The records of a W&B transaction log (``run-ID.wandb``), decoded with wandb's own protobuf ``Record``.
    wandb's Python reader of these files (``wandb.sdk.internal.datastore``) went with its Go core; the file
    is a 7-byte header, then LevelDB log framing (32 KiB blocks; chunks of crc32, length, type: 1 full,
    2 first, 3 middle, 4 last) around serialised records."""
    from wandb.proto import wandb_internal_pb2 as pb
    data, pos, block, parts = run_file.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            yield record


def items(updates) -> dict:
    """W&B's key/value items (``key``, or ``nested_key`` parts) -> a dict of decoded JSON values."""
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in updates}


def test_wandb_offline_run_holds_config_every_metric_final_numbers_and_files(teacher_dir, tmp_path, monkeypatch):
    for k, v in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_PROJECT": "tests"}.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "run"
    result = pretrain_cli(teacher_dir, out, "logger=[tensorboard,wandb]")
    run_id = (out / "wandb_run_id").read_text().strip()
    (run_file,) = (out / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    deadline = time.time() + 60  # wandb's service may still be writing the log when finish() returns
    while "exit" not in {r.WhichOneof("record_type") for r in wandb_records(run_file)} and time.time() < deadline:
        time.sleep(0.2)
    config, history, summary, artifacts = {}, [], {}, []
    for r in wandb_records(run_file):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            config.update(items(r.run.config.update))
        elif kind == "config":
            config.update(items(r.config.update))
        elif kind == "history":
            history.append(items(r.history.item))
        elif kind == "summary":
            summary.update(items(r.summary.update))
        elif kind == "artifact":
            artifacts += [m.path for m in r.artifact.manifest.contents]
    config = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in config.items()}
    assert config["batch_size"] == 16 and config["model.mask_ratio"] == 0.75 and config["output_dir"] == str(out)
    logged = [r for r in result["history"] if "loss" in r]
    assert [h["_step"] for h in history] == [r["step"] for r in logged] == [1, 2, 3, 4]
    assert [h["loss"] for h in history] == pytest.approx([r["loss"] for r in logged])
    assert summary["final/final_loss"] == pytest.approx(result["summary"]["final_loss"])
    assert {"metrics.json", "metrics.csv", "curves.png"} <= set(artifacts)
    assert list(out.glob("events.out.tfevents.*"))  # and TensorBoard beside it
