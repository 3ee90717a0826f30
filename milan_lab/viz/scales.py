"""Colour scales and titles drawn into panel images (arrays in, arrays out).

The explorer shows each map as a plain image; a colour bar drawn into the same array (rather than
a matplotlib figure per panel) keeps a panel's latency at a few milliseconds and travels with the
image when it is downloaded. Text is drawn with PIL in matplotlib's bundled DejaVu Sans, so the
panels look the same on every machine.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from matplotlib import colormaps, font_manager
from PIL import Image, ImageDraw, ImageFont

BAR_HEIGHT = 10   # px of the gradient itself
PAD = 4           # px around the bar and the text


@lru_cache(maxsize=4)
def font(size: int = 12) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at ``size`` px (shipped with matplotlib, so present wherever the package runs)."""
    return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans")), size)


def _number(v: float) -> str:
    """A short label for a scale end: 3 significant digits, no trailing noise."""
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def colour_scale(width: int, lo: float, hi: float, cmap: str, label: str, size: int = 12) -> np.ndarray:
    """A horizontal colour bar [h, width, 3] (uint8): the gradient of ``cmap`` from ``lo`` (left)
    to ``hi`` (right), the two values under its ends and ``label`` between them."""
    f = font(size)
    height = PAD + BAR_HEIGHT + PAD + size + PAD
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    ramp = colormaps[cmap](np.linspace(0, 1, width - 2 * PAD))[:, :3]
    bar = (255 * np.repeat(ramp[None], BAR_HEIGHT, 0)).round().astype(np.uint8)
    strip.paste(Image.fromarray(bar), (PAD, PAD))
    draw = ImageDraw.Draw(strip)
    draw.rectangle((PAD - 1, PAD - 1, width - PAD, PAD + BAR_HEIGHT), outline=(90, 90, 90))
    y = PAD + BAR_HEIGHT + PAD - 1
    left, right = _number(lo), _number(hi)
    draw.text((PAD, y), left, fill=(0, 0, 0), font=f)
    draw.text((width - PAD - draw.textlength(right, font=f), y), right, fill=(0, 0, 0), font=f)
    room = width - 4 * PAD - draw.textlength(left, font=f) - draw.textlength(right, font=f)
    text = _fit(draw, label, f, room)
    draw.text(((width - draw.textlength(text, font=f)) / 2, y), text, fill=(60, 60, 60), font=f)
    return np.asarray(strip)


def _fit(draw: ImageDraw.ImageDraw, text: str, f, room: float) -> str:
    """``text`` shortened with an ellipsis until it fits ``room`` px (never drawn over the numbers)."""
    if draw.textlength(text, font=f) <= room:
        return text
    while text and draw.textlength(text + "…", font=f) > room:
        text = text[:-1]
    return text + "…" if text else ""


def with_scale(image: np.ndarray, lo: float, hi: float, cmap: str, label: str) -> np.ndarray:
    """``image`` [H, W, 3] (float in [0, 1] or uint8) with its colour bar under it -> uint8
    [H + h, W, 3]."""
    img = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return np.concatenate([img, colour_scale(img.shape[1], float(lo), float(hi), cmap, label)], 0)
