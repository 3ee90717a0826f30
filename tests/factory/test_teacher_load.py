import json

import open_clip
import pytest
import torch

from milan_lab.errors import CheckpointError
from milan_lab.factory import teachers as load_mod
from milan_lab.factory.teachers import load_teacher
from tests.conftest import TINY_CLIP, make_clip

OPENAI_LIKE = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=64),
                   text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=1))


def _uses_quick_gelu(teacher) -> bool:
    act = teacher.visual.transformer.resblocks[0].mlp.gelu
    return isinstance(act, open_clip.model.QuickGELU)


def test_open_clip_name_with_local_checkpoint(tmp_path):
    cfg_dir = tmp_path / "cfgs"
    cfg_dir.mkdir()
    (cfg_dir / "milan-test-tiny.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg_dir)
    clip = make_clip(seed=3)
    path = tmp_path / "tiny.pt"
    torch.save({"epoch": 1, "name": "x", "state_dict": {f"module.{k}": v for k, v in clip.state_dict().items()}}, path)
    teacher = load_teacher("milan-test-tiny", pretrained=str(path))
    assert not _uses_quick_gelu(teacher)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(teacher(x)[0][:, 0], clip.visual(x))  # the file's weights, not a fresh init


def _openai_release(seed: int):
    """A CLIP in OpenAI's key layout, with the entries OpenAI's state dicts carry."""
    torch.manual_seed(seed)
    clip = open_clip.CLIP(**OPENAI_LIKE, quick_gelu=True)
    return clip, dict(clip.state_dict(), input_resolution=torch.tensor(32), context_length=torch.tensor(77),
                      vocab_size=torch.tensor(49408))


def test_openai_layout_checkpoint_selects_quick_gelu(tmp_path):
    clip, state = _openai_release(0)
    path = tmp_path / "openai.pt"
    torch.save(state, path)
    teacher = load_teacher(pretrained=str(path))
    assert _uses_quick_gelu(teacher) and teacher.embed_dim == 32 and teacher.grid_size == (4, 4)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(teacher(x)[0][:, 0], clip.visual(x))


def test_mmpretrain_target_generator_checkpoint(tmp_path):
    """mmpretrain's clip_vit_base_16.pth.tar holds OpenAI's key layout (here wrapped in state_dict)."""
    clip, state = _openai_release(1)
    path = tmp_path / "clip_vit_base_16.pth.tar"
    torch.save({"state_dict": state}, path)
    teacher = load_teacher(pretrained=str(path))
    assert _uses_quick_gelu(teacher)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(teacher(x)[0][:, 0], clip.visual(x))


def test_mmpretrain_layouts_without_openai_markers(tmp_path):
    """A state dict of mmpretrain's CLIP module, and the teacher inside an mmpretrain MILAN
    pretraining checkpoint (``target_generator.tokenizer.*``), are recognised by their weight names."""
    clip, state = _openai_release(2)
    plain = {k: v for k, v in state.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    torch.save(plain, tmp_path / "mmpretrain_clip.pth")
    milan = {f"target_generator.tokenizer.{k}": v.half() for k, v in plain.items()}
    milan.update({"backbone.cls_token": torch.zeros(1, 1, 8), "neck.mask_token": torch.zeros(1, 1, 8)})
    torch.save({"meta": {"epoch": 400}, "state_dict": milan}, tmp_path / "milan_vit-base-p16.pth")
    x = torch.randn(2, 3, 32, 32)
    for name in ("mmpretrain_clip.pth", "milan_vit-base-p16.pth"):
        teacher = load_teacher(pretrained=str(tmp_path / name))
        assert _uses_quick_gelu(teacher), name
        tol = dict(atol=2e-2, rtol=2e-2) if name.startswith("milan") else {}  # the MILAN file holds fp16
        torch.testing.assert_close(teacher(x)[0][:, 0], clip.visual(x), **tol)
    # a MILAN checkpoint whose teacher part is missing its text tower is named as such
    torch.save({"state_dict": {k: v for k, v in milan.items() if "visual." in k}}, tmp_path / "image_only.pth")
    with pytest.raises(CheckpointError, match="without its text tower"):
        load_teacher(pretrained=str(tmp_path / "image_only.pth"))


def test_openai_tag_forces_quick_gelu_and_other_tags_do_not(monkeypatch):
    seen = {}

    def fake_create(name, pretrained=None, force_quick_gelu=False, device="cpu", **kw):
        seen[pretrained] = force_quick_gelu
        return make_clip()

    monkeypatch.setattr(load_mod.open_clip, "create_model", fake_create)
    monkeypatch.setattr(load_mod, "_weights_cached", lambda tag_cfg: True)  # as if downloaded before: no network needed
    load_teacher("ViT-B-16", pretrained="openai")
    load_teacher("ViT-B-16", pretrained="laion2b_s34b_b88k")
    assert seen == {"openai": True, "laion2b_s34b_b88k": False}


def test_errors_say_what_to_pass_instead(tmp_path):
    with pytest.raises(CheckpointError, match="pretrained='openai'"):
        load_teacher("ViT-B-16", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Q-99'"):
        load_teacher("ViT-Q-99", pretrained="openai")
    with pytest.raises(ValueError, match="known tags"):
        load_teacher("ViT-B-16", pretrained="not-a-tag")
    with pytest.raises(CheckpointError, match="open_clip_config.json"):
        load_teacher(f"local-dir:{tmp_path}")


def test_offline_tag_download_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="offline mode.*the weights of ViT-B-32 \\(pretrained tag 'laion2b_s34b_b79k'\\) "
                                           "are not in the local cache.*pretrained=PATH"):
        load_teacher("ViT-B-32", pretrained="laion2b_s34b_b79k")
