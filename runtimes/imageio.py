"""Image reading and writing at the edges of the system: uint8 RGB HxWx3 arrays.

Handles EXIF orientation, greyscale, 16-bit, palette, CMYK and alpha (the alpha channel is
returned separately so it can be put back on the stylized image). Refused as unreadable:
pictures over MAX_PIXELS (a decompression bomb claims 100000x100000 in a few bytes; the size
is read from the header before any decoding) and float pictures with NaN or infinite pixels
(there is no honest colour for them)."""
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import UserError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
ALPHA_EXTS = {".png", ".webp", ".tif", ".tiff"}
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's own bomb threshold (89.5 MP), enforced as an error


class ImageReadError(UserError):
    pass


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ImageReadError("image has NaN or infinite pixel values")
    top = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _check_size(pixels: int):
    if pixels > MAX_PIXELS:
        raise ImageReadError(f"image too large: {pixels / 1e6:.0f} MP (the limit is {MAX_PIXELS / 1e6:.0f} MP)")


def read_image(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Returns (rgb uint8 HxWx3, alpha uint8 HxW or None)."""
    try:
        with Image.open(path) as img:
            _check_size(img.width * img.height)
            img = ImageOps.exif_transpose(img)
            img.load()
    except Image.DecompressionBombError as exc:  # Pillow's own refusal, above twice its limit
        _check_size(int(re.search(r"\((\d+) pixels\)", str(exc)).group(1)))
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError(f"cannot read image ({exc.__class__.__name__}: {exc})") from None
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    alpha = None
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(img.getchannel("A"))
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        grey = _to_uint8(np.asarray(img))
        return np.repeat(grey[..., None], 3, axis=2), None
    rgb = np.asarray(img.convert("RGB"))
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise ImageReadError("empty image")
    return np.ascontiguousarray(rgb), alpha


def write_image(path, rgb: np.ndarray, alpha: np.ndarray | None = None):
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot write {path.suffix or 'extension-less'} images")
    img = Image.fromarray(rgb)
    if alpha is not None and path.suffix.lower() in ALPHA_EXTS:
        img.putalpha(Image.fromarray(alpha))
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt, **options)


def list_images(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files


def image_format(path) -> str | None:
    """The picture format the file's content says (PNG, JPEG, ...), read from its header
    only; None if it is not a picture Pillow knows. The name's extension is not trusted."""
    try:
        with Image.open(path) as img:
            return img.format
    except Image.DecompressionBombError:
        return "unknown"  # a picture, too large to read: read_image says so
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def extension_for(fmt: str | None) -> str:
    """The extension an output of this content gets (PNG for anything unusual)."""
    return {"JPEG": ".jpg", "MPO": ".jpg", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}.get(fmt, ".png")


def load_square(path, side: int) -> np.ndarray:
    rgb, _ = read_image(path)
    return np.asarray(Image.fromarray(rgb).resize((side, side), Image.BICUBIC))
