"""Image reading and writing at the edges of the system: uint8 RGB HxWx3 arrays.

Handles EXIF orientation, greyscale, 16-bit, 32-bit and float, palette, CMYK and alpha (the
alpha channel is returned separately so it can be put back on the stylized image). Integer
and float pictures are scaled by the nominal range of what the file holds, as Pillow
reports it (16-bit: 0..65535, float: 0..1), never by their largest value. Animated GIF,
WebP and PNG pictures and multi-page TIFFs are read frame by frame (read_frames) and
written back with every frame, its duration and the loop count (write_frames).
Refused as unreadable: anything but a regular file (a FIFO would block), pictures over
MAX_PIXELS (a decompression bomb claims 100000x100000 in a few bytes; the size is read from
the header before any decoding), animations over ANIMATION_PIXELS in all, and float
pictures with NaN or infinite pixels (there is no honest colour for them)."""
import contextlib
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path, is_temporary
from .errors import UserError
from .files import problem

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
ALPHA_EXTS = {".png", ".webp", ".tif", ".tiff", ".gif"}
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's own bomb threshold (89.5 MP), enforced as an error
ANIMATION_PIXELS = 2 * MAX_PIXELS  # every frame of an animation together (they are all held to be written)
ANIMATED_FORMATS = {"GIF", "PNG", "WEBP", "TIFF"}  # what Pillow writes with every frame
STILL_FORMATS = {"MPO"}  # a phone's JPEG whose extra pictures (previews, depth) are not frames
_RAW_INT = re.compile(r"I;(16|32)[BLN]?(S?)$")  # Pillow's raw layouts behind mode I


class ImageReadError(UserError):
    pass


def _check_size(pixels: int, limit: int = MAX_PIXELS, what: str = "image"):
    if pixels > limit:
        raise ImageReadError(f"{what} too large: {pixels / 1e6:.0f} MP (the limit is {limit / 1e6:.0f} MP)")


def _rawmode(img) -> str:
    """How the file stores its pixels (read before loading, which drops it)."""
    args = img.tile[0][3] if img.tile else ""
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


def _unit(img, rawmode: str, fmt: str | None) -> np.ndarray:
    """An I or F picture's values over its nominal range: F is 0..1; I;16 modes and Pillow's
    PGM/PPM (already scaled to 16 bits) 0..65535; mode I by the file's layout: unsigned
    16-bit 0..65535, signed 16-bit 0..32767, unsigned 32-bit 0..2**32-1, otherwise signed
    32-bit 0..2**31-1 (negative values are black)."""
    arr = np.asarray(img)
    raw = _RAW_INT.match(rawmode)
    if img.mode == "F":
        top = 1.0
    elif img.mode.startswith("I;16") or fmt == "PPM" or (raw and raw.groups() == ("16", "")):
        top = 65535.0
    elif raw and raw[1] == "16":
        top = 32767.0
    elif raw and raw[1] == "32" and not raw[2]:
        arr, top = arr.view(np.uint32), 2.0 ** 32 - 1
    else:
        top = 2.0 ** 31 - 1
    return arr.astype(np.float64) / top


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    if not np.isfinite(unit).all():
        raise ImageReadError("image has NaN or infinite pixel values")
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _frame(img) -> tuple[np.ndarray, np.ndarray | None]:
    """The current frame as (rgb uint8 HxWx3, alpha uint8 HxW or None)."""
    rawmode, fmt = _rawmode(img), img.format  # the transposed copy has neither
    img = ImageOps.exif_transpose(img)
    img.load()
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        grey = _to_uint8(_unit(img, rawmode, fmt))
        return np.repeat(grey[..., None], 3, axis=2), None
    alpha = np.asarray(img.getchannel("A")) if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") else None
    rgb = np.asarray(img.convert("RGB"))
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise ImageReadError("empty image")
    return np.ascontiguousarray(rgb), alpha


@contextlib.contextmanager
def _opened(path):
    """The open picture; anything that goes wrong reading it is an ImageReadError."""
    why = problem(path, "picture")
    if why is not None:
        raise ImageReadError(f"{path}: {why}")
    try:
        with Image.open(path) as img:
            yield img
    except Image.DecompressionBombError as exc:  # Pillow's own refusal, above twice its limit
        _check_size(int(re.search(r"\((\d+) pixels\)", str(exc)).group(1)))
        raise
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"cannot read image ({exc.__class__.__name__}: {exc})") from None


def read_image(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Returns (rgb uint8 HxWx3, alpha uint8 HxW or None) of the first frame."""
    with _opened(path) as img:
        _check_size(img.width * img.height)
        return _frame(img)


def read_frames(path):
    """Yields (rgb, alpha, info) for every frame: one for a still picture, each frame of an
    animation or page of a TIFF. info holds the frame's "duration" (ms) and the "loop"
    count where the format has them."""
    with _opened(path) as img:
        count = 1 if img.format in STILL_FORMATS else getattr(img, "n_frames", 1)
        total = 0
        for index in range(count):
            img.seek(index)
            _check_size(img.width * img.height)
            total += img.width * img.height
            _check_size(total, ANIMATION_PIXELS, f"animation ({count} frames)")
            rgb, alpha = _frame(img)
            yield rgb, alpha, {k: img.info[k] for k in ("duration", "loop") if k in img.info}


def _writer(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot write {path.suffix or 'extension-less'} images")
    return fmt


def _pil(path: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    img = Image.fromarray(rgb)
    if alpha is not None and path.suffix.lower() in ALPHA_EXTS:
        img.putalpha(Image.fromarray(alpha))
    return img


def _save(path: Path, images: list, **options):
    fmt = _writer(path)
    if len(images) > 1:
        if fmt not in ANIMATED_FORMATS:
            raise UserError(f"{len(images)} frames cannot be written as {path.suffix} (GIF, PNG, WebP and TIFF hold "
                            "frames); give the input its format's extension")
        options |= {"save_all": True, "append_images": images[1:]}
    if path.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        options["quality"] = 95
    with atomic_path(path) as tmp:
        images[0].save(tmp, format=fmt, **options)


def write_image(path, rgb: np.ndarray, alpha: np.ndarray | None = None):
    path = Path(path)
    _save(path, [_pil(path, rgb, alpha)])


def _timing(path: Path, frames: list) -> dict:
    infos = [info for _, _, info in frames]
    options = {"loop": infos[0]["loop"]} if "loop" in infos[0] else {}
    if all("duration" in info for info in infos):
        options["duration"] = [info["duration"] for info in infos]
    if path.suffix.lower() == ".gif" and any(alpha is not None for _, alpha, _ in frames):
        options["disposal"] = 2  # clear each frame before the next, or its transparent parts show the last
    return options


def write_frames(path, frames: list):
    """Writes (rgb, alpha, info) frames as read_frames gives them: one as a still picture,
    several as an animation (or pages) in the path's format, durations and loop kept."""
    path = Path(path)
    images = [_pil(path, rgb, alpha) for rgb, alpha, _ in frames]
    _save(path, images, **(_timing(path, frames) if len(frames) > 1 else {}))


def list_images(folder) -> list[Path]:
    """Files with an image extension under `folder` (links and special files included:
    reading them says what they are)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_EXTS and not is_temporary(p.name) and not p.is_dir())
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files


def image_format(path) -> str | None:
    """The picture format the file's content says (PNG, JPEG, ...), read from its header
    only; None if it is not a picture Pillow knows or not a regular file. The name's
    extension is not trusted."""
    if problem(path) is not None:
        return None
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
