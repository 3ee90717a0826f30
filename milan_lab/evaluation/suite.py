"""The probe suite: every probe of a frozen encoder registered once, and one function that scores an
encoder on a declared set of probes and sizes.

    from milan_lab.evaluation.suite import score
    row = score(encoder, ("knn_cls", "linear_mean", "miou"), {"eval_train": 2048}, seed=0)
    # {"knn_cls": 0.61, "linear_mean": 0.70, "miou": 0.52}

A probe is a function of a :class:`Bench` (the encoder, the sizes, the scenes' seed and kind, the
teacher, and the features the probes share, extracted once per readout) that returns its metrics;
:func:`register_probe` adds one to :data:`PROBES` (name -> :class:`~milan_lab.registry.Entry`). The CLI's probe commands
(``evaluation.probes``), the pretraining monitor, the ablation and the views grid all score through
:func:`score`, so a probe registered here (or in the caller's own code) is offered to all of them.
:func:`write_result` writes a run's result, atomically.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from milan_lab.data.datasets import OfflineScenes
from milan_lab.data.scenes import random_spec, render_scene, scene_rng
from milan_lab.data.segmentation import SegScenes
from milan_lab.data.transforms import eval_transform
from milan_lab.errors import ConfigError
from milan_lab.evaluation import attention
from milan_lab.evaluation.dense import evaluate_probe, patch_features, train_probe
from milan_lab.evaluation.features import POOL_NAMES, device_of, extract_readouts, object_pool, patch_cover, run_frozen
from milan_lab.evaluation.knn import knn_top1
from milan_lab.evaluation.linear import quick_linear_probe
from milan_lab.io.weights import atomic_write
from milan_lab.registry import Entry, Registry

# The sizes a probe reads (scenes, probe steps) when the caller declares none; the ablation's defaults.
SIZES = {"eval_train": 1024, "eval_val": 512, "seg_train": 512, "seg_val": 256, "seg_steps": 200, "attention_scenes": 256}


# name -> Entry (``fn(bench) -> {metric: value}``, ``help``, flags ``metrics`` and ``sizes``), in display
# order: the package's one registry (milan_lab.registry), which refuses a name registered twice rather than
# silently replacing the first probe. No home module: the probes below register when this module is imported.
PROBES = Registry("probe", flags=("metrics", "sizes"))


def register_probe(name: str, help: str, metrics: tuple[str, ...] | None = None, sizes: tuple[str, ...] = ()):
    """Decorator registering ``fn(bench) -> {metric: value}`` as probe ``name`` (its metrics: ``(name,)``
    unless told), with a one-line ``help``; ``sizes``: the keys of :data:`SIZES` it reads. Returns ``fn``;
    a name already registered is refused (ValueError)."""
    return PROBES.register(name, help=help, metrics=tuple(metrics or (name,)), sizes=tuple(sizes))


class Bench:
    """What the probes of one scoring share: the frozen ``encoder``, the ``sizes`` (:data:`SIZES`, the
    declared ones over them), the scenes' ``seed`` and ``variant``, the ``teacher`` (for the probes that
    compare with it), and the features each readout gives, extracted once. ``datasets`` replaces the
    scenes a probe would build: "scenes" -> (train, val) of (image, class) pairs (kNN, linear probe),
    "seg" -> (train, val) of (image, label map) pairs (dense probe). ``kept`` holds what a probe leaves
    for its caller beyond its numbers (the dense probe's model and scores)."""

    def __init__(self, encoder, sizes: dict | None = None, seed: int = 0, variant: str = "dense", teacher=None,
                 datasets: dict | None = None, device=None, progress: str | None = None):
        self.check_sizes(sizes)
        self.encoder, self.seed, self.variant, self.teacher = encoder, seed, variant, teacher
        self.sizes = {**SIZES, **(sizes or {})}
        self.device = device_of(encoder) if device is None else device
        self.progress = progress
        self.datasets = dict(datasets or {})
        self.kept: dict = {}
        self._features: dict = {}

    @staticmethod
    def check_sizes(sizes: dict | None) -> None:
        """A ConfigError naming the first key of ``sizes`` that is not one of :data:`SIZES`, or a size below 1."""
        unknown = sorted(set(sizes or {}) - set(SIZES))
        if unknown:
            raise ConfigError(f"unknown probe size {unknown[0]!r}{_did_you_mean(unknown[0], SIZES)}; "
                              f"known sizes: {', '.join(SIZES)}")
        bad = {k: v for k, v in (sizes or {}).items() if not isinstance(v, int) or v < 1}
        if bad:
            key = next(iter(bad))
            raise ConfigError(f"bad value for probe size {key!r}: must be an integer of at least 1, got {bad[key]!r}")

    # A student's sizes are its patch embedding's; an encoder without one (a teacher seen as an encoder,
    # ``evaluation.teacher.TeacherTokens``) names them itself.
    @property
    def image_size(self) -> int:
        embed = getattr(self.encoder, "patch_embed", None)
        return embed.img_size[0] if embed is not None else self.encoder.image_size

    @property
    def patch_size(self) -> int:
        embed = getattr(self.encoder, "patch_embed", None)
        return embed.patch_size[0] if embed is not None else self.encoder.patch_size

    def label(self, what: str) -> str | None:
        """A progress bar's label ("PROGRESS: what"), None when the caller asked for no bars."""
        return f"{self.progress}: {what}" if self.progress else None

    def sets(self, kind: str) -> tuple:
        """(train, val) datasets: the caller's, or offline scenes at the encoder's resolution
        ("scenes": shape classes, eval_train / eval_val of them; "seg": label maps, seg_train / seg_val)."""
        if kind not in self.datasets:
            size, s = self.image_size, self.sizes
            if kind == "scenes":
                tf = eval_transform(size, crop_ratio=1.0)
                self.datasets[kind] = tuple(OfflineScenes(split, n, size, self.seed, tf, variant=self.variant)
                                            for split, n in (("train", s["eval_train"]), ("val", s["eval_val"])))
            else:
                self.datasets[kind] = (SegScenes("train", s["seg_train"], size, self.seed, self.variant),
                                       SegScenes("val", s["seg_val"], size, self.seed, self.variant))
        return self.datasets[kind]

    def features(self, pool: str) -> tuple:
        """((features [N, D], labels [N]) of the train scenes, of the val scenes), L2-normalised: the
        readout ``pool`` ("cls", "mean"), both extracted in one pass, once per scoring."""
        if pool not in ("cls", "mean"):
            raise ValueError(f"the scenes' features are read out as 'cls' or 'mean', not {pool!r}")
        if pool not in self._features:
            for split, data in zip(("train", "val"), self.sets("scenes")):
                feats, labels = extract_readouts(self.encoder, data, ("cls", "mean"), normalize=True, device=self.device,
                                                 progress=self.label(f"{split} features"))
                for name, f in feats.items():
                    self._features.setdefault(name, []).append((f, labels))
        return tuple(self._features[pool])

    def patch_features(self) -> tuple:
        """((patch tokens [N, L, D], label maps [N, H, W]) of the train and the val label-map scenes)."""
        if "seg patches" not in self._features:
            self._features["seg patches"] = tuple(
                patch_features(self.encoder, data, progress=self.label(f"{split} features"))
                for split, data in zip(("train", "val"), self.sets("seg")))
        return self._features["seg patches"]

    def score(self, probes) -> dict:
        """One row: every metric of each of ``probes`` (names in :data:`PROBES`, checked before any work)."""
        chosen = [probe_named(name) for name in probes]
        row = {}
        for probe in chosen:
            row.update(probe.fn(self))
        return row


def probe_named(name: str) -> Entry:
    """The registered probe ``name``; a ConfigError naming it and the known ones otherwise."""
    if name not in PROBES:
        raise ConfigError(f"unknown probe {name!r}{_did_you_mean(name, PROBES)}; known probes: {', '.join(PROBES)}")
    return PROBES[name]


def _did_you_mean(name: str, known) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or "" if none is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def metrics_of(probes) -> tuple[str, ...]:
    """The metrics ``probes`` report, in order (the columns of a study's table)."""
    return tuple(m for name in probes for m in probe_named(name).metrics)


def score(encoder, probes=None, sizes: dict | None = None, *, seed: int = 0, variant: str = "dense", teacher=None,
          datasets: dict | None = None, device=None, progress: str | None = None) -> dict:
    """Score a frozen ``encoder`` on ``probes`` (names; default every registered probe) at ``sizes``
    (over :data:`SIZES`): one row, metric -> value. ``seed`` and ``variant`` draw the offline scenes and
    seed the probes' training; ``teacher``: what the attention probe compares with; ``datasets``: see
    :class:`Bench`; ``device``: where the images go (default: the encoder's); ``progress``: the label of
    progress bars on stderr (None: none). Unknown probes and sizes are refused before any work."""
    probes = tuple(PROBES) if probes is None else tuple(probes)
    for name in probes:
        probe_named(name)
    return Bench(encoder, sizes, seed, variant, teacher, datasets, device, progress).score(probes)


def write_result(path: str | Path, row: dict) -> dict:
    """A run's result ``row`` written as JSON to ``path`` atomically (a killed write leaves the old file or
    none, never half a row: studies read it back as the mark of a finished run); returns it."""
    atomic_write(Path(path), lambda tmp: tmp.write_text(json.dumps(row, indent=1)))
    return row


# The probes every study shares. Each adapter reads the bench; the arithmetic lives in its own module.

def _knn(pool: str):
    def knn(bench: Bench) -> dict:
        return {f"knn_{pool}": knn_top1(*bench.features(pool))}
    return knn


def _linear(pool: str):
    def linear(bench: Bench) -> dict:
        train, val = bench.features(pool)
        classes = len(bench.sets("scenes")[0].classes)  # the dataset's classes, not the largest label its train split has
        return {f"linear_{pool}": quick_linear_probe(train, val, classes, seed=bench.seed)}
    return linear


for _pool in ("cls", "mean"):
    register_probe(f"knn_{_pool}", f"kNN top-1 (k=20, cosine, T=0.07) on the {POOL_NAMES[_pool]}",
                   sizes=("eval_train", "eval_val"))(_knn(_pool))
for _pool in ("cls", "mean"):
    register_probe(f"linear_{_pool}", f"quick linear probe top-1 (300 full-batch steps) on the {POOL_NAMES[_pool]}",
                   sizes=("eval_train", "eval_val"))(_linear(_pool))


class _ObjectScenes:
    """The scenes of an :class:`OfflineScenes` with their main object's coverage per patch: item ->
    (image, label) as the scenes give it, rendered once, its coverage [L] kept in ``cover[index]``
    (the object-pooled readout needs the two together, and rendering twice would double the cost)."""

    def __init__(self, data: OfflineScenes, patch: int):
        self.data, self.patch, self.cover = data, patch, {}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        d = self.data
        rng = scene_rng(d.seed, d.split, index)
        spec = random_spec(rng)  # as make_scene draws it: the same pixels as the other probes' scenes
        image, main = render_scene(rng, spec, d.image_size, return_main=True, variant=d.variant)
        self.cover[index] = patch_cover(main[None], self.patch)[0]
        return d.transform(Image.fromarray(image), index), spec.label


def object_features(bench: Bench) -> tuple:
    """((features [N, D], labels [N]) of the train scenes, of the val scenes): patch tokens averaged over
    the main object's ground-truth coverage (``features.object_pool``), L2-normalised, once per scoring.
    The readout that favours no arm's supervision and looks where the label is (a masking study's probe)."""
    if "object" not in bench._features:
        pairs = []
        for split, data in zip(("train", "val"), bench.sets("scenes")):
            if not isinstance(data, OfflineScenes):
                raise ConfigError("the object-pooled probes read the main object's coverage of the offline scenes; "
                                  f"the {split} scenes given are a {type(data).__name__}")
            scenes, seen = _ObjectScenes(data, bench.patch_size), [0]

            def pooled(images, scenes=scenes, seen=seen):  # batches come in index order: their covers are stored
                n, start = len(images), seen[0]
                seen[0] += n
                cover = torch.as_tensor(np.stack([scenes.cover[i] for i in range(start, start + n)]), device=images.device)
                tokens = bench.encoder.forward_features(images).float()
                return F.normalize(object_pool(tokens[:, 1:], cover.float()), dim=-1)
            pairs.append(run_frozen(bench.encoder, pooled, scenes, bench.device, progress=bench.label(f"{split} object features")))
        bench._features["object"] = tuple(pairs)
    return bench._features["object"]


@register_probe("knn_object", "kNN top-1 (k=20, cosine, T=0.07) on the patch tokens pooled over the main object",
                sizes=("eval_train", "eval_val"))
def knn_object(bench: Bench) -> dict:
    return {"knn_object": knn_top1(*object_features(bench))}


@register_probe("linear_object", "quick linear probe top-1 (300 full-batch steps) on the patch tokens pooled over the main object",
                sizes=("eval_train", "eval_val"))
def linear_object(bench: Bench) -> dict:
    train, val = object_features(bench)
    return {"linear_object": quick_linear_probe(train, val, len(bench.sets("scenes")[0].classes), seed=bench.seed)}


@register_probe("miou", "dense probe: mean IoU of a linear per-patch classifier on label-map scenes",
                sizes=("seg_train", "seg_val", "seg_steps"))
def dense_probe(bench: Bench) -> dict:
    """Trains the linear dense probe on the train label maps, scores the val ones; keeps "dense_probe"
    (the model), "dense_scores" (mIoU, per-class IoU, pixel accuracy) and "dense_val_labels" [N, H, W]."""
    (train_f, train_y), val = bench.patch_features()
    classes = len(bench.sets("seg")[0].classes)
    probe = train_probe(train_f, train_y, classes, steps=bench.sizes["seg_steps"], seed=bench.seed,
                        progress=bench.label("probe"))
    scores = evaluate_probe(probe, *val, classes)
    bench.kept.update(dense_probe=probe, dense_scores=scores, dense_val_labels=val[1])
    return {"miou": scores["miou"]}


@register_probe("attention", "where the class token looks: object ratio, share of attention on the object and "
                "its AUROC, and agreement with the teacher's map",
                metrics=("object_ratio", "agreement", "object_mass", "object_auroc"), sizes=("attention_scenes",))
def attention_probe(bench: Bench) -> dict:
    """Head-mean object ratio, agreement (None without a teacher), object mass and object AUROC
    (``evaluation.attention``) on native scenes with their main object."""
    images, cover = attention.scenes(bench.sizes["attention_scenes"], bench.image_size, bench.seed, variant=bench.variant)
    cover = attention.patch_cover(cover, bench.patch_size)
    target = attention.teacher_importance(bench.teacher, images) if bench.teacher is not None else None
    m = attention.attention_metrics(attention.class_attention(bench.encoder, images), cover, target)
    return {"object_ratio": m["object_ratio"]["mean"], "agreement": m["agreement"]["mean"] if "agreement" in m else None,
            "object_mass": m["object_mass"]["mean"], "object_auroc": m["object_auroc"]["mean"]}
