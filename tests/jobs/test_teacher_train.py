import json

import open_clip
import torch

from milan_lab.io.checkpoints import latest_checkpoint
from milan_lab.factory.teachers import load_teacher
from milan_lab.jobs.teacher import TeacherTrainConfig, hard_negative_batch, train_teacher


def test_hard_negative_groups_differ_only_in_shape():
    cfg = TeacherTrainConfig(batch_size=16, group_size=8)
    images, captions = hard_negative_batch(cfg, step=3)
    assert images.shape == (16, 64, 64, 3)
    group = captions[:8]
    shapes = [next(w for w in c.split() if w in ("circle", "square", "triangle", "diamond", "cross", "star", "ring",
                                                    "crescent")) for c in group]
    assert len(set(shapes)) == 8  # every shape once
    assert len({c.replace(s, "") for c, s in zip(group, shapes)}) == 1  # the rest of the caption is shared
    again, captions2 = hard_negative_batch(cfg, step=3)
    assert (again == images).all() and captions2 == captions


def test_train_resume_and_export_loadable_by_open_clip(tmp_path, monkeypatch):
    from milan_lab.jobs import teacher as train_mod
    cfg = dict(steps=4, batch_size=16, warmup_steps=1, checkpoint_every=2)
    straight = train_teacher(TeacherTrainConfig(**cfg, output_dir=str(tmp_path / "a")), progress=False)

    real = train_mod.hard_negative_batch

    def dies_at_step_3(c, step):
        if step == 3:
            raise KeyboardInterrupt("killed")
        return real(c, step)

    monkeypatch.setattr(train_mod, "hard_negative_batch", dies_at_step_3)
    resumed_cfg = TeacherTrainConfig(**cfg, output_dir=str(tmp_path / "b"))
    try:
        train_teacher(resumed_cfg, progress=False)
    except KeyboardInterrupt:
        pass
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "step_00000002.pt"
    monkeypatch.setattr(train_mod, "hard_negative_batch", real)
    resumed = train_teacher(resumed_cfg, progress=False)
    a = open_clip.create_model(f"local-dir:{straight}")
    b = open_clip.create_model(f"local-dir:{resumed}")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    teacher = load_teacher(str(resumed))
    targets, importance = teacher(torch.randn(2, 3, 64, 64))
    assert targets.shape == (2, 65, 128) and importance.shape == (2, 64)
    assert (resumed / "open_clip_model.safetensors").is_file()
    meta = json.loads((resumed / "open_clip_config.json").read_text())["milan_lab"]
    assert meta["train_config"]["steps"] == 4 and len(meta["vocab"]) == 33


def test_shipped_teacher_loads_offline_from_safetensors(monkeypatch):
    from milan_lab.factory.teachers import SHIPPED_TEACHER
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert [p.name for p in SHIPPED_TEACHER.glob("*.safetensors")] == ["open_clip_model.safetensors"]
    teacher = load_teacher()
    assert teacher.image_size == 64 and teacher.patch_size == 8 and teacher.embed_dim == 128
    assert not any(p.requires_grad for p in teacher.parameters())
