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
ORIENTATION = 0x0112     # the EXIF orientation tag


def load_image(src, min_side: int = MIN_SIDE) -> Image.Image:
    """Path, bytes, PIL image or array -> upright RGB PIL image."""
    if src is None:
        raise BadImage("No image: upload one or pick an example.")
    if isinstance(src, np.ndarray):
        img = _from_array(src)
    elif isinstance(src, Image.Image):
        img = ImageOps.exif_transpose(src)
    else:
        return decode_image(open_image(src), min_side)
    return _to_rgb(img, min_side)


def open_image(src) -> Image.Image:
    """A file (path or bytes) opened lazily: its header is read (size, mode, EXIF), its pixels not
    yet, so a caller may ask for a reduced-size decode (``img.draft``) before
    :func:`decode_image`. Unreadable or too large files raise :class:`BadImage`."""
    name = Path(src).name if isinstance(src, (str, Path)) else "upload"
    if isinstance(src, (str, Path)) and not Path(src).is_file():
        raise BadImage(f"{src}: no such file.")
    try:
        img = Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)
    except Image.DecompressionBombError:
        raise BadImage(f"{name}: image is too large; the limit is {MAX_PIXELS // 10**6} MP.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"{name}: not a readable image ({type(e).__name__}); try a PNG or JPEG.") from None
    if img.width * img.height > MAX_PIXELS:
        raise BadImage(f"{name}: image is too large ({img.width}x{img.height}); the limit is {MAX_PIXELS // 10**6} MP.")
    img.milan_name = name
    return img


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of ``img`` once its EXIF orientation is applied (read from the header)."""
    transposed = img.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)
    return (img.height, img.width) if transposed else img.size


def decode_image(img: Image.Image, min_side: int = MIN_SIDE) -> Image.Image:
    """Decode an image from :func:`open_image` -> upright RGB (EXIF orientation applied)."""
    name = getattr(img, "milan_name", "upload")
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # upright, as the camera meant it
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"{name}: not a readable image ({type(e).__name__}); try a PNG or JPEG.") from None
    return _to_rgb(img, min_side)


# numpy views that apply each EXIF orientation to an [H, W, C] array, as ImageOps.exif_transpose does
_UPRIGHT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def decode_array(img: Image.Image) -> np.ndarray:
    """Decode an image from :func:`open_image` -> upright RGB uint8 [H, W, 3] (possibly a strided
    view). A baseline RGB or greyscale JPEG file goes straight from libjpeg-turbo into numpy
    (simplejpeg: no PIL image, no copy out of it, which costs as much as the decode); anything
    else through :func:`decode_image`."""
    path = getattr(img, "filename", None)
    if img.format == "JPEG" and img.mode in ("RGB", "L") and path:
        import simplejpeg
        try:
            arr = simplejpeg.decode_jpeg(Path(path).read_bytes(), colorspace="RGB")
        except (ValueError, OSError) as e:
            raise BadImage(f"{Path(path).name}: not a readable image ({type(e).__name__}); try a PNG or JPEG.") from None
        orientation = img.getexif().get(ORIENTATION, 1)
        return _UPRIGHT[orientation](arr) if orientation in _UPRIGHT else arr
    return np.asarray(decode_image(img, min_side=1))


def _to_rgb(img: Image.Image, min_side: int) -> Image.Image:
    if min(img.size) < min_side:
        raise BadImage(f"Image is too small ({img.width}x{img.height}); at least {min_side} px per side is needed.")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((255 * (arr - arr.min()) / max(arr.max() - arr.min(), 1)).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img if img.mode == "RGB" else img.convert("RGB")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim not in (2, 3):
        raise BadImage(f"Expected an image array [H, W] or [H, W, C], got shape {arr.shape}.")
    if arr.dtype == np.uint16:
        arr = (arr / 257).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8) if arr.max() <= 1.0 else np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(arr[..., :3] if arr.ndim == 3 and arr.shape[2] >= 3 else arr.squeeze())
