"""Offline captioned scenes: procedural images generated from (seed, split, index).

Nothing is stored: any index of any split is rendered on demand, deterministically, so a
dataset of any size costs no disk and no download. A scene is laid out in a 64-px frame and
rendered at the size asked for, so it holds the same objects, places and labels at every size.

Each scene holds one *main* object (the largest, the one the caption and the class label are
about) and 0-2 smaller distractors on a textured or noisy background (other scene kinds: ``VARIANTS``). Caption:
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

from milan_lab.config import SCENE_KINDS

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
# "mid": a mid-sized main object (MID_SCALE of a dense one's radius: about 7 of the 64 patches at 8 px) that
# is clearly the largest, among 1-3 small distractors (under half its smallest radius): the label's object is
# the one a teacher and a mean-pooled probe can pick out, yet at a mask ratio of 0.875 random masking often
# hides all of it and semantic masking almost never (how often: the record docs/results/hidden_object.json).
VARIANTS = SCENE_KINDS  # the config's list (it validates offline_variant), in display order
MID_SCALE = 0.7
# per kind: (main radius scale, distractor count range [low, high), distractor radius range in frame pixels)
_KINDS = {"dense": (1.0, (0, 3), (4, 6.5)), "sparse": (0.45, (3, 6), (3, 4)), "mid": (MID_SCALE, (1, 4), (2, 2.7))}
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


# Scenes are laid out in a 64-px frame and rendered at any size: a layout holds every random draw
# (background, objects, colours), so a scene shows the same objects, places and labels at every size.
# The layout consumes the scene's stream in exactly the order the original 64-px renderer did, the
# 64-px pixel noise included, so that 64-px scenes (and every record and asset made from them) stay
# bit for bit what they were.
FRAME = 64


@dataclass(frozen=True)
class SceneObject:
    """One painted object in the 64-px frame: ``centre`` (x, y) and ``radius`` in frame pixels,
    ``angle`` in radians, ``rgb`` its jittered colour in [0, 1]."""
    shape: str
    colour: str
    centre: tuple[float, float]
    radius: float
    angle: float
    rgb: np.ndarray


@dataclass(frozen=True)
class SceneLayout:
    """Everything random about a scene, independent of the output size: the background's
    parameters, its 64-px pixel noise [64, 64, 3], and the objects in painting order (distractors
    first, the main object last)."""
    base: np.ndarray
    kind: int
    params: tuple
    noise: np.ndarray
    objects: tuple[SceneObject, ...]

    @property
    def main(self) -> SceneObject:
        return self.objects[-1]


def _draw_background(rng: np.random.Generator) -> tuple:
    """(base, kind, params, 64-px noise): the draws of a gradient, stripes or blotches background."""
    base = rng.uniform(0.1, 0.4, 3)
    kind = int(rng.integers(3))
    if kind == 0:  # linear gradient: angle, per-channel tilt
        params = (rng.uniform(0, 2 * math.pi), rng.uniform(-0.15, 0.15, 3))
    elif kind == 1:  # low-contrast stripes: frequency, angle
        params = (rng.uniform(3, 8), rng.uniform(0, math.pi))
    else:  # blotches: a 4 x 4 grid of coarse noise
        params = (rng.uniform(-0.1, 0.1, (4, 4, 3)),)
    return base, kind, params, rng.normal(0, 0.03, (FRAME, FRAME, 3))


def _frame_coords(size: int) -> np.ndarray:
    """[size] frame coordinates in [0, 1) of the pixels of a ``size``-px render. A 64-px pixel is
    sampled at its corner (i / 64), so a pixel of another size is sampled at the frame point its
    centre falls on, shifted the same half frame pixel."""
    return ((np.arange(size) + 0.5) * FRAME / size - 0.5) / FRAME


def _render_background(layout: SceneLayout, size: int) -> np.ndarray:
    """Dark-to-mid textured background [size, size, 3] in [0, 1] (float64)."""
    base, kind, params = layout.base, layout.kind, layout.params
    if kind == 0:
        angle, tilt = params
        xs = _frame_coords(size)
        ramp = (np.cos(angle) * xs[None, :] + np.sin(angle) * xs[:, None])[..., None]
        img = base + tilt * ramp
    elif kind == 1:
        freq, angle = params
        xs = _frame_coords(size)
        wave = np.sin(2 * math.pi * freq * (np.cos(angle) * xs[None, :] + np.sin(angle) * xs[:, None]))[..., None]
        img = base + 0.06 * wave
    else:  # the frame's 4 x 4 blocks are 17 px wide (the last one 13): the block of a pixel's frame position
        block = (np.floor((np.arange(size) + 0.5) * FRAME / size).astype(int) // (FRAME // 4 + 1))
        img = base + params[0][block][:, block]
    return img + _pixel_noise(layout, size)


def _pixel_noise(layout: SceneLayout, size: int) -> np.ndarray:
    """Gaussian pixel noise [size, size, 3] (std 0.03). At 64 px, the layout's own noise; at other
    sizes, per-pixel noise from a separate stream seeded by that noise, so it is a function of the
    scene alone and never shifts the scene's draws."""
    if size == FRAME:
        return layout.noise
    seed = np.frombuffer(layout.noise[0, :4].tobytes(), dtype=np.uint32)
    return np.random.default_rng(seed).normal(0, 0.03, (size, size, 3))


def draw_layout(rng: np.random.Generator, spec: SceneSpec, variant: str = "dense",
                background_rng: np.random.Generator | None = None) -> SceneLayout:
    """Draw the layout of a scene whose main object is ``spec`` (see :func:`render_scene`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown scene variant {variant!r}; expected one of {VARIANTS}")
    base, kind, params, noise = _draw_background(background_rng if background_rng is not None else rng)
    col, row = PLACES.index(spec.place) % 3, PLACES.index(spec.place) // 3
    scale, count, d_size = _KINDS[variant]  # draws in the same order for every kind: dense and sparse as they always were
    radius = (rng.uniform(9, 12) if spec.size == "small" else rng.uniform(13.5, 16)) * scale
    centre = ((17 + 15 * col) + rng.uniform(-3, 3), (17 + 15 * row) + rng.uniform(-3, 3))
    objects = []
    # distractors first (painted under the main object), always clearly smaller
    for _ in range(rng.integers(*count)):
        d_shape = SHAPES[rng.integers(len(SHAPES))]
        d_colour = tuple(COLOURS)[rng.integers(len(COLOURS))]
        d_centre = rng.uniform(6, FRAME - 6, 2)
        d_radius = rng.uniform(*d_size)
        d_angle = rng.uniform(0, 2 * math.pi)
        objects.append(SceneObject(d_shape, d_colour, (d_centre[0], d_centre[1]), d_radius, d_angle, _jitter(rng, d_colour)))
    angle = rng.uniform(-0.25, 0.25)
    objects.append(SceneObject(spec.shape, spec.colour, centre, radius, angle, _jitter(rng, spec.colour)))
    return SceneLayout(base, kind, params, noise, tuple(objects))


def _jitter(rng: np.random.Generator, colour: str) -> np.ndarray:
    return np.clip(np.asarray(COLOURS[colour]) + rng.uniform(-0.05, 0.05, 3), 0, 1)


def _paint(img: np.ndarray, obj: SceneObject, scale: float) -> np.ndarray:
    """Paint ``obj`` into ``img`` [H, W, 3] in place; returns its coverage [H, W] in [0, 1]."""
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    radius = obj.radius * scale
    dx, dy = xx - obj.centre[0] * scale, yy - obj.centre[1] * scale
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    u, v = (c * dx + s * dy) / radius, (-s * dx + c * dy) / radius
    alpha = np.clip(0.5 - _sdf(obj.shape, u, v) * radius, 0.0, 1.0)[..., None]  # 1-px antialiasing at any size
    img *= 1 - alpha
    img += alpha * obj.rgb
    return alpha[..., 0]


def render_layout(layout: SceneLayout, image_size: int = 64, return_mask: bool = False,
                  return_labels: bool = False, return_main: bool = False):
    """Render ``layout`` at ``image_size`` px; outputs as :func:`render_scene`."""
    scale = image_size / FRAME
    img = _render_background(layout, image_size)
    coverage = np.zeros((image_size, image_size))
    labels = np.zeros((image_size, image_size), dtype=np.uint8)
    for obj in layout.objects[:-1]:
        a = _paint(img, obj, scale)
        coverage = np.maximum(coverage, a)
        labels[a >= 0.5] = SHAPES.index(obj.shape) + 1
    a = _paint(img, layout.main, scale)
    labels[a >= 0.5] = SHAPES.index(layout.main.shape) + 1
    image = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    extra = ([np.maximum(coverage, a)] if return_mask else []) + ([labels] if return_labels else []) + (
        [a] if return_main else [])
    return (image, *extra) if extra else image


def render_scene(rng: np.random.Generator, spec: SceneSpec, image_size: int = 64,
                 background_rng: np.random.Generator | None = None,
                 return_mask: bool = False, return_labels: bool = False, return_main: bool = False,
                 variant: str = "dense"):
    """Render ``spec`` as a uint8 image [H, W, 3]; with ``return_mask`` also the float object
    coverage [H, W] in [0, 1] of all objects (main and distractors); with ``return_labels`` also
    the label map [H, W] uint8: 0 background, 1 + shape index where an object covers at least half
    the pixel (later objects, the main one last, paint over earlier ones, as in the image); with
    ``return_main`` also the main object's own coverage [H, W] in [0, 1].
    Pixels and labels come from the same painting, so they cannot disagree; the scene (objects,
    places, colours, labels) is the same at every ``image_size``, only finer (:func:`draw_layout`).

    ``variant``: the kind of scene (``VARIANTS``). ``background_rng`` lets hard-negative groups
    share one background (pass a fresh generator with the same seed for each member); by default
    the scene's own ``rng`` draws it.
    """
    layout = draw_layout(rng, spec, variant, background_rng)
    return render_layout(layout, image_size, return_mask=return_mask, return_labels=return_labels, return_main=return_main)


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
