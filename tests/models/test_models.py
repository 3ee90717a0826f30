import pytest
import torch

from milan_lab.models.decoders import MAEDecoder, PromptingDecoder
from milan_lab.models.losses import cosine_loss, patchify, pixel_loss, unpatchify
from milan_lab.models.masking import random_masking
from milan_lab.models.milan import MILAN
from milan_lab.models.vit import ViTEncoder
from tests.conftest import replace


def test_encoder_sees_only_visible_tokens():
    enc = ViTEncoder(32, 8, 48, 2, 3)
    x = torch.randn(2, 3, 32, 32)
    m = random_masking(2, 16, 0.75)
    assert enc.forward_masked(x, m.ids_keep).shape == (2, 1 + 4, 48)
    assert enc.forward_features(x).shape == (2, 17, 48)
    # keeping every patch in image order equals the unmasked forward
    all_ids = torch.arange(16).expand(2, -1)
    torch.testing.assert_close(enc.forward_masked(x, all_ids), enc.forward_features(x))
    assert not enc.pos_embed.requires_grad
    assert enc.get_last_selfattention(x).shape == (2, 3, 17, 17)


@pytest.mark.parametrize("cls", [PromptingDecoder, MAEDecoder])
def test_decoder_predicts_every_token(cls):
    dec = cls(16, 48, 32, 2, 2, 24)
    m = random_masking(2, 16, 0.75)
    assert dec(torch.randn(2, 5, 48), m).shape == (2, 17, 24)


def test_prompting_decoder_keeps_visible_tokens_fixed():
    dec = PromptingDecoder(16, 48, 32, 3, 2, 24)
    m = random_masking(2, 16, 0.75)
    latent = torch.randn(2, 5, 48)
    prompts_in, masked_in = dec.split(dec._full_sequence(latent, m), m)
    seen = []
    for blk in dec.decoder_blocks:  # every block receives exactly the same prompts
        blk.register_forward_pre_hook(lambda mod, args: seen.append(args[1].clone()))
    out = dec(latent, m)
    assert len(seen) == 3 and all(torch.equal(s, prompts_in) for s in seen)
    # visible positions of the output are norm+pred of the unchanged prompts
    vis = torch.gather(out[:, 1:], 1, m.ids_keep.unsqueeze(-1).expand(-1, -1, 24))
    torch.testing.assert_close(vis, dec.decoder_pred(dec.decoder_norm(prompts_in[:, 1:])))
    torch.testing.assert_close(out[:, 0], dec.decoder_pred(dec.decoder_norm(prompts_in[:, 0])))
    # and the mask tokens were changed by the blocks
    msk = torch.gather(out[:, 1:], 1, m.ids_dump.unsqueeze(-1).expand(-1, -1, 24))
    assert not torch.allclose(msk, dec.decoder_pred(dec.decoder_norm(masked_in)))


def test_every_mask_token_reads_the_prompts():
    """Changing one visible token changes every mask token's output."""
    dec = PromptingDecoder(16, 48, 32, 2, 2, 24).eval()
    m = random_masking(1, 16, 0.75, generator=torch.Generator().manual_seed(0))
    latent = torch.randn(1, 5, 48)
    base = dec(latent, m)
    latent2 = latent.clone()
    latent2[0, 1] += 1.0
    out2 = dec(latent2, m)
    changed = (out2 - base).abs().sum(-1)[0, 1:]
    assert changed[m.ids_dump[0]].min() > 0  # every mask token reads the prompts


def test_gradients_reach_student_never_teacher(tiny_cfg, tiny_teacher):
    model = MILAN(tiny_cfg, tiny_teacher)
    out = model.forward_train(torch.randn(2, 3, 32, 32))
    out.loss.backward()
    assert out.pred.shape == (2, 17, 32) and out.mask.shape == (2, 16)
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not any(k.startswith("teacher.") for k in model.student_state_dict())


def test_cosine_loss_matches_definition():
    pred, target = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    cos = torch.nn.functional.cosine_similarity(pred, target, dim=-1)
    torch.testing.assert_close(cosine_loss(pred, target), (2 - 2 * cos).mean())
    mask = torch.tensor([[1.0, 0, 0, 1], [0, 0, 1, 0]])
    expected = ((2 - 2 * cos[:, 1:]) * mask).sum() / 3
    torch.testing.assert_close(cosine_loss(pred, target, mask), expected)
    with_cls = ((2 - 2 * cos[:, 1:]) * mask).sum() + (2 - 2 * cos[:, 0]).sum()  # 3 masked patches + 2 class tokens
    torch.testing.assert_close(cosine_loss(pred, target, mask, with_cls=True), with_cls / 5)
    assert cosine_loss(target, target).abs() < 1e-6


def test_pixel_target_and_patchify_roundtrip(tiny_cfg):
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(unpatchify(patchify(x, 8), 8), x)
    model = MILAN(replace(tiny_cfg, target="pixels", sampler="random"))
    out = model.forward_train(x)
    assert out.pred.shape == (2, 17, 8 * 8 * 3) and out.target is None
    perfect = torch.cat([torch.zeros(2, 1, 192), patchify(x, 8)], 1)
    assert pixel_loss(perfect, x, out.mask, 8) == 0


def test_config_and_teacher_mismatches_fail_early(tiny_cfg, tiny_teacher):
    with pytest.raises(ValueError, match="target_dim"):
        MILAN(replace(tiny_cfg, target_dim=64), tiny_teacher)
    with pytest.raises(ValueError, match="patch grid"):
        MILAN(replace(tiny_cfg, image_size=64), tiny_teacher)
    with pytest.raises(ValueError, match="needs a teacher"):
        MILAN(tiny_cfg)


def test_vit_b16_parameter_counts_from_the_preset():
    """The preset's config, through the same builders the trainers use; on the meta device (no
    memory, no initialisation): only shapes matter for counting."""
    from milan_lab.config import get_config
    from milan_lab.models.classifier import MILANClassifier
    cfg = get_config("pretrain", "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k").model
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    with torch.device("meta"):
        model = MILAN(cfg, require_teacher=False)
        classifier = MILANClassifier(cfg, 1000)
    assert isinstance(model.decoder, PromptingDecoder) and isinstance(model.encoder, ViTEncoder)
    assert round(n(model.encoder) / 1e6, 2) == 85.80
    assert round(n(model.decoder) / 1e6, 2) == 25.98
    assert round(n(model) / 1e6, 2) == 111.78
    assert round(n(classifier) / 1e6, 2) == 86.57
