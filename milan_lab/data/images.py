"""Opening images from files, bytes, PIL images or arrays: the one place every caller (the app,
predict/test, class folders, caption pairs, notebooks) turns an input into an RGB image.

The EXIF orientation tag is applied (a portrait photo from a phone is stored sideways and
tagged), grayscale / palette / RGBA / 16-bit inputs are converted, and anything that is not a
usable image raises :class:`~milan_lab.errors.BadImage` with a message meant for the user.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from milan_lab.errors import BadImage

MIN_SIDE = 16            # smaller images carry no patches worth showing
MAX_PIXELS = 40_000_000  # refuse above this (decoding alone would take seconds and GBs)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL refuses (DecompressionBombError) at twice this
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def load_image(src, min_side: int = MIN_SIDE) -> Image.Image:
    """Path, bytes, PIL image or array -> upright RGB PIL image."""
    if src is None:
        raise BadImage("No image: upload one or pick an example.")
    if isinstance(src, np.ndarray):
        img = _from_array(src)
    elif isinstance(src, Image.Image):
        img = ImageOps.exif_transpose(src)
    else:
        img = _open(src)
    if min(img.size) < min_side:
        raise BadImage(f"Image is too small ({img.width}x{img.height}); at least {min_side} px per side is needed.")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((255 * (arr - arr.min()) / max(arr.max() - arr.min(), 1)).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img.convert("RGB")


def _open(src) -> Image.Image:
    name = Path(src).name if isinstance(src, (str, Path)) else "upload"
    if isinstance(src, (str, Path)) and not Path(src).is_file():
        raise BadImage(f"{src}: no such file.")
    try:
        img = Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)
        if img.width * img.height > MAX_PIXELS:
            raise BadImage(f"{name}: image is too large ({img.width}x{img.height}); the limit is "
                           f"{MAX_PIXELS // 10**6} MP.")
        img.load()
        return ImageOps.exif_transpose(img)  # upright, as the camera meant it
    except BadImage:
        raise
    except Image.DecompressionBombError:
        raise BadImage(f"{name}: image is too large; the limit is {MAX_PIXELS // 10**6} MP.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"{name}: not a readable image ({type(e).__name__}); try a PNG or JPEG.") from None


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim not in (2, 3):
        raise BadImage(f"Expected an image array [H, W] or [H, W, C], got shape {arr.shape}.")
    if arr.dtype == np.uint16:
        arr = (arr / 257).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8) if arr.max() <= 1.0 else np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(arr[..., :3] if arr.ndim == 3 and arr.shape[2] >= 3 else arr.squeeze())
