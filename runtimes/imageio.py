"""Image reading and writing at the edges of the system: uint8 RGB HxWx3 arrays.

Handles EXIF orientation, greyscale, 16-bit, palette, CMYK and alpha (the alpha channel is
returned separately so it can be put back on the stylized image)."""
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import UserError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
ALPHA_EXTS = {".png", ".webp", ".tif", ".tiff"}


class ImageReadError(UserError):
    pass


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    arr = arr.astype(np.float64)
    top = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def read_image(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Returns (rgb uint8 HxWx3, alpha uint8 HxW or None)."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
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


def load_square(path, side: int) -> np.ndarray:
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return np.asarray(img.resize((side, side), Image.BICUBIC))
