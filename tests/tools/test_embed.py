"""milan-lab embed: projections and their separability on hand-made features with known answers, the figure,
and the shipped model against a random-init encoder of its architecture."""
import numpy as np
import pytest
import torch
from PIL import Image

from milan_lab import cli
from milan_lab.data.scenes import SHAPES
from milan_lab.errors import CheckpointError, ConfigError, OutputError
from milan_lab.tools.embed import embed, embed_command, embed_features, model_label, project
from milan_lab.viz.embedding import embedding_figure


def two_clusters(n: int = 120, dim: int = 32, gap: float = 6.0, seed: int = 0):
    """Features [n, dim] in two Gaussian clusters ``gap`` standard deviations apart, and their labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    centres = torch.zeros(2, dim)
    centres[1, 0] = gap
    return centres[labels] + torch.randn(n, dim, generator=g), labels.numpy()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_well_separated_clusters_separate_in_the_plane(method):
    features, labels = two_clusters()
    r = embed_features(features, labels, method)
    assert r["coords"].shape == (120, 2)
    assert r["knn_2d"] >= 0.98 and r["silhouette"] > 0.5


def test_labels_that_do_not_follow_the_features_do_not_separate():
    features, labels = two_clusters()
    shuffled = np.random.default_rng(0).permutation(labels)
    r = embed_features(features, shuffled, "pca")
    assert r["knn_2d"] < 0.7 and abs(r["silhouette"]) < 0.1


def test_pca_is_the_principal_plane():
    features, _ = two_clusters()
    from sklearn.decomposition import PCA
    reference = PCA(2).fit_transform(features.double().numpy())
    coords = project(features, "pca")
    assert np.allclose(np.abs(coords), np.abs(reference), atol=1e-8)
    assert coords[:, 0].var() >= coords[:, 1].var()
    assert np.array_equal(coords, project(features.clone(), "pca"))  # a refit gives the same picture (signs fixed)


def test_the_figure_titles_each_panel_and_names_the_shapes():
    rng = np.random.default_rng(0)
    labels = np.arange(64) % len(SHAPES)
    panels = [(f"model {i} · class token · PCA", rng.normal(size=(64, 2)), "2-D kNN 50.0 %") for i in range(4)]
    fig = embedding_figure(panels, labels, list(SHAPES), "what is shown")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"model {i} · class token · PCA\n2-D kNN 50.0 %" for i in range(4)]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(SHAPES)
    assert any(t.get_text() == "what is shown" for t in fig.texts)


def test_the_shipped_model_separates_shapes_better_than_random_init():
    # measured: 2-D kNN 26.0 % (shipped, mean patch) vs 14.3 % (random init) on 384 scenes; chance 12.5 %
    r = embed("shipped", n=384, method="pca", tokens=("mean",))
    shipped, random = r["panels"]
    assert (shipped["model"], random["model"]) == ("shipped", "random init")
    assert shipped["coords"].shape == (384, 2) and len(r["labels"]) == 384
    assert shipped["knn_2d"] >= random["knn_2d"] + 0.05


def test_the_command_writes_its_png_under_outputs_embed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["embed", "shipped", "--n", "24", "--no-baseline"]) == 0
    out = capsys.readouterr().out
    png = tmp_path / "outputs" / "embed" / "shipped_pca.png"
    with Image.open(png) as im:
        assert im.format == "PNG"
    assert "shipped · class token · PCA: 2-D kNN" in out and "shipped · mean patch · PCA" in out
    assert "outputs/embed/shipped_pca.png" in out


def test_bad_input_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="n must be at least"):
        embed("random", n=5)
    with pytest.raises(ConfigError, match="method"):
        embed("random", n=64, method="umap")
    with pytest.raises(CheckpointError, match="nope"):
        embed(str(tmp_path / "nope"), n=64)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(OutputError, match="folder.png"):
        embed_command(str(tmp_path / "nope"), out=tmp_path / "folder.png")


def test_models_are_named_as_the_user_gave_them(tmp_path):
    (tmp_path / "run7").mkdir()
    assert model_label("shipped") == "shipped" and model_label("random") == "random init"
    assert model_label(str(tmp_path / "run7")) == "run7" and model_label("x/step_00000010.pt") == "step_00000010"
