"""The embedding view: an encoder's features of offline validation scenes in two dimensions, coloured
by the main object's shape, beside a random-init encoder of the same architecture.

Features are the evaluation layer's (``evaluation.knn.extract_features``: L2-normalised class token, or
mean of the patch tokens), so the picture shows what the kNN monitor measures. Each (encoder, token)
pair gets its own projection fit: PCA (an SVD in torch) or t-SNE (scikit-learn's). How well the shapes
separate in the plane is measured too, so that the picture can be checked: the leave-one-out accuracy of
a 10-nearest-neighbour vote in the 2-D coordinates, and the silhouette of the shape labels there.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from milan_lab.config import get_config
from milan_lab.data.datasets import OfflineScenes
from milan_lab.data.scenes import SHAPES
from milan_lab.data.transforms import eval_transform
from milan_lab.errors import ConfigError
from milan_lab.evaluation.knn import extract_features
from milan_lab.evaluation.probes import random_twin
from milan_lab.factory.models import load_encoder
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import atomic_write

METHODS = ("pca", "tsne")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}
TOKENS = {"cls": "class token", "mean": "mean patch"}
K = 10  # neighbours of the 2-D vote
MIN_SCENES = 2 * K


def resolve_encoder(checkpoint: str, preset: str):
    """(encoder, label) for what the probing commands take: a checkpoint file or run folder, 'random'
    (a random-init encoder of ``preset``), 'shipped' (the pretraining model in the package) or a zoo
    model's name (its weights: shipped, or downloaded)."""
    from milan_lab import zoo
    name = zoo.SHIPPED_PRETRAIN if checkpoint == "shipped" else checkpoint
    if name in zoo.MODELS:
        return zoo.get_model(name, pretrained=True).encoder.eval(), model_label(checkpoint)
    return load_encoder(checkpoint, get_config("pretrain", preset).model), model_label(checkpoint)


def model_label(checkpoint: str | None) -> str:
    """How the figure names a model: 'shipped' or the zoo name, 'random init', a run folder's name or a file's stem."""
    from milan_lab import zoo
    if checkpoint in zoo.MODELS or checkpoint == "shipped":
        return checkpoint
    if checkpoint in (None, "", "random"):
        return "random init"
    path = Path(checkpoint)
    return path.name if path.is_dir() else path.stem


def project(features: torch.Tensor, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates [N, 2] of ``features`` [N, D]. PCA: the centred features on their first two
    principal axes (each axis's sign fixed so that its largest loading is positive, as scikit-learn
    does, so a refit gives the same picture); t-SNE: scikit-learn's, PCA-initialised, seeded."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    x = features.double()
    x = x - x.mean(0)
    if method == "pca":
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        axes = vh[:2]
        signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
        return (x @ (axes * signs).T).numpy()
    from sklearn.manifold import TSNE
    perplexity = min(30.0, (len(x) - 1) / 3)
    with one_thread():
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x.numpy())


def one_thread():
    """scikit-learn's OpenMP and BLAS pools limited to one thread. Its OpenMP runtime is not torch's: with
    both loaded, t-SNE of a few hundred points took 0.5 s on one thread and up to 40 s on two busy cores
    (the threads wait for each other); at these sizes one thread loses nothing."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1)


def separability(coords: np.ndarray, labels, k: int = K) -> dict:
    """How well ``labels`` separate in the plane: ``knn_2d`` (leave-one-out accuracy of a majority vote
    of the ``k`` nearest other points, Euclidean) and ``silhouette`` (-1 to 1; scikit-learn's)."""
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import NearestNeighbors
    labels = np.asarray(labels)
    with one_thread():
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
        silhouette = float(silhouette_score(coords, labels)) if len(set(labels.tolist())) > 1 else float("nan")
    neighbours = labels[idx[:, 1:]]  # the first neighbour of each point is itself
    votes = np.stack([(neighbours == c).sum(1) for c in range(int(labels.max()) + 1)], 1)
    knn = float((votes.argmax(1) == labels).mean())
    return {"knn_2d": knn, "silhouette": silhouette}


def embed_features(features: torch.Tensor, labels, method: str = "pca", seed: int = 0) -> dict:
    """``{"coords": [N, 2], "knn_2d", "silhouette"}`` for features [N, D] with their labels [N]."""
    coords = project(features, method, seed)
    return {"coords": coords, **separability(coords, labels)}


def embed(checkpoint: str, n: int = 512, method: str = "pca", preset: str | None = None, seed: int = 0,
          baseline: bool = True, variant: str = "dense", tokens=tuple(TOKENS)) -> dict:
    """Class-token and mean-patch embeddings (``tokens``) of ``n`` offline validation scenes, for the
    encoder of ``checkpoint`` and (``baseline``) a random-init encoder of its architecture. Returns
    ``{"panels": [{"model", "token", "method", "coords" [n, 2], "knn_2d", "silhouette"}], "labels" [n],
    "classes", ...}``; ``preset``: the architecture of 'random' (and of files without a config)."""
    if any(t not in TOKENS for t in tokens):
        raise ConfigError(f"tokens must be among {', '.join(TOKENS)}, got {', '.join(tokens)}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if n < MIN_SCENES:
        raise ConfigError(f"n must be at least {MIN_SCENES} scenes (a {K}-neighbour vote measures the plane), got {n}")
    encoder, label = resolve_encoder(checkpoint, preset or get_config("pretrain").preset)
    size = encoder.patch_embed.img_size[0]
    scenes = OfflineScenes("val", n, size, 0, eval_transform(size, crop_ratio=1.0), variant=variant)
    models = [(label, encoder)]
    if baseline and label != "random init":
        models.append(("random init", random_twin(encoder)))
    panels, labels = [], None
    for name, enc in models:
        for pool in tokens:
            features, labels = extract_features(enc, scenes, "cpu", pool=pool)
            panels.append({"model": name, "token": pool, "method": method,
                           **embed_features(features, labels.numpy(), method, seed)})
    return {"checkpoint": checkpoint, "model": label, "method": method, "n": n, "image_size": size, "variant": variant,
            "seed": seed, "labels": labels.numpy(), "classes": list(SHAPES), "chance": 1 / len(SHAPES), "panels": panels}


def caption(result: dict) -> str:
    """The figure's caption: what is shown and how the numbers were made."""
    method = METHOD_NAMES[result["method"]]
    return (f"{result['n']} offline validation scenes ({result['variant']}, {result['image_size']} px), coloured by the "
            f"main object's shape. Each panel is its own {method} fit of L2-normalised features (class token, or mean of "
            f"the patch tokens). 2-D kNN: leave-one-out {K}-neighbour vote in the plane; chance "
            f"{100 * result['chance']:.1f} %.")


def panel_title(panel: dict) -> str:
    return f"{panel['model']} · {TOKENS[panel['token']]} · {METHOD_NAMES[panel['method']]}"


def format_embed(result: dict) -> str:
    """One line per panel: its title and its separability numbers."""
    lines = [f"{panel_title(p)}: 2-D kNN {100 * p['knn_2d']:.1f} %" for p in result["panels"]]
    lines.append(f"({result['n']} validation scenes; chance {100 * result['chance']:.1f} %)")
    return "\n".join(lines)


def default_out(label: str, method: str) -> Path:
    """outputs/embed/LABEL_METHOD.png, LABEL made safe for a file name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"
    return Path("outputs") / "embed" / f"{stem}_{method}.png"


def embed_figure(result: dict):
    """The figure of an :func:`embed` result: panels titled model · token · method, shape legend, caption."""
    from milan_lab.viz.embedding import embedding_figure
    panels = [(panel_title(p), p["coords"], f"2-D kNN {100 * p['knn_2d']:.1f} %") for p in result["panels"]]
    columns = len({p["token"] for p in result["panels"]})
    return embedding_figure(panels, result["labels"], result["classes"], caption(result), columns=columns)


def write_embed_figure(result: dict, out: str | Path) -> Path:
    """The figure (:func:`embed_figure`) written atomically."""
    import matplotlib.pyplot as plt

    fig = embed_figure(result)
    path = atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def embed_command(checkpoint: str, n: int = 512, method: str = "pca", out: str | Path | None = None,
                  preset: str | None = None, seed: int = 0, baseline: bool = True) -> tuple[dict, Path]:
    """``milan-lab embed``: the output file checked first, then the embeddings, then the figure."""
    out = Path(out) if out is not None else default_out(model_label(checkpoint), method)
    check_writable(out, "--out")
    result = embed(checkpoint, n, method, preset, seed, baseline)
    return result, write_embed_figure(result, out)

