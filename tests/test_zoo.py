"""The seed's API (get_model, inference_model, list_models, evaluate_folder) and checkpoint interop."""
import numpy as np
import pytest
import timm
import torch

from milan_lab import get_model, inference_model, list_models, zoo
from milan_lab.config import ModelConfig
from milan_lab.convert import from_mmpretrain, from_timm, to_mmpretrain
from milan_lab.errors import DataError
from milan_lab.factory.models import export_timm
from milan_lab.models.classifier import MILANClassifier
from milan_lab.models.milan import MILAN
from tests.conftest import replace
from tests.helpers import SHIPPED_FT, scene_folder

SEED_NAMES = ["milan_vit-base-p16_16xb256-amp-coslr-400e_in1k", "vit-base-p16_milan-pre_8xb128-coslr-100e_in1k",
              "vit-base-p16_milan-pre_8xb2048-linear-coslr-100e_in1k"]


def test_list_models_has_the_seed_names_and_offline_models():
    names = list_models()
    assert all(n in names for n in SEED_NAMES) and "milan_vit-tiny-p8_offline" in names
    assert list_models("linear") == ["vit-base-p16_milan-pre_8xb2048-linear-coslr-100e_in1k"]


def test_offline_pretrained_true_fails_at_once_naming_the_path_option(monkeypatch, tmp_path):
    monkeypatch.setenv("MILAN_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="pretrained=PATH"):
        get_model("vit-base-p16_milan-pre_8xb128-coslr-100e_in1k", pretrained=True)
    with pytest.raises(ValueError, match="list_models"):
        get_model("vit-huge-p14")


def test_shipped_offline_models_run_the_seed_snippets(tmp_path):
    model = get_model("vit-tiny-p8_milan-pre_offline-ft", pretrained=True)
    inputs = torch.rand(1, 3, 64, 64)
    assert model(inputs).shape == (1, 8)
    assert model.extract_feat(inputs).shape == (1, 192)
    from PIL import Image

    from milan_lab.data.scenes import make_scene
    correct = 0
    for i in range(64):
        img, spec = make_scene(0, "test", i, 64)
        path = tmp_path / f"{i}.png"
        Image.fromarray(img).save(path)
        pred = inference_model(model, str(path))
        assert set(pred) >= {"pred_label", "pred_score", "pred_class"} and 0 < pred["pred_score"] <= 1
        correct += pred["pred_class"] == spec.shape
    assert correct >= 32  # the shipped fine-tuned classifier recognises shapes; chance is 8 of 64
    pre = get_model("milan_vit-tiny-p8_offline", pretrained=True)
    assert pre.extract_feat(inputs).shape == (1, 65, 192)


def _small():
    return ModelConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, decoder_embed_dim=32,
                       decoder_depth=2, decoder_num_heads=2, target_dim=32)


def test_mmpretrain_pretrain_round_trip_is_strict_and_exact():
    cfg = replace(_small(), target="pixels", sampler="random")
    torch.manual_seed(0)
    a = MILAN(cfg)
    mm = to_mmpretrain(a.student_state_dict())
    assert "backbone.layers.0.ffn.layers.0.0.weight" in mm and "neck.decoder_blocks.1.attn.kv.weight" in mm
    assert "backbone.ln1.weight" in mm and "neck.ln1.weight" in mm and "backbone.patch_embed.projection.weight" in mm
    torch.manual_seed(1)
    b = MILAN(cfg)
    b.load_state_dict(from_mmpretrain({**mm, "target_generator.visual.proj": torch.zeros(1)}, "pretrain"))
    x = torch.randn(2, 3, 32, 32)
    from milan_lab.models.masking import random_masking
    m = random_masking(2, 16, 0.75, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.forward_train(x, masking=m).pred, b.forward_train(x, masking=m).pred)
    with pytest.raises(KeyError, match="no milan_lab counterpart"):
        from_mmpretrain({**mm, "neck.surprise": torch.zeros(1)}, "pretrain")


def test_mmpretrain_classifier_layouts():
    cfg = _small()
    ft = MILANClassifier(cfg, 5, "finetune")
    enc = to_mmpretrain({f"encoder.{k}": v for k, v in ft.encoder.state_dict().items()})
    state = {**enc, "backbone.ln2.weight": ft.fc_norm.weight, "backbone.ln2.bias": ft.fc_norm.bias,
             "head.fc.weight": ft.head.weight, "head.fc.bias": ft.head.bias}
    other = MILANClassifier(cfg, 5, "finetune")
    other.load_state_dict(from_mmpretrain(state, "finetune"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(other(x), ft(x))
    assert "backbone.ln1.weight" not in enc  # fine-tuning pools without the final norm
    lin = MILANClassifier(cfg, 5, "linear")
    enc = to_mmpretrain({f"encoder.{k}": v for k, v in lin.encoder.state_dict().items()})
    state = {**enc, "neck.bn.running_mean": torch.randn(48), "neck.bn.running_var": torch.rand(48) + 0.5,
             "neck.bn.num_batches_tracked": torch.tensor(3), "head.fc.weight": torch.randn(5, 48),
             "head.fc.bias": torch.zeros(5)}
    lin.load_state_dict(from_mmpretrain(state, "linear"))
    assert torch.equal(lin.fc_norm.running_mean, state["neck.bn.running_mean"])


def test_export_to_timm_and_back(tmp_path):
    cfg = ModelConfig(image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, target="pixels",
                      sampler="random")
    model = MILAN(cfg)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": model.student_state_dict()}, ckpt)
    out = export_timm(ckpt, tmp_path / "timm.safetensors")
    from safetensors.torch import load_file
    assert set(load_file(out)) == {k[len("encoder."):] for k in model.student_state_dict() if k.startswith("encoder.")}
    vit = timm.create_model("vit_base_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=out),
                            num_classes=0, img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(vit.forward_features(x), model.encoder.forward_features(x))
    # and timm weights initialise a MILAN encoder
    again = MILAN(cfg)
    missing, unexpected = again.load_state_dict(from_timm(vit.state_dict()), strict=False)
    assert not unexpected and all(k.startswith("decoder.") for k in missing)
    torch.testing.assert_close(again.encoder.forward_features(x), vit.forward_features(x))


def test_seed_snippets_run_unchanged_when_weights_are_in_the_cache(monkeypatch, tmp_path):
    """The seed's two snippets, with a (random) ViT-B/16 fine-tuned checkpoint in mmpretrain's
    layout placed where pretrained=True looks (the download cache)."""
    from milan_lab import zoo
    name = "vit-base-p16_milan-pre_8xb128-coslr-100e_in1k"
    monkeypatch.setenv("MILAN_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = MILANClassifier(ModelConfig(), 1000, "finetune")
    state = to_mmpretrain({f"encoder.{k}": v for k, v in src.encoder.state_dict().items()})
    state.update({"backbone.ln2.weight": src.fc_norm.weight, "backbone.ln2.bias": src.fc_norm.bias,
                  "head.fc.weight": src.head.weight, "head.fc.bias": src.head.bias})
    torch.save({"meta": {}, "state_dict": {k: v.half() for k, v in state.items()}},
               tmp_path / zoo.MODELS[name]["url"].rsplit("/", 1)[-1])

    model = get_model(name, pretrained=True)
    inputs = torch.rand(1, 3, 224, 224)
    out = model(inputs)
    feats = model.extract_feat(inputs)
    assert out.shape == (1, 1000) and feats.shape == (1, 768)
    from PIL import Image
    Image.fromarray((torch.rand(300, 400, 3) * 255).byte().numpy()).save(tmp_path / "bird.JPEG")
    predict = inference_model(name, str(tmp_path / "bird.JPEG"))
    assert predict["pred_class"] in zoo.class_names("imagenet") and 0 < predict["pred_score"] <= 1
    torch.testing.assert_close(model(inputs), src.half().float()(inputs), atol=1e-3, rtol=1e-3)


def _cache_file(monkeypatch, tmp_path, name, state):
    from milan_lab import zoo
    monkeypatch.setenv("MILAN_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.save({"meta": {}, "state_dict": {k: v.half() for k, v in state.items()}},
               tmp_path / zoo.MODELS[name]["url"].rsplit("/", 1)[-1])


def test_seed_pretraining_snippet_runs_verbatim(monkeypatch, tmp_path):
    """mmpretrain's "Use the model" snippet for the pretraining model, word for word (with
    milan_lab for mmpretrain): ``model(inputs)`` is the tensor mode (the backbone's features)."""
    src = MILAN(ModelConfig(), require_teacher=False)
    mm = to_mmpretrain(src.student_state_dict())
    mm["target_generator.tokenizer.visual.proj"] = torch.zeros(768, 512)  # the teacher's weights are skipped
    _cache_file(monkeypatch, tmp_path, "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k", mm)

    import torch as torch_  # the snippet's own imports
    from milan_lab import get_model as get_model_

    model = get_model_('milan_vit-base-p16_16xb256-amp-coslr-400e_in1k', pretrained=True)
    inputs = torch_.rand(1, 3, 224, 224)
    out = model(inputs)
    print(type(out))
    # To extract features.
    feats = model.extract_feat(inputs)
    print(type(feats))

    assert out.shape == feats.shape == (1, 197, 768) and torch.equal(out, feats)
    torch.testing.assert_close(feats, src.half().float().extract_feat(inputs), atol=1e-3, rtol=1e-3)
    assert model.forward_train is not None  # the training pass keeps its own name


def test_seed_linear_probe_snippet_runs_verbatim(monkeypatch, tmp_path):
    name = "vit-base-p16_milan-pre_8xb2048-linear-coslr-100e_in1k"
    src = MILANClassifier(ModelConfig(), 1000, "linear")
    src.fc_norm.running_mean.normal_()
    state = to_mmpretrain({f"encoder.{k}": v for k, v in src.encoder.state_dict().items()})
    state.update({"neck.bn.running_mean": src.fc_norm.running_mean, "neck.bn.running_var": src.fc_norm.running_var,
                  "neck.bn.num_batches_tracked": src.fc_norm.num_batches_tracked,
                  "head.fc.weight": src.head.weight, "head.fc.bias": src.head.bias})
    _cache_file(monkeypatch, tmp_path, name, state)
    from PIL import Image
    Image.fromarray((torch.rand(300, 400, 3) * 255).byte().numpy()).save(tmp_path / "bird.JPEG")

    from milan_lab import get_model, inference_model

    model = get_model(name, pretrained=True)
    inputs = torch.rand(1, 3, 224, 224)
    out = model(inputs)
    feats = model.extract_feat(inputs)
    predict = inference_model(name, str(tmp_path / "bird.JPEG"))
    print(predict['pred_class'])
    print(predict['pred_score'])

    assert out.shape == (1, 1000) and feats.shape == (1, 768)
    src.eval()
    torch.testing.assert_close(out, src.half().float()(inputs), atol=1e-2, rtol=1e-2)
    assert predict["pred_class"] in model.class_names


def test_test_command_maps_labels_by_class_name(tmp_path):
    from PIL import Image

    from milan_lab.zoo import evaluate_folder
    model = get_model(SHIPPED_FT, pretrained=True)
    data = scene_folder(tmp_path / "data", ["star", "circle", "triangle"])  # sorted order is not the model's
    expected = np.mean([inference_model(model, str(p))["pred_class"] == p.parent.name for p in data.rglob("*.png")])
    result = evaluate_folder(model, str(data))
    assert result["label_mapping"] == "by class name" and result["images"] == 18
    assert result["top1"] == pytest.approx(expected) and expected > 0.5
    (tmp_path / "data" / "blob").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "data" / "blob" / "x.png")
    with pytest.raises(DataError, match="'blob'"):  # the folder that matches no class
        evaluate_folder(model, str(data))
    renamed = scene_folder(tmp_path / "other", ["star", "circle"])
    for i, d in enumerate(sorted(renamed.iterdir())):
        d.rename(renamed / f"class_{i}")
    with pytest.raises(DataError, match=r"\b2\b.*\b8\b"):  # the folder's and the model's class counts
        evaluate_folder(model, str(renamed))


SHIPPED_ENTRIES = [name for name, entry in zoo.MODELS.items() if "file" in entry]


@pytest.mark.parametrize("name", SHIPPED_ENTRIES)
def test_the_shipped_offline_models_are_the_presets_default_recipes(name):
    """What users train is what ships: every option of the zoo entry's job at its preset is in the shipped file's
    metadata with its default value, model included (the run's folder and the fine-tuned model's source run aside),
    and the file holds the run's last step."""
    from dataclasses import asdict

    from milan_lab.config import get_config
    from milan_lab.factory.models import read_checkpoint, saved_config
    from milan_lab.io.locations import ASSETS
    entry = zoo.MODELS[name]
    shipped = saved_config(read_checkpoint(ASSETS / entry["file"])[1])
    default = asdict(get_config(entry["task"], entry["preset"]))
    where = {"output_dir", "checkpoint"}
    assert set(default) - where <= set(shipped), f"{name}: options missing from the file: {set(default) - set(shipped)}"
    differ = {k: (shipped[k], v) for k, v in default.items() if k not in where and shipped[k] != v}
    assert not differ, f"shipped {name} was trained with other options than its preset's defaults: {differ}"
    assert shipped["shipped_from_step"] == default["epochs"] * default["offline_size"] // default["batch_size"]
