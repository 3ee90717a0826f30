"""The explorer's "Compare models" and "Embedding" tabs' functions: one mask for both models, each model's loss
on it, one colour basis and error scale, and the embedding computed once per model and method."""
import types

import numpy as np
import pytest

from milan_lab.app_compare import RANDOM, SHIPPED, Models, compare_models, embedding_view, model_choices, shared_mask
from milan_lab.errors import ConfigError
from milan_lab.viz.panels import DISPLAY, Explorer, make_scene


@pytest.fixture(scope="module")
def models():
    return Models(Explorer.from_defaults())


@pytest.fixture(scope="module")
def scene():
    return make_scene(0, "test", 0, DISPLAY)[0]


def test_the_app_offers_the_shipped_model_and_a_random_init_of_its_architecture(models):
    assert model_choices(models.explorer) == [SHIPPED, RANDOM]
    shipped, random_init = models.get(SHIPPED), models.get(RANDOM)
    assert random_init.cfg == shipped.cfg and random_init is not shipped
    assert models.get(RANDOM) is random_init  # built once


def test_both_models_get_one_mask_and_the_shipped_model_predicts_better(models, scene):
    shipped, random_init = models.get(SHIPPED), models.get(RANDOM)
    r = compare_models(shipped, random_init, scene, "semantic", 0.75, 3)
    assert np.array_equal(r["mask"], shared_mask(shipped, scene, "semantic", 0.75, 3))
    assert r["hidden"] == int(r["mask"].sum()) == round(0.75 * shipped.num_patches)
    a, b = r["models"]
    assert a["loss"] < b["loss"]  # pretraining: the shipped model's features are far closer than random init's
    for m in (a, b):
        assert m["pred"].shape == m["error"].shape == m["attention"].shape == (DISPLAY, DISPLAY, 3)
        assert m["cos_error"].shape == (shipped.num_patches,)
    # one basis: the same model twice draws the same picture, and another model a different one on it
    again = compare_models(shipped, shipped, scene, "semantic", 0.75, 3)
    assert np.array_equal(again["models"][0]["pred"], again["models"][1]["pred"])
    assert not np.array_equal(a["pred"], b["pred"])


def test_models_of_different_patch_grids_and_unknown_samplers_are_refused(models, scene):
    with pytest.raises(ConfigError, match="patch grids"):
        compare_models(models.get(SHIPPED), types.SimpleNamespace(num_patches=4), scene)
    with pytest.raises(ConfigError, match="sampler"):
        compare_models(models.get(SHIPPED), models.get(RANDOM), scene, "no-such-sampler")


def test_the_embedding_is_computed_once_per_model_and_method(models, monkeypatch):
    import milan_lab.tools.embed as embed_module
    calls = []
    real = embed_module.embed
    monkeypatch.setattr(embed_module, "embed", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    cache = {}
    figure, note = embedding_view(models, SHIPPED, "pca", cache, n=24)
    assert figure.ndim == 3 and figure.shape[2] == 3 and figure.shape[0] > 200
    assert "random init · class token" in note and "2-D kNN" in note
    assert embedding_view(models, SHIPPED, "pca", cache, n=24)[0] is figure
    assert len(calls) == 1 and calls[0][0] == ("shipped",)
    with pytest.raises(ConfigError, match="method"):
        embedding_view(models, SHIPPED, "umap", cache, n=24)
    with pytest.raises(ConfigError, match="trained model"):
        embedding_view(models, RANDOM, "pca", cache, n=24)


def test_the_apps_own_checkpoint_is_offered_and_its_random_init_has_its_architecture(tiny_teacher, tiny_cfg, scene):
    from milan_lab.app_compare import YOURS
    from milan_lab.factory.models import create_model
    own = create_model(tiny_cfg, "pretrain", teacher=tiny_teacher, seed=1).eval()
    explorer = Explorer(tiny_teacher, own)
    explorer.model_source = "runs/mine"
    models = Models(explorer)
    assert model_choices(explorer) == [SHIPPED, YOURS, RANDOM]
    assert models.get(YOURS) is own and models.checkpoint(YOURS) == "runs/mine"
    assert models.get(RANDOM).cfg == tiny_cfg and models.get(RANDOM).num_patches == 16
    r = compare_models(own, models.get(RANDOM), scene, "random", 0.5, 0)
    assert r["hidden"] == 8 and r["models"][0]["loss"] != r["models"][1]["loss"]
    with pytest.raises(ConfigError, match="patch grids"):  # 16 patches against the shipped model's 64
        compare_models(own, models.get(SHIPPED), scene)
