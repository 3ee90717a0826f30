import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from milan_lab.config import get_config
from milan_lab.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from milan_lab.engine.pretrain import build_optimizer, build_scheduler, pretrain
from milan_lab.models.milan import MILAN
from tests.helpers import ROOT, env, tiny_overrides, tiny_teacher_folder


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return tiny_teacher_folder(tmp_path_factory.mktemp("teacher") / "tiny")


def cfg_for(teacher_dir, out, **extra):
    return get_config("pretrain", "milan_vit-micro-p8_offline", tiny_overrides(teacher_dir, out, **extra))


def test_loss_falls_on_offline_data(teacher_dir, tmp_path):
    cfg = cfg_for(teacher_dir, tmp_path / "run", offline_size=320, batch_size=32, epochs=4, checkpoint_every=100,
                  base_lr=3e-3, warmup_epochs=0.3)
    summary = pretrain(cfg)
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert summary["steps"] == 40 and len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_recipe_param_groups_and_schedule(tiny_cfg, tiny_teacher):
    model = MILAN(tiny_cfg, tiny_teacher)
    cfg = get_config("pretrain", "milan_vit-micro-p8_offline", ["batch_size=512", "base_lr=1.5e-4"])
    opt = build_optimizer(model, cfg)
    assert cfg.effective_lr == pytest.approx(3e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    decay = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    assert {"encoder.cls_token", "decoder.mask_token", "encoder.norm.weight", "encoder.blocks.0.attn.qkv.bias"} <= no_decay
    assert "encoder.blocks.0.attn.qkv.weight" in decay and not any(n.startswith("teacher") for n in decay | no_decay)
    assert opt.defaults["betas"] == (0.9, 0.95)
    sched = build_scheduler(opt, total_steps=100, warmup_steps=10, min_lr=0.0)
    lrs = []
    for s in range(100):
        sched.step_update(s)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == 0 and lrs[5] == pytest.approx(3e-4 * 0.5)
    assert max(lrs) == pytest.approx(3e-4) and lrs[10] == pytest.approx(3e-4)
    assert lrs[55] == pytest.approx(3e-4 * 0.5, rel=0.05) and lrs[99] < 1e-6


def test_checkpoints_are_atomic_and_pruned(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.ones(2) * step}, keep=2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["step_00000002.pt", "step_00000003.pt"]
    (tmp_path / ".step_00000009.pt.123.tmp").write_bytes(b"partial write")  # a killed write
    assert latest_checkpoint(tmp_path).name == "step_00000003.pt"
    assert load_checkpoint(latest_checkpoint(tmp_path))["step"] == 3


def test_killed_run_resumes_bitwise_identical(teacher_dir, tmp_path):
    overrides = tiny_overrides(teacher_dir, tmp_path / "killed", checkpoint_every=1, epochs=3, offline_size=64)
    proc = subprocess.Popen([sys.executable, "-m", "milan_lab", "pretrain", "--preset", "milan_vit-micro-p8_offline",
                             *overrides], cwd=ROOT, env=env(OMP_NUM_THREADS="2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = latest_checkpoint(ckpts)
        if found is not None and int(found.stem.split("_")[1]) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(latest_checkpoint(ckpts))["step"]
    assert 3 <= killed_at < 12
    torch.set_num_threads(2)
    resumed = pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", overrides))
    straight = pretrain(get_config("pretrain", "milan_vit-micro-p8_offline",
                                   tiny_overrides(teacher_dir, tmp_path / "straight", checkpoint_every=1, epochs=3,
                                                  offline_size=64)))
    assert resumed["steps"] == straight["steps"] == 12
    a = load_checkpoint(latest_checkpoint(ckpts))
    b = load_checkpoint(latest_checkpoint(tmp_path / "straight" / "checkpoints"))
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    la = [r["loss"] for r in a["history"]]
    lb = [r["loss"] for r in b["history"]]
    assert la == lb
    csv_rows = (tmp_path / "killed" / "metrics.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 12  # no duplicated rows after the resume


def test_two_process_ddp_matches_one_process(teacher_dir, tmp_path):
    # top-k masking and no drop-path: the only randomness left is the data order, which the
    # sampler makes identical for any number of processes, so results must agree.
    common = dict(sampler="topk", epochs=1, offline_size=64, batch_size=16, checkpoint_every=4)
    ddp_out, one_out = tmp_path / "ddp", tmp_path / "one"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "milan_lab",
           "pretrain", "--preset", "milan_vit-micro-p8_offline", *tiny_overrides(teacher_dir, ddp_out, **common)]
    res = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    torch.set_num_threads(1)
    pretrain(get_config("pretrain", "milan_vit-micro-p8_offline", tiny_overrides(teacher_dir, one_out, **common)))
    torch.set_num_threads(2)
    a = load_checkpoint(latest_checkpoint(ddp_out / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(one_out / "checkpoints"))
    assert a["step"] == b["step"] == 4 and len(a["rng"]) == 2
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], atol=2e-4, rtol=1e-3)
    la = [r["loss"] for r in a["history"]]
    lb = [r["loss"] for r in b["history"]]
    assert la == pytest.approx(lb, rel=1e-3)
