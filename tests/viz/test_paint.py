"""Paint your own mask: object presets from label maps, reconstruction from a given mask, the samplers' loss at its budget."""
import numpy as np
import pytest
import torch

from milan_lab.data.scenes import SEG_CLASSES, make_labelled_scene, make_scene
from milan_lab.errors import ConfigError
from milan_lab.models.losses import cosine_loss
from milan_lab.models.masking import from_mask, random_masking
from milan_lab.models.milan import MILAN
from milan_lab.viz import paint


def test_object_patches_of_a_hand_made_map():
    obj = np.zeros((16, 16), bool)
    obj[9:11, 2:5] = True   # patch row 1, col 0
    obj[0, 15] = True       # one pixel is enough: patch row 0, col 1
    assert paint.object_patches(obj, 8).tolist() == [0, 1, 1, 0]
    with pytest.raises(ConfigError, match="8-px patches"):
        paint.object_patches(np.zeros((12, 12), bool), 8)


def test_hide_object_preset_hides_exactly_the_objects_patches_of_a_labelled_scene():
    _, labels = make_labelled_scene(0, "val", 3, 64)
    cls = int(np.bincount(labels.ravel(), minlength=len(SEG_CLASSES))[1:].argmax()) + 1  # the scene's largest shape
    on_object = paint.object_patches(labels == cls, 8)
    expected = [1.0 if (labels[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] == cls).any() else 0.0
                for r in range(8) for c in range(8)]
    assert on_object.tolist() == expected and 0 < on_object.sum() < 64
    hide = paint.preset_mask("hide the main object", 64, on_object)
    keep = paint.preset_mask("keep only the main object", 64, on_object)
    assert hide.tolist() == expected and (keep + hide == 1).all()
    with pytest.raises(ConfigError, match="example scenes"):
        paint.preset_mask("hide the main object", 64, None)


def test_example_scene_object_is_the_main_objects_cover():
    from milan_lab.data.scenes import make_scene_with_main_object
    from milan_lab.viz.panels import DISPLAY
    image = make_scene(0, "test", 1, DISPLAY)[0]
    obj = paint.example_object(image, 64)
    assert np.array_equal(obj, make_scene_with_main_object(0, "test", 1, 64)[1] >= 0.5) and obj.any()
    assert paint.example_object(image[::-1].copy(), 64) is None


def test_toggle_maps_a_click_to_its_patch():
    mask = np.zeros(64, np.float32)
    once = paint.toggle(mask, 200, 10, 256, 256)   # column 6, row 0
    assert once.nonzero()[0].tolist() == [6] and mask.sum() == 0
    assert paint.toggle(once, 255.9, 255.9, 256, 256)[63] == 1 and paint.toggle(once, 200, 10, 256, 256).sum() == 0


def test_given_mask_is_what_the_encoder_sees(tiny_cfg, tiny_teacher):
    torch.manual_seed(0)
    model = MILAN(tiny_cfg, tiny_teacher).eval()
    x = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 16)
    mask[0, [0, 5, 6, 15]] = 1
    m = from_mask(mask)
    assert torch.equal(m.mask, mask) and m.ids_keep.shape == (1, 12)
    with torch.no_grad():
        pred = paint.predict(model, x, m)
        assert torch.allclose(pred, model.forward_train(x, masking=m).pred)  # the training pass takes it as given
        hidden_changed = x.clone()
        hidden_changed[..., :8, :8] += 5  # patch 0 is hidden: the prediction cannot depend on it
        assert torch.allclose(paint.predict(model, hidden_changed, m), pred, atol=1e-6)
        visible_changed = x.clone()
        visible_changed[..., :8, 8:16] += 5  # patch 1 is visible
        assert not torch.allclose(paint.predict(model, visible_changed, m), pred, atol=1e-4)
    with pytest.raises(ValueError, match="same number"):
        from_mask(torch.tensor([[1.0, 0, 0], [1.0, 1, 0]]))
    sampled = random_masking(2, 16, 0.75, generator=torch.Generator().manual_seed(0))
    assert torch.equal(from_mask(sampled.mask).mask, sampled.mask)


def test_paint_report_loss_and_samplers_at_the_same_budget(tiny_cfg, tiny_teacher):
    torch.manual_seed(0)
    model = MILAN(tiny_cfg, tiny_teacher).eval()
    image = make_scene(0, "test", 0, 64)[0]
    mask = np.zeros(16, np.float32)
    mask[[1, 2, 9]] = 1
    r = paint.paint_report(model, image, mask, draws=3)
    assert r["hidden"] == 3 and r["ratio"] == pytest.approx(3 / 16)
    target, _ = model.forward_teacher(r["x"])
    full = torch.cat([torch.zeros(1, model.cfg.target_dim), r["pred"]])[None]  # the class token is not scored
    assert r["loss"] == pytest.approx(float(cosine_loss(full, target, torch.as_tensor(mask)[None])), rel=1e-5)
    for name in paint.SAMPLERS:
        assert len(r["samplers"][name]["draws"]) == 3
        assert r["samplers"][name]["mean"] == pytest.approx(np.mean(r["samplers"][name]["draws"]))
    assert r["cos_error"].shape == (16,) and r["importance"].shape == (16,)
    panels = paint.paint_panels(r)
    assert panels["masked"].shape == panels["error"].shape == panels["importance"].shape == (256, 256, 3)
    assert "this mask" in paint.format_losses(r) and "semantic sampler" in paint.format_losses(r)
    for bad, word in ((np.zeros(16), "hides no patch"), (np.ones(16), "every patch"), (np.zeros(9), "16 values")):
        with pytest.raises(ConfigError, match=word):
            paint.paint_report(model, image, bad)


def test_sampler_presets_hide_the_ratio(tiny_cfg, tiny_teacher):
    importance = torch.rand(16)
    for preset in ("semantic sampler", "random sampler"):
        m = paint.preset_mask(preset, 16, importance=importance, ratio=0.75, seed=3)
        assert m.sum() == 12 and np.array_equal(m, paint.preset_mask(preset, 16, importance=importance, ratio=0.75, seed=3))


def test_what_it_filled_in_reads_the_hidden_patches_through_a_bank(tiny_cfg, tiny_teacher):
    from milan_lab.evaluation.patch_bank import build_patch_bank
    torch.manual_seed(0)
    model = MILAN(tiny_cfg, tiny_teacher).eval()
    image = make_scene(0, "test", 0, 64)[0]
    mask = np.zeros(16, np.float32)
    mask[[5, 6]] = 1
    report = paint.paint_report(model, image, mask, draws=2)
    bank = build_patch_bank(tiny_teacher, n_scenes=2)
    view = paint.filled_in_view(report, bank, tiny_teacher, true_labels=np.arange(16) % 2, k=1, words=["star", "red"])
    assert view["from_pred"].shape == view["from_target"].shape == (256, 256, 3)
    assert view["result"]["patches"].tolist() == [5, 6] and "top-1 retrieval" in view["note"]
    assert {p for p, _, _ in view["words"]} == {5, 6} and "the teacher reads the prediction as" in view["note"]
    from milan_lab.data.transforms import denormalize
    own = (np.clip(denormalize(report["x"][0]), 0, 1) * 255).round().astype(np.uint8)  # the model's 32-px view
    shown = (view["from_pred"] * 255).round().astype(np.uint8)  # 8 display px per view px
    assert np.array_equal(shown[:64:8, :64:8], own[:8, :8])  # patch 0 is visible: the image's own pixels
    assert np.array_equal(shown[64:128:8, 64:128:8], bank.crops[view["result"]["from_pred"][0]])  # hidden patch 5: the bank's
    unknown = paint.filled_in_view(report, bank, tiny_teacher, None, words=())
    assert "example scenes only" in unknown["note"] and unknown["words"] == []


def test_a_pixel_model_without_a_teacher_is_compared_with_the_random_sampler_only(tiny_cfg):
    from tests.conftest import replace
    torch.manual_seed(0)
    model = MILAN(replace(tiny_cfg, target="pixels", sampler="random"), None).eval()
    image = make_scene(0, "test", 0, 64)[0]
    mask = np.zeros(16, np.float32)
    mask[:4] = 1
    r = paint.paint_report(model, image, mask, draws=2)
    assert list(r["samplers"]) == ["random"] and r["cos_error"] is None and r["loss"] > 0
    assert paint.paint_panels(r)["error"] is None and paint.filled_in_view(r, None) is None
    with pytest.raises(ConfigError, match="no teacher"):
        paint.preset_mask("semantic sampler", 16, importance=None)
