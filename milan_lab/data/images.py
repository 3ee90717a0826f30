"""Opening images from files, bytes, PIL images or arrays: the one place every caller (the app,
predict/test, class folders, caption pairs, notebooks) turns an input into an RGB image.

The EXIF orientation tag is applied (a portrait photo from a phone is stored sideways and
tagged), grayscale / palette / RGBA / 16-bit inputs are converted, and anything that is not a
usable image raises :class:`~milan_lab.errors.BadImage` with a message meant for the user.

Two size guards, for two kinds of input. An upload (the app, ``predict``, ``inference_model``)
over ``MAX_PIXELS`` is refused from its header: nobody means to classify a 100 MP file there. An
image file of a dataset folder (``max_pixels=None``) is taken at any size: a phone photo has 48 or
200 MP, and a training crop is decoded at reduced size where it can be. What such a file is refused
for is memory: a decode whose pixels would take more than ``MEMORY_SHARE`` of the memory available
now (a decompression bomb, or an image too large for this machine).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from milan_lab.errors import BadImage
from milan_lab.io.memory import available_memory

MIN_SIDE = 16            # smaller images carry no patches worth showing
MAX_PIXELS = 40_000_000  # uploads above this are refused (decoding alone would take seconds and GBs)
MEMORY_SHARE = 0.25      # a file's decode may take at most this share of the available memory
# PIL's own guard is a fixed pixel count (a warning at 89 MP, an error at 179 MP) that would stop a
# training run on a genuine photo; open_image's guards above replace it
Image.MAX_IMAGE_PIXELS = None
ORIENTATION = 0x0112     # the EXIF orientation tag


def load_image(src, min_side: int = MIN_SIDE, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """Path, bytes, PIL image or array -> upright RGB PIL image. ``max_pixels``: the cap of an
    upload; None for a dataset's files (any size that fits in memory, see :func:`open_image`)."""
    if src is None:
        raise BadImage("No image: upload one or pick an example.")
    if isinstance(src, np.ndarray):
        img = _from_array(src)
    elif isinstance(src, Image.Image):
        img = ImageOps.exif_transpose(src)
    else:
        return decode_image(open_image(src, max_pixels), min_side)
    return _to_rgb(img, min_side)


def open_image(src, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """A file (path or bytes) opened lazily: its header is read (size, mode, EXIF), its pixels not
    yet, so a caller may ask for a reduced-size decode (``img.draft``) before
    :func:`decode_image`. Unreadable files raise :class:`BadImage`, as do files over ``max_pixels``
    (an upload's cap); with ``max_pixels=None`` (a dataset's files) the size is judged when the
    pixels are decoded, against the memory available (:func:`check_decode_fits`)."""
    name = Path(src).name if isinstance(src, (str, Path)) else "upload"
    if isinstance(src, (str, Path)) and not Path(src).is_file():
        raise BadImage(f"{src}: no such file.")
    try:
        img = Image.open(io.BytesIO(src) if isinstance(src, bytes) else src)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImage(f"{name}: not a readable image ({type(e).__name__}); try a PNG or JPEG.") from None
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise BadImage(f"{name}: image is too large ({img.width}x{img.height}); the limit is {max_pixels // 10**6} MP.")
    img.milan_name = name
    return img


def check_decode_fits(img: Image.Image) -> None:
    """Refuse (:class:`BadImage`) to decode ``img`` at its current size (after any ``draft``) when its
    RGB pixels would take more than ``MEMORY_SHARE`` of the available memory. Only images over
    ``MAX_PIXELS`` are measured: below it a decode takes at most 160 MB."""
    width, height = img.size
    if width * height <= MAX_PIXELS:
        return
    need, free = width * height * max(3, len(img.getbands())), available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        name = getattr(img, "milan_name", "upload")
        raise BadImage(f"{name}: decoding it ({width}x{height}) would take {need / 2**30:.1f} GB, more than "
                       f"{MEMORY_SHARE:.0%} of the {free / 2**30:.1f} GB of memory available; downscale the file.")


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of ``img`` once its EXIF orientation is applied (read from the header)."""
    transposed = img.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)
    return (img.height, img.width) if transposed else img.size


def decode_image(img: Image.Image, min_side: int = MIN_SIDE) -> Image.Image:
    """Decode an image from :func:`open_image` -> upright RGB (EXIF orientation applied)."""
    name = getattr(img, "milan_name", "upload")
    check_decode_fits(img)
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
        check_decode_fits(img)
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
