"""Offline captioned scenes: procedural images generated from (seed, split, index).

Nothing is stored: any index of any split is rendered on demand, deterministically, so a
dataset of any size costs no disk and no download.

Each scene holds one *main* object (the largest, the one the caption and the class label are
about) and 0-2 smaller distractors on a textured or noisy background. Caption:
"a {size} {colour} {shape} at the {place}". Class label: the main object's shape.

Why this design (see README, "The offline teacher"): a contrastive model trained on captions
that name colour, size and place can solve its task without ever looking at shape. Three things
force shape to be learned: (1) ``render_scene`` takes attribute overrides, so the teacher
trainer builds *hard-negative groups* that share colour, size, place and background and differ
only in shape; (2) distractor objects mean "the red thing" is not enough to find the object;
(3) objects span 2-4 patches of 8 px, so shape is visible at patch level, and are rotated a
little, so a shape is not a fixed pixel template.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star", "ring", "crescent")
COLOURS = {
    "red": (0.90, 0.15, 0.15), "green": (0.15, 0.75, 0.20), "blue": (0.20, 0.35, 0.95),
    "yellow": (0.95, 0.90, 0.15), "purple": (0.60, 0.20, 0.80), "orange": (1.00, 0.55, 0.05),
    "white": (0.95, 0.95, 0.95), "cyan": (0.10, 0.85, 0.90),
}
SIZES = ("small", "large")
PLACES = ("top left", "top", "top right", "left", "centre", "right",
          "bottom left", "bottom", "bottom right")
SPLITS = {"train": 0, "val": 1, "test": 2}
# Scene kinds. "dense": one large main object (a quarter to a half of the image side) and 0-2 smaller
# distractors. "sparse": a small main object (about a sixth of the side) among 3-5 distractors a little
# smaller still, so that random masking at 75 % often hides it while the teacher's attention can keep it.
VARIANTS = ("dense", "sparse")
# Attributes named by captions, in caption order; zero-shot evaluation covers all of them.
ATTRIBUTES = {"size": SIZES, "colour": tuple(COLOURS), "shape": SHAPES, "place": PLACES}


@dataclass(frozen=True)
class SceneSpec:
    """Attributes of a scene's main object; the caption and label are derived from it."""
    shape: str
    colour: str
    size: str
    place: str

    @property
    def label(self) -> int:
        return SHAPES.index(self.shape)

    def caption(self, drop: tuple[str, ...] = ()) -> str:
        """Caption naming the main object; attributes in ``drop`` are left out ("a red star")."""
        words = ["a"]
        if "size" not in drop:
            words.append(self.size)
        if "colour" not in drop:
            words.append(self.colour)
        words.append(self.shape if "shape" not in drop else "shape")
        if "place" not in drop:
            words += ["at", "the", self.place]
        return " ".join(words)


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Independent stream per (seed, split, index): splits never share a scene."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    return np.random.default_rng([seed, SPLITS[split], index])


def random_spec(rng: np.random.Generator, **fixed: str) -> SceneSpec:
    """Draw a main-object spec; keyword arguments fix attributes (used for hard negatives)."""
    for key, value in fixed.items():
        if key not in ATTRIBUTES or value not in ATTRIBUTES[key]:
            raise ValueError(f"bad scene attribute {key}={value!r}")
    draw = {k: v[rng.integers(len(v))] for k, v in ATTRIBUTES.items()}
    return SceneSpec(**{**draw, **fixed})


def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance (in object radii) of a unit shape centred at 0."""
    r = np.hypot(u, v)
    if shape == "circle":
        return r - 0.95
    if shape == "ring":
        return np.abs(r - 0.68) - 0.30
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.78
    if shape == "diamond":
        return (np.abs(u) + np.abs(v) - 1.0) / math.sqrt(2)
    if shape == "triangle":  # equilateral, pointing up (v grows downwards), circumradius 1
        normals = [(0.0, 1.0), (math.cos(math.radians(210)), -0.5), (math.cos(math.radians(330)), -0.5)]
        return np.max([u * nx + v * ny for nx, ny in normals], axis=0) - 0.5
    if shape == "cross":
        bar = lambda a, b: np.maximum(np.abs(u) - a, np.abs(v) - b)  # noqa: E731
        return np.minimum(bar(0.95, 0.30), bar(0.30, 0.95))
    if shape == "star":  # five points: radius swings between 0.42 and 1.0 around the circle
        theta = np.arctan2(v, u) + math.pi / 2
        t = np.abs(((theta * 5 / (2 * math.pi)) % 1.0) - 0.5) * 2  # 1 at a point, 0 between
        return (r - (0.42 + 0.58 * t)) * 0.6
    if shape == "crescent":
        return np.maximum(r - 0.95, -(np.hypot(u - 0.45, v + 0.15) - 0.75))
    raise ValueError(f"unknown shape {shape!r}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dark-to-mid textured background [H, W, 3] in [0, 1]: gradient, stripes or blotches."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.1, 0.4, 3)
    kind = rng.integers(3)
    if kind == 0:  # linear gradient
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
        img = base + rng.uniform(-0.15, 0.15, 3) * ramp
    elif kind == 1:  # low-contrast stripes
        freq, angle = rng.uniform(3, 8), rng.uniform(0, math.pi)
        wave = np.sin(2 * math.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy))[..., None]
        img = base + 0.06 * wave
    else:  # blotches: coarse noise upsampled
        coarse = rng.uniform(-0.1, 0.1, (4, 4, 3))
        img = base + np.kron(coarse, np.ones((size // 4 + 1, size // 4 + 1, 1)))[:size, :size]
    img = img + rng.normal(0, 0.03, (size, size, 3))
    return img


def _paint(img, rng, shape, colour, centre, radius, angle):
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dx, dy = xx - centre[0], yy - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = (c * dx + s * dy) / radius, (-s * dx + c * dy) / radius
    alpha = np.clip(0.5 - _sdf(shape, u, v) * radius, 0.0, 1.0)[..., None]  # 1-px antialiasing
    rgb = np.clip(np.asarray(COLOURS[colour]) + rng.uniform(-0.05, 0.05, 3), 0, 1)
    img *= 1 - alpha
    img += alpha * rgb
    return alpha[..., 0]


def render_scene(rng: np.random.Generator, spec: SceneSpec, image_size: int = 64,
                 background_rng: np.random.Generator | None = None,
                 return_mask: bool = False, return_labels: bool = False, return_main: bool = False,
                 variant: str = "dense"):
    """Render ``spec`` as a uint8 image [H, W, 3]; with ``return_mask`` also the float object
    coverage [H, W] in [0, 1] of all objects (main and distractors); with ``return_labels`` also
    the label map [H, W] uint8: 0 background, 1 + shape index where an object covers at least half
    the pixel (later objects, the main one last, paint over earlier ones, as in the image); with
    ``return_main`` also the main object's own coverage [H, W] in [0, 1].
    Pixels and labels come from the same painting, so they cannot disagree.

    ``variant``: the kind of scene (``VARIANTS``). ``background_rng`` lets hard-negative groups
    share one background (pass a fresh generator with the same seed for each member); by default
    the scene's own ``rng`` draws it.
    """
    s = image_size / 64  # geometry is designed at 64 px and scales with the image
    img = _background(background_rng if background_rng is not None else rng, image_size)
    col, row = PLACES.index(spec.place) % 3, PLACES.index(spec.place) // 3
    if variant not in VARIANTS:
        raise ValueError(f"unknown scene variant {variant!r}; expected one of {VARIANTS}")
    sparse = variant == "sparse"
    radius = (rng.uniform(9, 12) if spec.size == "small" else rng.uniform(13.5, 16)) * s * (0.45 if sparse else 1)
    centre = ((17 + 15 * col) * s + rng.uniform(-3, 3) * s, (17 + 15 * row) * s + rng.uniform(-3, 3) * s)
    coverage = np.zeros((image_size, image_size))
    labels = np.zeros((image_size, image_size), dtype=np.uint8)
    # distractors first (painted under the main object), always clearly smaller
    for _ in range(rng.integers(3, 6) if sparse else rng.integers(0, 3)):
        d_shape = SHAPES[rng.integers(len(SHAPES))]
        d_colour = tuple(COLOURS)[rng.integers(len(COLOURS))]
        d_centre = rng.uniform(6 * s, image_size - 6 * s, 2)
        d_radius = rng.uniform(3, 4) * s if sparse else rng.uniform(4, 6.5) * s
        a = _paint(img, rng, d_shape, d_colour, d_centre, d_radius, rng.uniform(0, 2 * math.pi))
        coverage = np.maximum(coverage, a)
        labels[a >= 0.5] = SHAPES.index(d_shape) + 1
    a = _paint(img, rng, spec.shape, spec.colour, centre, radius, rng.uniform(-0.25, 0.25))
    labels[a >= 0.5] = SHAPES.index(spec.shape) + 1
    image = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    extra = ([np.maximum(coverage, a)] if return_mask else []) + ([labels] if return_labels else []) + (
        [a] if return_main else [])
    return (image, *extra) if extra else image


def make_scene(seed: int, split: str, index: int, image_size: int = 64,
               variant: str = "dense") -> tuple[np.ndarray, SceneSpec]:
    """The scene at ``index`` of ``split``: (uint8 image [H, W, 3], spec)."""
    rng = scene_rng(seed, split, index)
    spec = random_spec(rng)
    return render_scene(rng, spec, image_size, variant=variant), spec


# Dense labels: class 0 is the background, class 1 + i the shape SHAPES[i], whichever object it is.
SEG_CLASSES = ("background",) + SHAPES


def make_labelled_scene(seed: int, split: str, index: int, image_size: int = 64,
                        variant: str = "dense") -> tuple[np.ndarray, np.ndarray]:
    """The same scene as :func:`make_scene` with its label map: (uint8 image [H, W, 3], uint8
    labels [H, W] indexing ``SEG_CLASSES``)."""
    rng = scene_rng(seed, split, index)
    spec = random_spec(rng)
    return render_scene(rng, spec, image_size, return_labels=True, variant=variant)


def make_scene_with_main_object(seed: int, split: str, index: int, image_size: int = 64, variant: str = "dense"):
    """The same scene as :func:`make_scene` with its main object's coverage: (uint8 image
    [H, W, 3], float coverage [H, W] in [0, 1] of the object the caption names)."""
    rng = scene_rng(seed, split, index)
    spec = random_spec(rng)
    return render_scene(rng, spec, image_size, return_main=True, variant=variant)


def patch_labels(labels: np.ndarray, patch: int) -> np.ndarray:
    """Per-patch majority label [H/p, W/p] of a label map [H, W] (ties: the lower class)."""
    h, w = labels.shape
    blocks = labels.reshape(h // patch, patch, w // patch, patch).transpose(0, 2, 1, 3).reshape(h // patch, w // patch, -1)
    counts = np.apply_along_axis(np.bincount, 2, blocks.astype(np.int64), minlength=int(labels.max()) + 1)
    return counts.argmax(-1).astype(labels.dtype)
