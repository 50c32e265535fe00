"""The clean cel target: the photo itself, made clean, for a small network to learn.

Built from what the photo shows, with local operations a network of ~100 px receptive field
can approximate; nothing is drawn where the photo has no edge:

- fill: the photo smoothed by bilateral filters (edge-preserving), in its own colours;
- lines: Canny edges of that smoothed photo (thin, connected by hysteresis), gated by edge
  strength, strokes under SPECK px dropped, drawn about 2 px wide at 256 px in a dark warm
  brown.

The face models (generator/faces.py, through generator/semantic.py's regions) only add:
skin in two tones (lit and shadow, each the median lightness of its own pixels, a soft ramp
between), hair as flat masses in its own hue with a highlight band, stricter line gates in
skin, hair and the background (no lines in skin shading or hair strands), and solid brows
where the photo shows them. A pixel unlike its region's flat tone (a glasses frame, a beard,
teeth, an earring) keeps the photo's colour. The face is drawn as anime faces are: no lines on
the face's skin (inside its outline, and in generator/face_measures.py's fold, nose and upper
lip zones; a glasses frame, a phone or the nostrils there keep their lines), none
inside an open eye, whose sclera and iris keep the photo's tones under a 1-px upper lash line
(the photo's own lid edge; none on an eye under LASH_EYE px, where it would close the eye),
and 1-px lines inside the mouth, so teeth stay light.

`cel_target(rgb, finder=None)` -> (target uint8 HxWx3, line_mask bool HxW): the target is the
fill with INK on the mask, so it is also `fill * (1 - mask) + INK * mask`.
"""
import hashlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from animeedge.runtimes.errors import UserError

from .faces import Face, FaceFinder
from . import face_measures, semantic
from .semantic import UPPER_LIDS, Parts, _segment

SIDE = 256  # pixel sizes below are at this side and scale with the picture's
SPECK = 8  # strokes shorter than this are dropped
INK = np.array([62, 40, 32], np.uint8)  # a dark warm brown, not black (network.INK in [-1, 1])
# cached targets are valid for the code that made them only (semantic's key covers the face models;
# face_measures.py draws the face's zones)
CODE_KEY = hashlib.sha1(Path(__file__).read_bytes() + Path(face_measures.__file__).read_bytes()
                        + semantic.CODE_KEY.encode()).hexdigest()[:8]
# flat tones: blur (px at 256) of the lightness that places them and of hue and chroma; how
# far below its median (L*) a region is in shadow; a highlight band; the CIELAB distance from
# the flat tone at which a pixel starts and ends being kept as it is (hair strands vary more)
REGIONS = {"skin": {"tone_sigma": 4, "hue_sigma": 8, "gap": 8.0, "band": False, "keep": (12.0, 24.0)},
           "hair": {"tone_sigma": 8, "hue_sigma": 4, "gap": 12.0, "band": True, "keep": (30.0, 50.0)}}
# Canny hysteresis thresholds (Sobel magnitude of the smoothed uint8 photo) per region: a
# slope of 1 level per px scores 8, so smooth skin shading stays far below them
GATES = {"rest": (50, 110), "skin": (70, 180), "hair": (140, 300), "background": (70, 160)}
BROW_DEPTH = 12.0  # L* below the skin's median where a brow shows
OPEN_EYE = 0.15  # an eye whose contour's area is this share of its width squared is open (also a pale one)
FACE_EDGE = 0.12  # the face's outline keeps its lines this share of the face's width in
LASH_EYE = 12  # px: a narrower open eye gets no lash line (at app scale it would close the eye)


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


def two_tone(light: np.ndarray, mask: np.ndarray, gap: float, soft: float = 3.0) -> np.ndarray:
    """Lit and shadow tones of `mask` from its smoothed lightness `light`: shadow is what lies
    `gap` L* below the region's median, each tone the median lightness of its own pixels (the
    photo's light), with a ramp `soft` L* wide between them."""
    cut = np.median(light[mask]) - gap
    shadow = mask & (light < cut)
    lit = np.median(light[mask & ~shadow])
    if shadow.sum() < 0.03 * mask.sum():
        return np.full(light.shape, lit, np.float32)
    dark = np.median(light[shadow])
    return dark + (lit - dark) * _smoothstep((light - cut) / (2 * soft) + 0.5)


def masked_blur(x, mask, sigma):
    """Gaussian mean of x (H x W or H x W x C) over the mask's pixels only (nothing bleeds in
    from outside it)."""
    w = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    blurred = cv2.GaussianBlur(np.where(mask.reshape(mask.shape + (1,) * (x.ndim - 2)), x, 0), (0, 0), sigma)
    return blurred / np.maximum(w, 1e-6).reshape(w.shape + (1,) * (x.ndim - 2))


def _flat(base_lab, mask, s, tone_sigma, hue_sigma, gap, band, keep):
    """A region's flat tones: lightness in two tones (plus a highlight band, if `band`), hue and
    chroma blurred within the region; sigmas in px at 256 px. Pixels further than keep[1]
    from the region's median colour (a glasses frame on skin) do not shape its tones, so they
    leave no halo."""
    typical = mask & (np.linalg.norm(base_lab - np.median(base_lab[mask], axis=0), axis=-1) < keep[1])
    if typical.sum() < 16:
        typical = mask
    light = masked_blur(base_lab[..., 0], typical, tone_sigma * s)  # tone boundaries as smooth curves
    flat = np.empty_like(base_lab)
    flat[..., 0] = two_tone(light, typical, gap)
    if band:
        top = np.percentile(light[typical], 88)
        flat[..., 0] += 8 * _smoothstep((light - top) / 6 + 0.5)
    flat[..., 1:] = masked_blur(base_lab[..., 1:], typical, hue_sigma * s)
    return flat


def _regions(parts: Parts, s: float) -> Parts:
    """semantic.py's hair is one colour cluster: its highlights and darkest strands fall out of
    it (some into the skin). Closed here into one mass, inside the person, not over the face."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(12 * s),) * 2)
    closed = cv2.morphologyEx(parts.hair.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    hair = parts.hair | (closed & parts.person & ~parts.face)
    return replace(parts, hair=hair, skin=parts.skin & ~hair)


def find_regions(rgb: np.ndarray, finder: FaceFinder | None) -> tuple[Face | None, Parts | None]:
    """The face and the regions the target uses; (None, None) without a finder or a face."""
    face = finder.find(rgb) if finder is not None else None
    return (face, _regions(_segment(rgb, face), max(rgb.shape[:2]) / SIDE)) if face is not None else (None, None)


def _fill(base_lab: np.ndarray, parts: Parts | None, s: float) -> np.ndarray:
    """The smoothed photo; with regions, skin and hair in flat tones of their own colour. A
    pixel unlike its region's tone (a glasses frame, a beard, an earring, shine) keeps the
    photo's colour: only what is skin (or hair) is flattened."""
    out = base_lab.copy()
    if parts is None:
        return out
    for name, mask in (("skin", parts.skin), ("hair", parts.hair)):
        if mask.sum() < 16:
            continue
        flat = _flat(base_lab, mask, s, **REGIONS[name])
        near, far = REGIONS[name]["keep"]
        unlike = np.linalg.norm(base_lab - flat, axis=-1)
        weight = np.where(mask, _smoothstep((far - unlike) / (far - near)), 0)
        out += (flat - out) * weight[..., None]
    return out


def _canny(grey_or_rgb, gate):
    return cv2.Canny(grey_or_rgb, *gate, L2gradient=True) > 0


def _drop_specks(lines: np.ndarray, limit: int) -> np.ndarray:
    """Only the strokes (8-connected) at least `limit` px long (their box's longer side)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(lines.astype(np.uint8), connectivity=8)
    keep = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= limit
    keep[0] = False
    return keep[labels]


def _lines(base: np.ndarray, parts: Parts | None, s: float) -> np.ndarray:
    """Canny edges of the smoothed photo, gated per region, without specks (1 px wide)."""
    lines = _canny(base, GATES["rest"])
    if parts is not None:
        # the person's outline keeps the plain gate: the background starts a few px outside it
        background = ~_thicken(parts.person | (parts.face if parts.face is not None else False), _odd(4 * s))
        for name, mask in (("skin", parts.skin), ("hair", parts.hair), ("background", background)):
            if mask.any():
                lines = np.where(mask, _canny(base, GATES[name]), lines)
    return _drop_specks(lines, max(2, round(SPECK * s)))


def _thicken(lines, px):
    return cv2.dilate(lines.astype(np.uint8), np.ones((px, px), np.uint8)).astype(bool) if px > 1 else lines


def _face_lines(lines, base_lab, parts, face, s):
    """Anime face lines: none on the face's skin inside its outline (FACE_EDGE of its width in),
    in the fold zones (cheeks, under the eyes, nose to mouth), on the nose or the upper lip, or
    in and around an open eye, except where the photo shows something unlike skin (a glasses
    frame, a phone, a strand of hair, the nostrils); the brows, lips and shut eyes keep theirs. ->
    (lines, marks, quiet): the lines are drawn as ever, then cleared from the quiet zones; the
    marks are drawn 1 px wide: the photo's own upper lid edge above an open
    eye at least LASH_EYE px wide (a smaller eye keeps only its own tones), and the lines inside
    the mouth (teeth stay light)."""
    p, shape = face.points, lines.shape
    light = base_lab[..., 0]
    skin = np.median(base_lab[parts.skin], axis=0) if parts.skin.any() else np.median(base_lab.reshape(-1, 3), axis=0)
    skin_light = float(skin[0])
    face_px = np.linalg.norm(p[face_measures.FACE_SIDES[0]] - p[face_measures.FACE_SIDES[1]])
    inside = cv2.erode(parts.face.astype(np.uint8), np.ones((_odd(FACE_EDGE * face_px),) * 2, np.uint8)).astype(bool)
    quiet = (inside | face_measures.fold_zones(shape, p) | face_measures.nose_zone(shape, p)
             | face_measures.upper_lip_zone(shape, p))
    quiet &= ~_thicken(parts.lips | np.any(parts.eyes + parts.brows, axis=0), max(1, round(2 * s)) | 1)
    quiet &= ~face_measures.unlike_skin(base_lab, skin, max(1, round(3 * s)) | 1)
    marks = lines & _thicken(face_measures.polygon(shape, p[face_measures.MOUTH_INNER]), 3)
    for lid, eye in zip(UPPER_LIDS, parts.eyes):
        width = np.linalg.norm(p[lid[0]] - p[lid[-1]])
        if face_measures.eye_is_open(light, eye, skin_light) or eye.sum() > OPEN_EYE * width ** 2:
            if width >= LASH_EYE:
                band = np.zeros(shape, np.uint8)
                cv2.polylines(band, [np.round(p[lid]).astype(np.int32)], False, 1, max(2, round(width / 5)))
                marks |= lines & band.astype(bool) & ~eye  # on the lid, above the eye
            quiet |= _thicken(eye, _odd(2 * s))
    return lines & ~marks, marks, quiet


def _brows(fill_lab, base_lab, parts):
    """The brows made solid where the photo darkens them."""
    if not parts.skin.any():
        return
    light = base_lab[..., 0]
    skin_light = np.median(light[parts.skin])
    for brow in parts.brows:
        dark = brow & ~parts.hair & (light < skin_light - BROW_DEPTH)
        if dark.sum() > 4:
            solid = cv2.morphologyEx(dark.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
            fill_lab[solid] = base_lab[dark].mean(0) * [0.8, 1, 1]


def _ink(lines, parts, face, s):
    """The 1 px lines drawn about 2 px wide at 256 px; inside a small face (eyes under 15 px
    wide) 1 px, so the features do not merge into blots."""
    width = max(1, round(1.5 * s))
    wide = _thicken(lines, width)
    if face is None or parts.face is None:
        return wide
    narrow = _thicken(lines, int(np.clip(round(face_measures.eye_width(face.points) / 10), 1, width)))
    return np.where(parts.face, narrow, wide)


def features(parts: Parts | None, shape, s: float) -> np.ndarray:
    """The eyes, brows and lips (widened 2 px at 256 px): where a face is looked at."""
    if parts is None or parts.face is None:
        return np.zeros(shape[:2], bool)
    return _thicken(parts.lips | np.any(parts.eyes + parts.brows, axis=0), _odd(4 * s))


def cel_target(rgb: np.ndarray, finder: FaceFinder | None = None, regions=None) -> tuple[np.ndarray, np.ndarray]:
    """The clean cel target of a uint8 RGB photo and its line mask (see the module's doc);
    `regions` (find_regions' answer) spares finding them again."""
    _check(rgb)
    s = max(rgb.shape[:2]) / SIDE
    face, parts = find_regions(rgb, finder) if regions is None else regions
    base = smooth(rgb)
    base_lab = cv2.cvtColor(base.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    fill_lab = _fill(base_lab, parts, s)
    lines = _lines(base, parts, s)
    marks = quiet = np.zeros_like(lines)
    if face is not None:
        _brows(fill_lab, base_lab, parts)
        lines, marks, quiet = _face_lines(lines, base_lab, parts, face, s)
    lines = (_ink(lines, parts, face, s) & ~quiet) | marks
    target = (cv2.cvtColor(fill_lab, cv2.COLOR_LAB2RGB).clip(0, 1) * 255).round().astype(np.uint8)
    target[lines] = INK
    return target, lines
