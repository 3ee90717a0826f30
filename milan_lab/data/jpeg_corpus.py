"""A class folder of JPEG photos with ImageNet's size distribution, made offline.

The input pipeline's cost depends on what it decodes: ImageNet's training JPEGs have a short side
of about 300-500 px at quality about 90. The photos scikit-image and matplotlib ship (astronaut,
coffee, rocket, a cat, a retina, the Hubble deep field, Grace Hopper) are cropped and resized at
random to that distribution and saved as such JPEGs, so a benchmark or a test measures a real
decode without downloading anything.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel")


def source_photos() -> list[np.ndarray]:
    """The RGB photos shipped with scikit-image and matplotlib, uint8 [H, W, 3]."""
    from skimage import data
    photos = [getattr(data, name)() for name in PHOTOS]
    import matplotlib.cbook as cbook
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(np.asarray(Image.open(f).convert("RGB")))
    return photos


def make_jpeg_corpus(root: str | Path, n: int = 256, classes: int = 4, short_side=(300, 500), quality: int = 90,
                     seed: int = 0) -> Path:
    """``root/class_k/img_i.jpg``: ``n`` JPEGs over ``classes`` folders, each a random crop of a
    shipped photo resized to a short side drawn from ``short_side`` and an aspect ratio from
    3:4 to 4:3, in either orientation. Existing files are kept (the corpus is deterministic)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    photos = source_photos()
    for i in range(n):
        path = root / f"class_{i % classes}" / f"img_{i:05d}.jpg"
        src = photos[int(rng.integers(len(photos)))]
        short, aspect = int(rng.integers(short_side[0], short_side[1] + 1)), float(rng.uniform(1.0, 4 / 3))
        size = (round(short * aspect), short) if rng.random() < 0.6 else (short, round(short * aspect))  # (w, h)
        h, w = src.shape[:2]
        frac = rng.uniform(0.6, 1.0)  # a crop of the photo with the output's aspect ratio
        cw = min(w, round(frac * min(w, h * size[0] / size[1])))
        ch = min(h, round(cw * size[1] / size[0]))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(src[top:top + ch, left:left + cw]).resize(size, Image.BICUBIC)
        img.save(path, quality=quality)
    return root
