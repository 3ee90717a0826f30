"""The explorer's panels (viz/panels.py, viz/maps.py) are deterministic: identical requests give identical pictures."""
import numpy as np
import torch


def test_identical_requests_give_identical_pictures():
    from milan_lab.data.scenes import make_scene
    from milan_lab.viz import maps
    from milan_lab.viz.panels import Explorer
    ex = Explorer.from_defaults()
    scene = make_scene(0, "test", 3, 128)[0]
    a = ex.reconstruction(scene, "semantic", 0.75, 7, ["a star"])
    b = ex.reconstruction(scene, "semantic", 0.75, 7, ["a star"])
    for key in ("pca_target", "pca_pred", "cosine", "text_pred"):
        assert np.array_equal(a[key], b[key]), key
    t = torch.randn(64, 32)
    first = maps.pca_rgb(t, t + 0.1)
    for _ in range(3):
        again = maps.pca_rgb(t, t + 0.1)
        assert all(np.array_equal(x, y) for x, y in zip(first, again))
