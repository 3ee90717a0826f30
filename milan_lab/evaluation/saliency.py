"""A map from the pixels alone: the low-level saliency a class token's attention must beat to mean anything.

**Colour distinctness** (Achanta et al., "Frequency-tuned salient region detection", CVPR 2009, at patch
resolution): the Euclidean distance in CIELAB between a patch's mean colour and the image's mean colour.
CIELAB because its distances follow perceived colour differences (a pale yellow and a white are close
there, far apart in no RGB channel); the patch mean stands in for the paper's small Gaussian blur, so
that the map lives on the encoder's patch grid, like the attention it is compared with. On the offline
scenes the main object is a flat, saturated colour on a textured background, so this map is a strong
baseline there: it finds every distinctly coloured region (distractors too) without knowing what an
object is. The distance is non-negative, so the map is a set of weights like an attention map, and the
same metrics (``evaluation.attention.map_metrics``) score both.
"""
from __future__ import annotations

import numpy as np


def colour_distinctness(images: np.ndarray, patch: int) -> np.ndarray:
    """Per patch, the CIELAB distance of its mean colour from the image's: uint8 images [N, H, W, 3]
    (H, W multiples of ``patch``) -> [N, L] with L = (H / patch) * (W / patch), row-major, >= 0."""
    from skimage.color import rgb2lab  # scikit-image is a dependency; its import is kept off the package's import path

    n, h, w, _ = images.shape
    if h % patch or w % patch:
        raise ValueError(f"{h} x {w} images do not tile into {patch}-px patches")
    lab = rgb2lab(np.asarray(images, dtype=np.float64) / 255.0)  # [N, H, W, 3]; rgb2lab takes floats in [0, 1]
    patches = lab.reshape(n, h // patch, patch, w // patch, patch, 3).mean((2, 4)).reshape(n, -1, 3)  # [N, L, 3]
    image_mean = lab.reshape(n, -1, 3).mean(1, keepdims=True)  # [N, 1, 3]
    return np.linalg.norm(patches - image_mean, axis=-1)
