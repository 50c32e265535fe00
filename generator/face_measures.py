"""Whether a stylized face still reads as the person's face, measured in zones of the face mesh
(generator/faces.py) against the photo:

- eyes (the contour of each eye the photo shows open): the correlation of the picture's L*
  with the photo's, and the number of near-black pixels (L* < NEAR_BLACK) against the photo's;
- folds (cheeks, under the eyes, nose to mouth corners; skin only, not a glasses frame or a
  hand's phone over it): the share of ink pixels there;
- upper lip (under the nose, above the lip; faces whose photo has no dark hair there): the
  share of ink pixels;
- teeth (light pixels inside the lips of an open smile): whether they stay light.

A pixel is ink where its L* is at least halfway from the photo's local L* (blurred) to the
ink's, and only where the photo is over VISIBLE L* lighter than the ink there (a glasses frame
or a moustache is dark in the photo already: darkness there is kept, not drawn).

`zones(photo, points)` finds the zones from the mesh's 468 points (in the photo's pixels, so
the points of a portrait placed small in a frame are the portrait's, moved); `measure(photo,
picture, zones)` gives one picture's counts and `summarize` the set's figures.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from .semantic import CHEEKS, EYES, LIPS

NEAR_BLACK = 25.0
VISIBLE = 15.0
INK_LIGHT = 18.0  # L* of cel.INK (62, 40, 32)
EYE_CONTRAST = 25.0  # L* spread (5th to 95th percentile) inside the lids of an eye the photo shows open
MIN_EYE_PX = 8
UNLIKE_LIGHT, UNLIKE_COLOUR = 35.0, 16.0  # L* and a*b* distances from the skin's colour: not skin beyond
TEETH_LIGHT, TEETH_CHROMA, MIN_TEETH_PX = 55.0, 28.0, 6
TEETH_KEPT = 15.0  # L* within which the picture's teeth match the photo's
MOUSTACHE_DEPTH, MOUSTACHE_SHARE = 30.0, 0.15  # a photo this much darker than the skin over this share has hair there
MOUTH_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
NOSE_TIP, NOSE_WINGS, MOUTH_CORNERS, UPPER_LIP_TOP = 2, (98, 327), (61, 291), 0
FOREHEAD, CHIN, FACE_SIDES = 10, 152, (234, 454)


@dataclass
class Zones:
    eyes: list  # a mask per eye the photo shows open
    folds: np.ndarray
    upper_lip: np.ndarray
    teeth: np.ndarray
    moustache: bool  # the photo has dark hair on the upper lip: its ink is not scored


def polygon(shape, pts) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(pts) * 16).astype(np.int32)], 1, shift=4)
    return m.astype(bool)


def lightness(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[..., 0]


def _unit(v):
    return v / max(np.linalg.norm(v), 1e-6)


def eye_width(points) -> float:
    return float(np.mean([np.linalg.norm(points[e[0]] - points[e[8]]) for e in EYES]))


def eye_is_open(light: np.ndarray, eye: np.ndarray, skin_light: float) -> bool:
    """An eye the photo shows: a bright sclera beside a dark iris inside the lids (not behind
    sunglasses, not shut)."""
    if eye.sum() < MIN_EYE_PX:
        return False
    lo, hi = np.percentile(light[eye], [5, 95])
    return hi - lo > EYE_CONTRAST and hi > skin_light - 15


def fold_zones(shape, p) -> np.ndarray:
    """Cheeks, a band under each eye, and a band beside each nose-to-mouth-corner line."""
    down = _unit(p[CHIN] - p[FOREHEAD])
    face = np.linalg.norm(p[FACE_SIDES[0]] - p[FACE_SIDES[1]])
    w = eye_width(p)
    folds = polygon(shape, p[CHEEKS[0]]) | polygon(shape, p[CHEEKS[1]])
    for eye in EYES:
        lid = p[eye[:9]]
        folds |= polygon(shape, np.concatenate([lid + down * 0.15 * w, (lid + down * 0.55 * w)[::-1]]))
    for wing, corner in zip(NOSE_WINGS, MOUTH_CORNERS):
        out = _unit(p[wing] - p[NOSE_TIP]) * face
        folds |= polygon(shape, [p[wing] + out * 0.03, p[wing] + out * 0.16, p[corner] + out * 0.12 + down * 0.04 * face,
                                 p[corner] + out * 0.03])
    return folds & ~polygon(shape, p[LIPS])


def upper_lip_zone(shape, p) -> np.ndarray:
    """The skin between the nose and the upper lip (the middle of it: the nostrils' and the
    lip's own outlines are not in it), as wide as the nose's wings."""
    drop = p[UPPER_LIP_TOP] - p[NOSE_TIP]
    return polygon(shape, [p[w] + drop * f for f in (0.3, 0.7) for w in (NOSE_WINGS if f == 0.3 else NOSE_WINGS[::-1])])


def nose_zone(shape, p) -> np.ndarray:
    """The nose's sides and bottom: from the inner eye corners down to its wings."""
    face = np.linalg.norm(p[FACE_SIDES[0]] - p[FACE_SIDES[1]])
    wings = [p[w] + _unit(p[w] - p[NOSE_TIP]) * 0.04 * face for w in NOSE_WINGS]
    return polygon(shape, [p[EYES[0][8]], wings[0], p[NOSE_TIP], wings[1], p[EYES[1][8]]])


def unlike_skin(lab: np.ndarray, skin: np.ndarray, px: int) -> np.ndarray:
    """What lies on the skin but is not skin (a glasses frame, a phone, a strand of hair): a
    colour off the skin's `skin` (CIELAB) in hue and chroma, or in lightness by more than any
    shading, widened by `px`."""
    unlike = ((np.abs(lab[..., 0] - skin[0]) > UNLIKE_LIGHT)
              | (np.linalg.norm(lab[..., 1:] - skin[1:], axis=-1) > UNLIKE_COLOUR)).astype(np.uint8)
    return cv2.dilate(unlike, np.ones((px, px), np.uint8)).astype(bool) if px > 1 else unlike.astype(bool)


def zones(photo: np.ndarray, points: np.ndarray) -> Zones:
    """The measured zones of a photo whose face mesh is `points` (pixels of `photo`)."""
    shape, p = photo.shape, np.asarray(points, np.float64)
    lab = cv2.cvtColor(photo.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    light = lab[..., 0]
    cheeks = polygon(shape, p[CHEEKS[0]]) | polygon(shape, p[CHEEKS[1]])
    skin = np.median(lab[cheeks], axis=0) if cheeks.any() else np.median(lab.reshape(-1, 3), axis=0)
    skin_light = float(skin[0])
    eyes = [m for m in (polygon(shape, p[e]) for e in EYES) if eye_is_open(light, m, skin_light)]
    folds = fold_zones(shape, p) & ~unlike_skin(cv2.GaussianBlur(lab, (0, 0), 1.0), skin, 3)
    teeth = (polygon(shape, p[MOUTH_INNER]) & (lab[..., 0] > TEETH_LIGHT)
             & (np.hypot(lab[..., 1], lab[..., 2]) < TEETH_CHROMA))
    lip = upper_lip_zone(shape, p)
    moustache = bool(lip.any() and np.mean(light[lip] < skin_light - MOUSTACHE_DEPTH) > MOUSTACHE_SHARE)
    return Zones(eyes, folds, lip, teeth if teeth.sum() >= MIN_TEETH_PX else np.zeros_like(teeth), moustache)


def inked(photo: np.ndarray, picture: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Where the picture is ink against the photo (see the module's doc)."""
    ref = cv2.GaussianBlur(lightness(photo), (0, 0), sigma)
    return (lightness(picture) < (ref + INK_LIGHT) / 2) & (ref - INK_LIGHT > VISIBLE)


def measure(photo: np.ndarray, picture: np.ndarray, z: Zones, ink: np.ndarray | None = None) -> dict:
    """One picture's counts; `ink` replaces the picture's ink mask (a target's own line mask)."""
    a, b = lightness(photo), lightness(picture)
    ink = inked(photo, picture) if ink is None else ink
    # a flat eye in the picture has lost it all (correlation 0)
    eyes = [float(np.corrcoef(a[m], b[m])[0, 1]) if b[m].std() > 1e-3 else 0.0 for m in z.eyes if a[m].std() > 1]
    out = {"eye_corr": eyes,
           "eye_black": [int((b[m] < NEAR_BLACK).sum()) for m in z.eyes],
           "eye_black_photo": [int((a[m] < NEAR_BLACK).sum()) for m in z.eyes],
           "eye_px": [int(m.sum()) for m in z.eyes],
           "fold_ink": int((ink & z.folds).sum()), "fold_px": int(z.folds.sum())}
    if not z.moustache and z.upper_lip.sum() >= 4:
        out["lip_ink"] = float((ink & z.upper_lip).mean() / max(z.upper_lip.mean(), 1e-9))
    if z.teeth.any():
        out["teeth_kept"] = bool(abs(np.median(b[z.teeth]) - np.median(a[z.teeth])) <= TEETH_KEPT)
    return out


def summarize(rows: list[dict]) -> dict:
    """The set's figures: mean eye correlation, near-black pixels against the photo's (both
    counted over every eye, with one pixel of slack each so a photo without any is not a
    division by zero), ink share of the fold zones, the worst and the mean upper-lip share, the
    share of open smiles whose teeth stay light; and how many of each were scored."""
    corr = [c for r in rows for c in r["eye_corr"]]
    black = sum(sum(r["eye_black"]) for r in rows)
    black_photo = sum(sum(r["eye_black_photo"]) for r in rows)
    eyes = sum(len(r["eye_px"]) for r in rows)
    lips = [r["lip_ink"] for r in rows if "lip_ink" in r]
    teeth = [r["teeth_kept"] for r in rows if "teeth_kept" in r]
    nan = float("nan")
    return {"eyes": eyes, "eye_corr": float(np.mean(corr)) if corr else nan,
            "eye_black_ratio": (black + eyes) / (black_photo + eyes) if eyes else nan,
            "fold_ink": sum(r["fold_ink"] for r in rows) / max(sum(r["fold_px"] for r in rows), 1),
            "lips": len(lips), "lip_ink_mean": float(np.mean(lips)) if lips else nan,
            "lip_ink_clean": float(np.mean(np.array(lips) <= 0.02)) if lips else nan,
            "smiles": len(teeth), "teeth_kept": float(np.mean(teeth)) if teeth else nan}


def place_small(photo: np.ndarray, points: np.ndarray, face_px: float, frame: int = 256, then=None):
    """The portrait shrunk until its face is `face_px` wide and centred in a `frame` px square
    (its own surroundings mirrored around it): the face a phone's camera sees at arm's length
    or of a whole body. `then` (if given) is applied to the shrunk portrait before it is framed
    (a target made at that size). -> (frame picture, the mesh's points moved with it)."""
    scale = face_px / np.linalg.norm(points[FACE_SIDES[0]] - points[FACE_SIDES[1]])
    h, w = photo.shape[:2]
    size = (max(8, min(frame, round(w * scale))), max(8, min(frame, round(h * scale))))
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    small = small if then is None else then(small)
    top, left = (frame - size[1]) // 2, (frame - size[0]) // 2
    framed = cv2.copyMakeBorder(small, top, frame - size[1] - top, left, frame - size[0] - left, cv2.BORDER_REFLECT_101)
    moved = np.asarray(points) * [size[0] / w, size[1] / h] + [left, top]
    return framed, moved
