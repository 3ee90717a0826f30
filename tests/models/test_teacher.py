import pytest
import torch

from milan_lab.models.teacher import Teacher
from tests.conftest import make_clip


def reference_attention(teacher, images):
    """Independent computation: run the blocks via open_clip's own forward hooks, then an
    explicit softmax(q kᵀ / √d) from nn.MultiheadAttention's packed weights."""
    visual = teacher.visual
    captured = {}
    last = visual.transformer.resblocks[-1]
    handle = last.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
    visual(images)
    handle.remove()
    x = last.ln_1(captured["x"])
    w, b = last.attn.in_proj_weight, last.attn.in_proj_bias
    d = x.shape[-1]
    q = x @ w[:d].T + b[:d]
    k = x @ w[d:2 * d].T + b[d:2 * d]
    h = last.attn.num_heads
    q = q.reshape(*q.shape[:2], h, d // h).transpose(1, 2)
    k = k.reshape(*k.shape[:2], h, d // h).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)


def test_targets_and_importance_shapes(tiny_teacher):
    x = torch.randn(3, 3, 32, 32)
    targets, importance = tiny_teacher(x)
    assert targets.shape == (3, 17, 32) and importance.shape == (3, 16)
    assert (importance > 0).all() and (importance.sum(1) <= 1 + 1e-5).all()


def test_attention_matches_explicit_softmax(tiny_teacher):
    x = torch.randn(2, 3, 32, 32)
    ref = reference_attention(tiny_teacher, x)
    got = tiny_teacher.get_last_selfattention(x)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    _, importance = tiny_teacher(x)
    torch.testing.assert_close(importance, ref[:, :, 0, 1:].mean(1), atol=1e-5, rtol=1e-4)


def test_targets_are_ln_post_then_proj_of_all_tokens(tiny_teacher):
    x = torch.randn(2, 3, 32, 32)
    visual = tiny_teacher.visual
    tokens = visual.transformer(visual._embeds(x))
    expected = visual.ln_post(tokens) @ visual.proj
    targets, _ = tiny_teacher(x)
    torch.testing.assert_close(targets, expected, atol=1e-5, rtol=1e-4)
    # the pooled CLIP embedding is the class-token target
    pooled = visual(x)
    torch.testing.assert_close(targets[:, 0], pooled, atol=1e-5, rtol=1e-4)


def test_one_forward_pass_only(tiny_teacher):
    calls = []
    tiny_teacher.visual.transformer.resblocks[0].register_forward_hook(lambda *a: calls.append(1))
    tiny_teacher(torch.randn(1, 3, 32, 32))
    assert len(calls) == 1


def test_teacher_is_frozen_and_stays_in_eval(tiny_teacher):
    assert not any(p.requires_grad for p in tiny_teacher.parameters())
    tiny_teacher.train()
    assert not tiny_teacher.training and not tiny_teacher.clip.training


def test_clip_input_norm_changes_what_the_teacher_sees():
    clip = make_clip()
    same = Teacher(clip, input_norm="same")
    renorm = Teacher(clip, input_norm="clip", clip_mean=(0.48, 0.46, 0.41), clip_std=(0.27, 0.26, 0.28))
    x = torch.randn(1, 3, 32, 32)
    assert not torch.allclose(same(x)[0], renorm(x)[0])
    with pytest.raises(ValueError, match="input_norm"):
        Teacher(clip, input_norm="bogus")


def test_text_tower_encodes_prompts(tiny_teacher):
    emb = tiny_teacher.encode_text(["a red star", "a blue circle at the top"])
    assert emb.shape == (2, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
