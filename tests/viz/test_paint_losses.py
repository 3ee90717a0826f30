"""Paint a mask's loss is the model's registered target (models.losses.TARGETS) on the hidden patches, so a target
registered later is scored there too; example scenes are recognised by the app's one lookup (viz.panels)."""
from types import SimpleNamespace

import numpy as np
import torch

from milan_lab.config import ModelConfig
from milan_lab.models.losses import TARGETS, cosine_loss, patchify, register_target
from milan_lab.viz import paint


def test_masked_losses_use_the_registered_target_on_the_hidden_patches_only():
    register_target("l1-pixels-paint", needs_teacher=False, out_dim=lambda cfg: cfg.patch_size ** 2 * 3, predicts="pixels",
                    help="mean absolute error of the removed patches' pixels")(
        lambda cfg, images, pred, features, mask: ((pred[:, 1:] - patchify(images, cfg.patch_size)).abs().mean(-1) * mask).sum()
        / mask.sum())
    try:
        g = torch.Generator().manual_seed(0)
        images, mask = torch.randn(2, 3, 16, 16, generator=g), torch.tensor([[1., 0, 0, 0], [0, 1, 1, 0]])
        pred = torch.randn(2, 5, 192, generator=g)
        model = SimpleNamespace(cfg=ModelConfig(image_size=16, patch_size=8, target="l1-pixels-paint"))
        err = (pred[:, 1:] - patchify(images, 8)).abs().mean(-1)  # [2, 4]
        assert torch.allclose(paint.masked_losses(model, images, pred, None, mask), torch.stack([err[0, 0], err[1, 1:3].mean()]))
    finally:
        TARGETS.unregister("l1-pixels-paint")
    # the teacher's features: hidden patches only even for a model that trained on all tokens
    target = torch.randn(2, 5, 32, generator=g)
    clip = SimpleNamespace(cfg=ModelConfig(image_size=16, patch_size=8, target_dim=32, loss_on="all"))
    got = paint.masked_losses(clip, images, pred[..., :32], target, mask)
    assert torch.allclose(got, torch.stack([cosine_loss(pred[i:i + 1, :, :32], target[i:i + 1], mask[i:i + 1]) for i in range(2)]))


def test_paint_and_the_panels_recognise_the_same_example_scenes():
    from milan_lab.data.scenes import make_scene
    from milan_lab.viz.panels import DISPLAY, EXAMPLE_SCENES, example_scene
    seed, split, i = EXAMPLE_SCENES[0]
    image = make_scene(seed, split, i, DISPLAY)[0]
    assert paint.example_scene is example_scene and example_scene(image) == (seed, split, i)
    assert paint.example_patch_labels(image, 64, 8).shape == (64,)
    assert paint.example_patch_labels(np.flipud(image).copy(), 64, 8) is None
