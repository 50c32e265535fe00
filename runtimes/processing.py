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
    """uint8 HxWx3 to h x w: INTER_CUBIC to enlarge; to shrink, INTER_AREA where the factors
    are whole numbers (OpenCV's fast path), else a box blur about as wide as the factor and
    INTER_LINEAR: 640x480 to 256x192 in 0.25 ms instead of INTER_AREA's 1.0 ms, a mean level
    from it and within 3 dB of its distance to a Lanczos resize (tests/test_frame_path.py)."""
    if rgb.shape[:2] == (h, w):
        return rgb
    fy, fx = rgb.shape[0] / h, rgb.shape[1] / w
    if fx * fy <= 1:
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
    if fx.is_integer() and fy.is_integer():
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    kx, ky = 2 * int(fx / 2) + 1, 2 * int(fy / 2) + 1  # odd, so the blur does not shift the picture
    if kx > 1 or ky > 1:
        rgb = cv2.blur(rgb, (kx, ky), borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)


def pad(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 HxWx3 padded at the bottom and right to h x w: reflected (without repeating the
    edge, numpy's "reflect"), or the edge repeated where a side is 1 pixel (nothing to reflect)."""
    ph, pw = rgb.shape[:2]
    if (ph, pw) == (h, w):
        return rgb
    mode = "reflect" if min(ph, pw) > 1 else "edge"
    if h - ph < ph and w - pw < pw:  # one reflection: OpenCV's border is numpy's pad, in one pass
        border = cv2.BORDER_REFLECT_101 if mode == "reflect" else cv2.BORDER_REPLICATE
        return cv2.copyMakeBorder(rgb, 0, h - ph, 0, w - pw, border)
    return np.pad(rgb, ((0, h - ph), (0, w - pw), (0, 0)), mode=mode)


def to_nhwc(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 1xHxWx3 in [-1, 1]."""
    x = rgb[None].astype(np.float32)
    x *= 1 / 127.5
    x -= 1.0
    return x


def to_nchw(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float32 1x3xHxW in [-1, 1] (made contiguous while still 1 byte/value)."""
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]).astype(np.float32)
    x *= 1 / 127.5
    x -= 1.0
    return x


def _to_uint8(plane: np.ndarray) -> np.ndarray:
    """float HxW or HxWx3 in [-1, 1] -> uint8: (x + 1) * 127.5 rounded to nearest, clipped to
    0..255, in one pass (OpenCV; NaN becomes 0). Rounding halves to even, where numpy's
    floor(x * 127.5 + 128) rounded them up: outputs differ by 1 level at exact halves only."""
    if plane.dtype not in (np.float32, np.float64):
        plane = plane.astype(np.float32)
    plane = np.ascontiguousarray(plane)
    return cv2.addWeighted(plane, 127.5, plane, 0.0, 127.5, dtype=cv2.CV_8U)


def from_nhwc(x: np.ndarray) -> np.ndarray:
    """float 1xHxWx3 in [-1, 1] -> uint8 HxWx3, rounded."""
    return _to_uint8(x[0])


def from_nchw(x: np.ndarray) -> np.ndarray:
    """float 1x3xHxW in [-1, 1] -> uint8 HxWx3, rounded (each plane converted, then
    interleaved: no float transpose)."""
    return cv2.merge([_to_uint8(plane) for plane in x[0]])


def byte_table(native) -> np.ndarray:
    """What to_nhwc and then native() (elementwise, e.g. a file's int8 quantization) make of
    each byte value 0..255: a frame's input is then one table look-up per byte, identical to
    computing it."""
    values = np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
    return np.ascontiguousarray(np.asarray(native(to_nhwc(values))).reshape(256))


def output_table(to_float) -> np.ndarray:
    """uint8 by the bit pattern of an int8 output value: to_float() (e.g. dequantization) and
    from_nhwc, per value; indexed by the byte, so that `y.view(np.uint8)` looks it up."""
    values = np.arange(256, dtype=np.uint8).view(np.int8).reshape(1, 1, 256, 1)
    return np.ascontiguousarray(from_nhwc(np.asarray(to_float(values), dtype=np.float32)).reshape(256))


def lookup(data: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[data] for 1-byte data (OpenCV's LUT where it takes the table's type)."""
    try:
        return cv2.LUT(data, table)
    except cv2.error:
        return table[data]


def lookup_nhwc(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> 1xHxWx3 of the table's type."""
    return lookup(rgb, table)[None]


def lookup_nchw(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> 1x3xHxW of the table's type (split into planes while still bytes)."""
    return np.stack([lookup(plane, table) for plane in cv2.split(rgb)])[None]


def output_nhwc(y: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int8 1xHxWx3 -> uint8 HxWx3 through output_table's table."""
    return lookup(np.ascontiguousarray(y[0]).view(np.uint8), table)


def output_nchw(y: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int8 1x3xHxW -> uint8 HxWx3 through output_table's table."""
    return cv2.merge([lookup(np.ascontiguousarray(plane).view(np.uint8), table) for plane in y[0]])
