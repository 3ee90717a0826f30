"""The benchmark scripts run (they print figures; these tests check they work, not their numbers)."""
import json
import subprocess
import sys

import pytest
import torch

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
