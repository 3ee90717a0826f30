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


def test_every_short_key_that_names_two_fields_is_refused_naming_both():
    import dataclasses

    from milan_lab.config import JOBS
    for job, cls in JOBS.items():
        model_fields = {f.name for f in dataclasses.fields(get_config(job, None).model)}  # this job's model
        for f in dataclasses.fields(cls):
            if f.name in model_fields:  # a job field with a model field's name: the short key is ambiguous
                with pytest.raises(ValueError, match=rf"ambiguous config key '{f.name}'.*'model.{f.name}'"):
                    get_config(job, None, [f"{f.name}=1"])
        for name in model_fields - set(cls.UNUSED_MODEL_FIELDS):  # every short key the job uses reaches the model
            cfg = get_config(job, None)
            value = getattr(cfg.model, name)
            short = apply_overrides(cfg, {name: value})
            assert getattr(short.model, name) == value and short == apply_overrides(cfg, {f"model.{name}": value})
    # the case that used to be silently wrong: fine-tuning's drop path is model.drop_path, 0.1 by default
    assert get_config("finetune", None).model.drop_path == 0.1 and get_config("pretrain", None).model.drop_path == 0
    assert get_config("finetune", None, ["model.drop_path=0.3"]).model.drop_path == 0.3
    assert get_config("finetune", None, ["drop_path=0.2"]).model.drop_path == 0.2


def test_finetune_drop_path_override_reaches_the_model_and_the_saved_config(tmp_path):
    import json

    from milan_lab.jobs.finetune import build_finetune, finetune
    cfg = get_config("finetune", "milan_vit-micro-p8_offline",
                     ["model.drop_path=0.3", "offline_size=64", "eval_size=32", "batch_size=32", "max_steps=1",
                      "mixup=0", "cutmix=0", f"output_dir={tmp_path}", "progress=false"])
    model = build_finetune(cfg)[0]
    assert model.encoder.blocks[-1].drop_path1.drop_prob == pytest.approx(0.3)
    finetune(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())["config"]
    assert saved["model"]["drop_path"] == 0.3 and "drop_path" not in saved


def test_fp16_gets_a_grad_scaler_bf16_and_fp32_do_not():
    import torch

    from milan_lab.engine.common import precision_for
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert precision_for("fp16", cuda) == (torch.float16, True)
    assert precision_for("bf16", cuda) == (torch.bfloat16, False)
    assert precision_for("auto", cuda) == (torch.bfloat16, False)
    assert precision_for("auto", cpu) == (None, False) and precision_for("fp32", cuda) == (None, False)
    with pytest.raises(ValueError, match="far slower than fp32"):
        precision_for("bf16", cpu)


def test_configs_by_role():
    """Fine-tuning and linear probing have an encoder config, not the pretraining model's; the
    teacher job's config is the loop's options plus its recipe, with no stand-ins."""
    import dataclasses

    from milan_lab.config import EncoderConfig, ModelConfig, TrainerConfig
    from milan_lab.jobs.teacher import TeacherTrainConfig
    assert type(get_config("finetune", None).model) is EncoderConfig
    assert type(get_config("linear", None).model) is EncoderConfig
    assert type(get_config("pretrain", None).model) is ModelConfig
    loop = {f.name for f in dataclasses.fields(TrainerConfig)}
    assert loop <= {f.name for f in dataclasses.fields(TeacherTrainConfig)}
    assert loop <= {f.name for f in dataclasses.fields(PretrainConfig)}
    with pytest.raises(ValueError, match="accum_steps"):
        apply_overrides(TeacherTrainConfig(), {"accum_steps": 2}).validate()


def test_presets_are_yaml_files_that_a_user_can_copy_and_pass_with_config(tmp_path):
    from milan_lab.config import PRESET_DIR
    assert {p.stem for p in PRESET_DIR.glob("*.yaml")} == set(PRESETS)
    copy = tmp_path / "mine.yaml"
    text = (PRESET_DIR / "milan_vit-tiny-p8_offline.yaml").read_text()
    copy.write_text(text.replace("epochs: 8", "epochs: 3").replace("embed_dim: 192", "embed_dim: 96"))
    cfg = get_config("pretrain", "milan_vit-tiny-p8_offline", None, str(copy))
    assert cfg.epochs == 3 and cfg.model.embed_dim == 96 and cfg.teacher_cache
    ft = get_config("finetune", "milan_vit-tiny-p8_offline", None, str(copy))  # the encoder of the model section
    assert ft.model.embed_dim == 96 and ft.epochs == 4
    flat = tmp_path / "flat.yaml"
    flat.write_text("model:\n  sampler: random\n")
    with pytest.raises(ValueError, match="sampler is a pretraining option; fine-tuning has no masking"):
        get_config("finetune", None, None, str(flat))
