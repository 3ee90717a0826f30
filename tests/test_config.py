import pytest

from milan_lab.config import (PRESETS, FinetuneConfig, LinearProbeConfig, PretrainConfig, apply_overrides,
                              describe, get_config)


def test_presets_validate_for_every_job():
    for preset in PRESETS:
        for job in ("pretrain", "finetune", "linear"):
            get_config(job, preset)


def test_vit_b_preset_matches_the_paper():
    cfg = get_config("pretrain", "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k")
    m = cfg.model
    assert (m.embed_dim, m.depth, m.num_heads, m.patch_size, m.image_size) == (768, 12, 12, 16, 224)
    assert (m.decoder_embed_dim, m.decoder_depth, m.decoder_num_heads, m.target_dim) == (512, 8, 16, 512)
    assert (m.mask_ratio, m.teacher, m.teacher_pretrained, m.sampler, m.decoder) == (0.75, "ViT-B-16", "openai",
                                                                                     "semantic", "prompting")
    assert cfg.epochs == 400 and cfg.warmup_epochs == 40 and cfg.batch_size == 4096
    assert cfg.effective_lr == pytest.approx(1.5e-4 * 4096 / 256)


def test_overrides_short_dotted_and_yaml(tmp_path):
    cfg = get_config("pretrain", None, ["epochs=3", "model.mask_ratio=0.5", "sampler=random", "lr=none"])
    assert cfg.epochs == 3 and cfg.model.mask_ratio == 0.5 and cfg.model.sampler == "random" and cfg.lr is None
    y = tmp_path / "c.yaml"
    y.write_text("epochs: 7\nmodel:\n  decoder: mae\n")
    cfg = get_config("pretrain", None, ["epochs=8"], str(y))
    assert cfg.epochs == 8 and cfg.model.decoder == "mae"  # overrides win over YAML
    assert apply_overrides(PretrainConfig(), {"clip_grad": "3"}).clip_grad == 3.0


@pytest.mark.parametrize("override, message", [
    (["epoch=3"], "unknown config key 'epoch'"),
    (["epochs=three"], "bad value for 'epochs'"),
    (["epochs=2.5"], "bad value for 'epochs'"),
    (["mask_ratio=1.5"], "mask_ratio"),
    (["sampler=smart"], "bad value for 'sampler'"),
    (["progress=maybe"], "bad value for 'progress'"),
    (["data=/does/not/exist"], "neither 'offline' nor an existing folder"),
    (["batch_size=100", "accum_steps=3"], "divisible"),
    (["precision=fp64"], "precision"),
    (["epochs"], "key=value"),
])
def test_bad_input_fails_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        get_config("pretrain", None, override)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="known presets"):
        get_config("pretrain", "vit-huge")


def test_describe_lists_every_option():
    keys = [k for k, _, _ in describe(PretrainConfig)]
    assert "epochs" in keys and "model.mask_ratio" in keys and "model" not in keys
    assert any(k == "layer_decay" for k, _, _ in describe(FinetuneConfig))
    assert any(k == "momentum" for k, _, _ in describe(LinearProbeConfig))
