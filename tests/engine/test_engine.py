import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from milan_lab.config import get_config
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from milan_lab.jobs.pretrain import build_optimizer, build_scheduler, pretrain
from milan_lab.models.milan import MILAN
from tests.helpers import ROOT, env, tiny_overrides


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
    # TensorBoard events beside metrics.csv, with the same losses
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    logged = [e.value for e in acc.Scalars("loss")]
    assert logged == pytest.approx(losses, rel=1e-6)


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


def test_finetune_recipe_layer_decay_and_augmentation():
    from timm.data import Mixup
    from timm.data.transforms import RandomResizedCropAndInterpolation

    from milan_lab.jobs.finetune import build_finetune
    cfg = get_config("finetune", "milan_vit-micro-p8_offline", ["layer_decay=0.65", "mixup=0.8", "cutmix=1.0",
                                                                  "offline_size=64", "eval_size=32"])
    model, opt, train_set, _, mixup = build_finetune(cfg)
    assert isinstance(mixup, Mixup) and mixup.mixup_alpha == 0.8 and mixup.cutmix_alpha == 1.0
    assert mixup.label_smoothing == 0.1
    ops = train_set.transform.transform.transforms
    assert any(isinstance(t, RandomResizedCropAndInterpolation) for t in ops)
    assert any("RandAugment" in type(t).__name__ for t in ops) and any("Erasing" in type(t).__name__ for t in ops)
    names = {id(p): n for n, p in model.named_parameters()}
    scale = {names[id(p)]: g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    depth = len(model.encoder.blocks)  # layers: embeddings 0, blocks 1..depth, head depth+1
    assert scale["head.weight"] == 1.0
    assert scale["encoder.blocks.0.attn.qkv.weight"] == pytest.approx(0.65 ** depth)
    assert scale["encoder.cls_token"] == pytest.approx(0.65 ** (depth + 1))
    wd = {names[id(p)]: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert wd["encoder.blocks.0.attn.qkv.weight"] == 0.05 and wd["encoder.cls_token"] == 0 and wd["head.bias"] == 0
    assert model.encoder.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)


def test_linear_recipe_freezes_the_encoder_and_uses_lars():
    from timm.optim import Lars

    from milan_lab.jobs.linear import build_linear
    cfg = get_config("linear", "milan_vit-micro-p8_offline", ["offline_size=64", "eval_size=32"])
    model, opt, _, _ = build_linear(cfg)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"] and isinstance(opt, Lars)
    assert not model.fc_norm.affine and opt.defaults["momentum"] == 0.9
    model.train()
    assert not model.encoder.training  # the probed encoder stays in eval mode
    vit_b = get_config("linear", "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k")
    assert vit_b.effective_lr == pytest.approx(3.2) and vit_b.batch_size == 2048 and vit_b.warmup_epochs == 10
    ft_b = get_config("finetune", "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k")
    assert ft_b.effective_lr == pytest.approx(4e-4) and ft_b.layer_decay == 0.65 and ft_b.min_lr == 1e-6


def test_compile_falls_back_to_eager_with_one_warning(teacher_dir, tmp_path, monkeypatch):
    from milan_lab.jobs.pretrain import pretrain

    def unavailable(*args, **kwargs):
        raise RuntimeError("no compiler on this machine")
    monkeypatch.setattr(torch, "compile", unavailable)
    cfg = get_config("pretrain", "milan_vit-micro-p8_offline",
                     tiny_overrides(teacher_dir, tmp_path / "c", offline_size=32, epochs=1, compile=True))
    with pytest.warns(RuntimeWarning, match="torch.compile is not available here .*running eagerly"):
        summary = pretrain(cfg)
    assert summary["steps"] == 2 and summary["final_loss"] > 0


def test_every_run_logs_its_config_and_final_numbers_as_tensorboard_hparams(teacher_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from milan_lab.jobs.pretrain import pretrain
    out = tmp_path / "hp"
    pretrain(get_config("pretrain", "milan_vit-micro-p8_offline",
                        tiny_overrides(teacher_dir, out, offline_size=32, epochs=1, mask_ratio=0.6)))
    events = EventAccumulator(str(out), size_guidance={"tensors": 0})
    events.Reload()
    plugin = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugin and "_hparams_/session_start_info" in plugin
    start = plugin["_hparams_/session_start_info"]
    assert b"model.mask_ratio" in start and b"batch_size" in start
    assert "final/final_loss" in events.Tags()["scalars"]
