"""The two shipped offline teachers: loadable by what they know, same architecture, same recipe."""
import json

import torch

from milan_lab import config as C
from milan_lab.factory import teachers
from milan_lab.factory.models import create_model


def test_both_shipped_teachers_load_by_name_with_targets_of_one_shape():
    shape, noshape = teachers.load_teacher("offline-shape"), teachers.load_teacher("offline-noshape")
    x = torch.randn(2, 3, 64, 64)
    (ts, imp_s), (tn, imp_n) = shape(x), noshape(x)
    assert ts.shape == tn.shape == (2, 65, 128) and imp_s.shape == imp_n.shape == (2, 64)
    assert not torch.allclose(ts, tn)  # two teachers, not one under two names
    assert teachers.load_teacher("shipped").name == "shipped"
    torch.testing.assert_close(teachers.load_teacher("shipped")(x)[0], ts)  # the old name: the shape-aware one


def test_no_shape_teacher_was_trained_with_the_shipped_recipe_and_budget():
    def recipe(name):
        folder = teachers.SHIPPED_TEACHER_FOLDERS[name]
        size = sum(p.stat().st_size for p in folder.iterdir())
        assert size < 5_000_000, (name, size)  # fp16, small enough to ship
        return json.loads((folder / "open_clip_config.json").read_text())["milan_lab"]["train_config"]
    shape, noshape = recipe("offline-shape"), recipe("offline-noshape")
    assert noshape.pop("captions") == "no-shape" and shape.pop("captions", "all") == "all"
    for key in ("model", "steps", "batch_size", "group_size", "lr", "weight_decay", "warmup_steps", "caption_drop",
                "image_size", "seed"):
        assert noshape[key] == shape[key], key


def test_tiny_milan_on_the_no_shape_teacher_trains_a_step():
    cfg = C.get_config("pretrain", "milan_vit-micro-p8_offline", ["model.teacher=offline-noshape"]).model
    model = create_model(cfg)
    out = model.forward_train(torch.randn(2, 3, 64, 64))
    out.loss.backward()
    assert model.teacher.name == "offline-noshape" and out.target.shape == (2, 65, 128) and torch.isfinite(out.loss)
