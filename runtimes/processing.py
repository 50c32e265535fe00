"""Pre- and post-processing shared by every backend (numpy + OpenCV, no torch)."""
import os

import cv2
import numpy as np

from .errors import UserError
from .formats import RESOLUTION_RANGE

DEFAULT_MAX_SIDE = 1024  # the default resolution: the input's longer side, capped here
MIN_SIDE = 16  # frames are padded to at least this: the graph's reflect pads (up to 11 px) need more
MAX_THREADS_PER_CPU = 4  # past this a run only slows down; 100000 crashes LiteRT, 5000 stalls ONNX Runtime


def is_integer(value) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_resolution(resolution) -> int | None:
    """None (the input's own size) or an integer within what an artifact may declare."""
    low, high = RESOLUTION_RANGE
    if resolution is not None and not (is_integer(resolution) and low <= resolution <= high):
        raise UserError(f"resolution must be an integer from {low} to {high} px, got {resolution!r}")
    return None if resolution is None else int(resolution)


def check_threads(threads) -> int | None:
    """None (the runtime's default) or an integer from 1 to MAX_THREADS_PER_CPU x the CPU count."""
    high = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
    if threads is not None and not (is_integer(threads) and 1 <= threads <= high):
        raise UserError(f"threads must be an integer from 1 to {high} ({MAX_THREADS_PER_CPU} per CPU here), "
                        f"got {threads!r}")
    return None if threads is None else int(threads)


def processing_size(h: int, w: int, resolution: int | None) -> tuple[int, int]:
    """(height, width) the network sees: the longer side becomes `resolution` (default: the
    input's longer side capped at DEFAULT_MAX_SIDE), aspect kept."""
    longer = max(h, w)
    target = resolution or min(longer, DEFAULT_MAX_SIDE)
    if target == longer:
        return h, w
    scale = target / longer
    return max(1, round(h * scale)), max(1, round(w * scale))


def check_frame(rgb) -> None:
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"frame must be a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"frame must be uint8 RGB HxWx3, got {rgb.dtype} {rgb.shape}")


def resize(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    if rgb.shape[:2] == (h, w):
        return rgb
    shrink = h * w < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def to_nhwc(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 1xHxWx3 in [-1, 1]."""
    x = rgb[None].astype(np.float32)
    x *= 1 / 127.5
    x -= 1.0
    return x


def from_nhwc(x: np.ndarray) -> np.ndarray:
    """float 1xHxWx3 in [-1, 1] -> uint8 HxWx3, rounded."""
    y = x[0] * 127.5
    y += 128.0  # (x + 1) * 127.5, plus 0.5 to round
    return np.clip(y, 0, 255, out=y).astype(np.uint8)


def to_nchw(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 1x3xHxW in [-1, 1] (made contiguous while still 1 byte/value)."""
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]).astype(np.float32)
    x *= 1 / 127.5
    x -= 1.0
    return x


def from_nchw(x: np.ndarray) -> np.ndarray:
    """float 1x3xHxW in [-1, 1] -> uint8 HxWx3, rounded."""
    return from_nhwc(x.transpose(0, 2, 3, 1))
