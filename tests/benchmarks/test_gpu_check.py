"""benchmarks/gpu_check.py's parts, checked cheaply on the CPU (the whole smoke run is in test_benchmarks.py)."""
import gc
import sys
import weakref

import pytest
import torch

from milan_lab.data import datasets
from milan_lab.engine.contract import RunResult
from milan_lab.jobs import pretrain as pretrain_job
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


class _Stop(Exception):
    """Raised once the data pipeline's timing would start: nothing is timed."""


def test_the_offline_run_lets_its_model_go_before_the_data_pipeline_is_timed(monkeypatch):
    models = []

    def job(cfg):
        model = torch.nn.Linear(2, 2)
        models.append(weakref.ref(model))
        return RunResult({"steps": 1, "final_loss": 0.5}, [], model)

    def dataset(*args, **kwargs):
        gc.collect()
        assert models and models[0]() is None, "the trained model is still held while the data pipeline is timed"
        raise _Stop
    monkeypatch.setattr(pretrain_job, "pretrain", job)
    monkeypatch.setattr(datasets, "build_dataset", dataset)
    with pytest.raises(_Stop):
        gpu_check.offline_default(torch.device("cpu"), 1, 8, "milan_vit-micro-p8_offline", 16)
