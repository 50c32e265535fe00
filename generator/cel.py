"""The clean cel target (issue 32): the photo itself, made clean, for a small network to learn.

Everything is built from what the photo shows, with local operations a network of ~100 px
receptive field can approximate:

- fill: the photo smoothed by bilateral filters (edge-preserving), its CIELAB lightness
  rounded to soft steps, hue and chroma kept;
- lines: Canny edges of the smoothed photo (thin, connected by hysteresis), strokes shorter
  than SPECK px dropped, thickened to about 2 px at 256 px, a dark warm brown.

The face models (generator/faces.py, through generator/semantic.py's regions) only add what
regions allow: skin in two tones (lit and shadow around its own median lightness, soft
boundary), hair as flat masses in its own hue with a highlight band, stricter edge gates
in skin, hair and background (no lines in skin shading or hair strands), the upper lash
line and the brows thickened where the photo shows an open eye and a brow.

`cel_target(rgb, finder=None)` -> (target uint8 HxWx3, line_mask bool HxW).
"""
import cv2
import numpy as np

from runtimes.errors import UserError

from .faces import FaceFinder
from .semantic import BROWS, UPPER_LIDS, EYES, Parts, _segment

SIDE = 256  # pixel sizes below are at this side and scale with the picture's
SPECK = 8  # strokes shorter than this are dropped
INK = np.array([62, 40, 32], np.uint8)  # a dark warm brown, not black
# Canny hysteresis thresholds (Sobel magnitude of the smoothed uint8 photo) per region:
# a slope of 1 level per px scores 8, so skin shading stays far below them
SHADOW_GAP = 8.0  # skin darker than its median by this much L* is in shadow...
HIGHLIGHT_GAP = 20.0  # ...and shine this much brighter keeps its lightness
GATES = {"rest": (50, 110), "skin": (90, 220), "hair": (120, 260), "background": (70, 160)}



def _check(rgb):
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
        raise UserError("the cel target needs a uint8 RGB picture (H x W x 3)")
    if min(rgb.shape[:2]) < 8:
        raise UserError(f"the cel target needs a picture of at least 8 x 8 px, not {rgb.shape[1]} x {rgb.shape[0]}")


def _odd(x: float) -> int:
    return max(3, int(round(x)) | 1)


def smooth(rgb: np.ndarray, passes: int = 3) -> np.ndarray:
    """Edge-preserving smoothing: bilateral passes, their window scaled with the picture."""
    s = max(rgb.shape[:2]) / SIDE
    for _ in range(passes):
        rgb = cv2.bilateralFilter(rgb, _odd(9 * s), 40, 5 * s)
    return rgb


def _smoothstep(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def soft_round(x: np.ndarray, step: float, width: float = 0.15) -> np.ndarray:
    """x rounded to multiples of `step`, each jump a smooth ramp `width` steps wide."""
    n = np.floor(x / step)
    frac = x / step - n
    return step * (n + _smoothstep((frac - 0.5 + width / 2) / width))


def two_tone(light: np.ndarray, mask: np.ndarray, gap: float = SHADOW_GAP, soft: float = 2.0) -> np.ndarray:
    """Lit and shadow tones of `mask` from its smoothed lightness `light`: shadow is what lies
    `gap` L* below the region's median, each tone the median lightness of its own pixels (the
    photo's light), with a ramp `soft` L* wide between them. Shine far above the median
    (HIGHLIGHT_GAP) keeps its own lightness."""
    median = np.median(light[mask])
    cut = median - gap
    shadow = mask & (light < cut)
    lit = np.median(light[mask & ~shadow])
    if shadow.sum() < 0.03 * mask.sum():
        tones = np.full(light.shape, lit, np.float32)
    else:
        dark = np.median(light[shadow])
        tones = dark + (lit - dark) * _smoothstep((light - cut) / (2 * soft) + 0.5)
    shine = _smoothstep((light - median - HIGHLIGHT_GAP) / (2 * soft) + 0.5)
    return tones + (light - tones) * shine


def _masked_blur(x, mask, sigma):
    """Gaussian mean of x (H x W or H x W x C) over the mask's pixels only (nothing bleeds in
    from outside it)."""
    w = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    blurred = cv2.GaussianBlur(np.where(mask.reshape(mask.shape + (1,) * (x.ndim - 2)), x, 0), (0, 0), sigma)
    return blurred / np.maximum(w, 1e-6).reshape(w.shape + (1,) * (x.ndim - 2))


def _fill(base_lab: np.ndarray, parts: Parts | None, s: float) -> np.ndarray:
    """The smoothed photo; with regions, skin and hair in flat tones of their own colour."""
    out = base_lab.copy()
    if parts is None:
        return out
    for mask, hue_sigma in ((parts.skin, 8), (parts.hair, 4)):
        if mask.sum() < 16:
            continue
        light = _masked_blur(base_lab[..., 0], mask, 4 * s)  # tone boundaries as smooth curves
        tones = two_tone(light, mask)
        if mask is parts.hair:
            band = np.percentile(light[mask], 88)
            tones += 8 * _smoothstep((light - band) / 4 + 0.5)  # the highlight band
        out[mask, 0] = tones[mask]
        out[mask, 1:] = _masked_blur(base_lab[..., 1:], mask, hue_sigma * s)[mask]
    return out


def _canny(grey_or_rgb, gate):
    return cv2.Canny(grey_or_rgb, *gate, L2gradient=True) > 0


def _drop_specks(lines: np.ndarray, limit: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(lines.astype(np.uint8), connectivity=8)
    keep = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= limit
    keep[0] = False
    return keep[labels]


def _lines(base: np.ndarray, parts: Parts | None, s: float) -> np.ndarray:
    lines = _canny(base, GATES["rest"])
    if parts is not None:
        background = ~parts.person & ~(parts.face if parts.face is not None else False)
        for name, mask in (("skin", parts.skin), ("hair", parts.hair), ("background", background)):
            if mask is not None and mask.any():
                lines = np.where(mask, _canny(base, GATES[name]), lines)
    return _drop_specks(lines, max(2, round(SPECK * s)))


def _thicken(lines, px):
    return cv2.dilate(lines.astype(np.uint8), np.ones((px, px), np.uint8)).astype(bool) if px > 1 else lines


def _eye_open(light, eye) -> bool:
    """An eye the photo shows: a bright sclera and a dark iris inside the lids (not behind
    sunglasses, not closed)."""
    if eye.sum() < 6:
        return False
    lo, hi = np.percentile(light[eye], [5, 95])
    return hi - lo > 25


def _accents(lines, base_lab, parts, face, s):
    """Thicker upper lash lines where the eye is visible, and brows made solid where the photo
    darkens them: only lines and pixels the photo already shows."""
    light = base_lab[..., 0]
    p = face.points
    for lid, eye_idx, eye in zip(UPPER_LIDS, EYES, parts.eyes):
        if not _eye_open(light, eye):
            continue
        band = np.zeros(lines.shape, np.uint8)
        width = np.linalg.norm(p[eye_idx[0]] - p[eye_idx[8]])
        cv2.polylines(band, [np.round(p[lid]).astype(np.int32)], False, 1, max(2, round(width / 5)))
        lines |= _thicken(lines & band.astype(bool), max(2, round(3 * s))) & cv2.dilate(band, np.ones((3, 3))).astype(bool)
    if parts.skin.any():
        skin_light = np.median(light[parts.skin])
        for brow in parts.brows:
            dark = brow & (light < skin_light - 12)
            if dark.sum() > 4:
                base_lab[dark] = base_lab[dark].mean(0) * [0.8, 1, 1]
    return lines


def cel_target(rgb: np.ndarray, finder: FaceFinder | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The clean cel target of a uint8 RGB photo and its line mask (see the module's doc)."""
    _check(rgb)
    s = max(rgb.shape[:2]) / SIDE
    face = finder.find(rgb) if finder is not None else None
    parts = _segment(rgb, face) if face is not None else None
    base = smooth(rgb)
    lab = cv2.cvtColor(base.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    fill_lab = _fill(lab, parts, s)
    lines = _lines(base, parts, s)
    if face is not None:
        lines = _accents(lines, fill_lab, parts, face, s)
    lines = _thicken(lines, max(1, round(1.5 * s)))
    fill = (cv2.cvtColor(fill_lab, cv2.COLOR_LAB2RGB).clip(0, 1) * 255).round().astype(np.uint8)
    fill[lines] = INK
    return fill, lines
