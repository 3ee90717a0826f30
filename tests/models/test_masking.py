import pytest
import torch

from milan_lab.models.masking import SAMPLERS, random_masking, sample_mask, semantic_masking, topk_masking


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_conventions(sampler, ratio):
    n, num = 4, 64
    importance = torch.rand(n, num)
    m = sample_mask(sampler, ratio, n, num, importance, generator=torch.Generator().manual_seed(0))
    keep = int(num * (1 - ratio))
    assert m.ids_keep.shape == (n, keep) and m.ids_restore.shape == (n, num) and m.mask.shape == (n, num)
    assert (m.mask.sum(1) == num - keep).all()
    # mask is 0 exactly at the kept indices
    assert (torch.gather(m.mask, 1, m.ids_keep) == 0).all()
    assert m.ids_dump.shape == (n, num - keep)
    assert (torch.gather(m.mask, 1, m.ids_dump) == 1).all()
    # ids_restore inverts the shuffle
    shuffle = torch.argsort(m.ids_restore, 1)
    assert (torch.gather(shuffle, 1, m.ids_restore) == torch.arange(num)).all()


def test_generator_reproduces():
    imp = torch.rand(3, 49)
    a = semantic_masking(imp, 0.75, torch.Generator().manual_seed(5))
    b = semantic_masking(imp, 0.75, torch.Generator().manual_seed(5))
    c = semantic_masking(imp, 0.75, torch.Generator().manual_seed(6))
    assert torch.equal(a.ids_keep, b.ids_keep) and not torch.equal(a.ids_keep, c.ids_keep)
    r1 = random_masking(3, 49, 0.75, generator=torch.Generator().manual_seed(1))
    r2 = random_masking(3, 49, 0.75, generator=torch.Generator().manual_seed(1))
    assert torch.equal(r1.mask, r2.mask)


def test_semantic_keeps_high_attention_patches_more_often_than_random():
    g = torch.Generator().manual_seed(0)
    n, num = 2000, 64
    importance = torch.full((n, num), 0.01)
    importance[:, :16] = 0.2  # 16 "object" patches carry most of the attention
    sem = semantic_masking(importance, 0.75, g)
    rnd = random_masking(n, num, 0.75, generator=g)
    kept_sem = (1 - sem.mask[:, :16]).mean().item()
    kept_rnd = (1 - rnd.mask[:, :16]).mean().item()
    assert abs(kept_rnd - 0.25) < 0.02
    assert kept_sem > kept_rnd + 0.2


def test_topk_and_inverse_are_deterministic_extremes():
    importance = torch.arange(16.0).unsqueeze(0)
    top = topk_masking(importance, 0.75)
    inv = topk_masking(importance, 0.75, inverse=True)
    assert set(top.ids_keep[0].tolist()) == {12, 13, 14, 15}
    assert set(inv.ids_keep[0].tolist()) == {0, 1, 2, 3}


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown sampler"):
        sample_mask("bogus", 0.5, 1, 4)
    with pytest.raises(ValueError, match="needs the teacher"):
        sample_mask("semantic", 0.5, 1, 4)
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(1, 4, 1.0)
