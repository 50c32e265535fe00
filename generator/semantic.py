"""A semantic anime target: the photo redrawn from where its face parts, hair and person are
(generator/faces.py), not from its texture.

- Lines only at region boundaries: the person and hair outlines, the jaw, a heavy upper lash
  line, a short nose mark and the lip line. Nothing is drawn inside skin or hair texture.
- Skin in two tones (lit and shadow, a sharp boundary), each the mean CIELAB colour of the
  photo's own lit and shadowed skin, so hue and the person's lightness stay.
- Hair as three flat tones, the brightest lifted into a highlight band.
- Brows as solid shapes; irises darkened, with a catch-light; lips one flat colour.
- Clothes as flat colour-cluster means; the background smoothed and lightened.

`semantic_target(rgb, finder)` returns a uint8 picture the size of `rgb`, and the masks it
used (for tests and for the eye). A photo without a face gets the person/background part only.
`TargetStyle` holds the knobs the sweeps varied (line width, lifts, eye size, and line art of
the photo's texture, which the issue rules out on skin but the anime classifier rewards).
"""
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .faces import Face, FaceFinder
from .guidance import STYLES, _smooth, xdog

# MediaPipe face-mesh indices (the canonical 468-point topology)
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
JAW = FACE_OVAL[FACE_OVAL.index(454):FACE_OVAL.index(234) + 1]
EYES = ([33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246],
        [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466])
UPPER_LIDS = ([33, 246, 161, 160, 159, 158, 157, 173, 133], [263, 466, 388, 387, 386, 385, 384, 398, 362])
BROWS = ([70, 63, 105, 66, 107, 55, 65, 52, 53, 46], [300, 293, 334, 296, 336, 285, 295, 282, 283, 276])
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
MOUTH_LINE = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
NOSE_BOTTOM, NOSE_WING = 2, 98
CHEEKS = ([117, 118, 101, 36, 205, 187, 123], [346, 347, 330, 266, 425, 411, 352])
SKIN_DISTANCE = 18  # CIELAB distance from the cheeks' colour within which a cluster is skin
SHADOW_PERCENTILE = 25  # the darkest quarter of the skin is its shadow tone...
SHADOW_DEPTH = 0.7  # ...at 0.7 of its own depth below the lit tone, so it reads as shading

INK = np.array([40, 28, 32], np.float32)  # near-black, a little warm
TEXTURE_LINES = ("none", "hair", "outside_skin", "everywhere")
# the cached targets of a training run are valid for the code that made them only
CODE_KEY = hashlib.sha1(b"".join((Path(__file__).parent / f).read_bytes()
                                 for f in ("semantic.py", "faces.py", "guidance.py"))).hexdigest()[:8]


@dataclass(frozen=True)
class TargetStyle:
    """The target's knobs; the defaults are the target (experiments/semantic_sweep.py scores
    the others)."""
    line_scale: int = 128  # outlines are side / line_scale px wide (at least 1)
    lightness_gamma: float = 0.4  # < 1 lifts hair, clothes and background (anime portraits are high-key)
    skin_gamma: float = 0.8  # skin is lifted only a little: dark stays darker than light
    eye_scale: float = 1.0  # > 1 magnifies the eyes (anime proportions)
    texture_lines: str = "none"  # where the photo's texture gets line art too (the bold XDoG guide's)

    def __post_init__(self):
        if self.texture_lines not in TEXTURE_LINES:
            raise ValueError(f"texture_lines {self.texture_lines!r}; choose from {', '.join(TEXTURE_LINES)}")


@dataclass
class Parts:
    person: np.ndarray
    face: np.ndarray = None
    skin: np.ndarray = None
    hair: np.ndarray = None
    eyes: list = field(default_factory=list)
    brows: list = field(default_factory=list)
    lips: np.ndarray = None
    clusters: np.ndarray = None
    lines: np.ndarray = None  # where ink was drawn (for tests)


def _poly_mask(shape, pts) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m.astype(bool)


def _lab(rgb_float):
    return cv2.cvtColor(rgb_float, cv2.COLOR_RGB2LAB)


def _rgb(lab):
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB).clip(0, 1)


def _tones(lab, mask, cuts, smooth_sigma) -> np.ndarray:
    """Flat tones of `mask`: lightness (blurred, so tone boundaries are smooth curves) cut at
    the given percentiles; each tone is the mean CIELAB colour of its pixels. -> int map
    (-1 outside the mask) and the tones' colours."""
    light = cv2.GaussianBlur(lab[..., 0], (0, 0), smooth_sigma)
    levels = np.percentile(light[mask], cuts) if mask.any() else []
    tone = np.full(mask.shape, -1, np.int32)
    tone[mask] = np.digitize(light[mask], levels)
    fallback = lab[mask].mean(0) if mask.any() else np.zeros(3, np.float32)  # an empty mask paints nothing
    colours = [lab[tone == k].mean(0) if (tone == k).any() else fallback for k in range(len(cuts) + 1)]
    return tone, np.array(colours, np.float32)


def _paint(canvas_lab, tone, colours):
    for k, c in enumerate(colours):
        canvas_lab[tone == k] = c


def _clusters(lab, mask, k=5) -> np.ndarray:
    """k-means colour clusters of the masked pixels, cleaned by a median filter -> int map
    (-1 outside the mask)."""
    labels = np.full(mask.shape, -1, np.int32)
    if mask.sum() < k:
        return labels
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)
    _, lab_ids, _ = cv2.kmeans(lab[mask].astype(np.float32), k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    labels[mask] = lab_ids.ravel()
    cleaned = cv2.medianBlur((labels + 1).astype(np.uint8), 5).astype(np.int32) - 1
    return np.where(mask & (cleaned >= 0), cleaned, labels)


def _iris(grey, eye_mask, radius):
    """The darkest disc inside the eye: the iris centre."""
    dark = cv2.GaussianBlur(grey, (0, 0), max(1.0, radius / 2))
    inside = cv2.erode(eye_mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not inside.any():
        inside = eye_mask
    ys, xs = np.nonzero(inside)
    i = np.argmin(dark[ys, xs])
    return np.array([xs[i], ys[i]], np.float32)


def _segment(rgb, face: Face | None) -> Parts:
    """Face parts from the mesh; skin, hair and the rest of the person from colour clusters:
    skin is the face oval plus every cluster near the cheeks' colour (forehead, neck, ears),
    hair is the cluster that fills the band above the forehead."""
    h, w = rgb.shape[:2]
    person = face.person > 0.5 if face is not None else np.zeros((h, w), bool)
    parts = Parts(person=person, clusters=np.full((h, w), -1, np.int32))
    if face is None:
        return parts
    p = face.points
    parts.face = _poly_mask(rgb.shape, p[FACE_OVAL])
    parts.eyes = [_poly_mask(rgb.shape, p[e]) for e in EYES]
    parts.brows = [_poly_mask(rgb.shape, p[b]) for b in BROWS]
    parts.lips = _poly_mask(rgb.shape, p[LIPS])
    features = parts.lips | np.any(parts.eyes + parts.brows, axis=0)
    lab = _lab(_smooth(rgb, 2).astype(np.float32) / 255)
    cheeks = _poly_mask(rgb.shape, p[CHEEKS[0]]) | _poly_mask(rgb.shape, p[CHEEKS[1]])
    skin_ref = np.median(lab[cheeks if cheeks.any() else parts.face], axis=0)
    body = (person | parts.face) & ~features
    parts.clusters = _clusters(lab, body)
    ids = [k for k in range(parts.clusters.max() + 1) if (parts.clusters == k).any()]
    centres = {k: lab[parts.clusters == k].mean(0) for k in ids}
    skin_like = [k for k in ids if np.linalg.norm(centres[k] - skin_ref) < SKIN_DISTANCE]
    # the band above the forehead, as tall as a third of the face
    top, chin = p[10], p[152]
    band = _poly_mask(rgb.shape, [top + (top - chin) * 0.35 + [dx, 0] for dx in (-0.3, 0.3)]
                      + [top + [0.3 * (chin[1] - top[1]), 0], top - [0.3 * (chin[1] - top[1]), 0]]) & body
    band_ids = [k for k in parts.clusters[band] if k >= 0 and k not in skin_like]
    hair_id = np.bincount(band_ids).argmax() if band_ids else -1
    dark_fringe = parts.face & (lab[..., 0] < skin_ref[0] - 20) & (np.arange(h)[:, None] < p[BROWS[0] + BROWS[1], 1].min())
    parts.hair = ((parts.clusters == hair_id) & ~parts.face) | (dark_fringe & (parts.clusters == hair_id))
    parts.hair = cv2.morphologyEx(parts.hair.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)).astype(bool)
    parts.skin = ((parts.face & ~parts.hair) | (np.isin(parts.clusters, skin_like) & ~parts.hair)) & ~features
    return parts


def _fill(rgb, parts: Parts, face: Face | None) -> np.ndarray:
    side = max(rgb.shape[:2])
    base = _smooth(rgb, 3).astype(np.float32) / 255
    lab = _lab(base)
    out = lab.copy()
    # background: smoothed and lifted toward white, chroma lowered
    bg = ~parts.person
    soft = cv2.GaussianBlur(lab, (0, 0), side / 60)
    soft[..., 0] = 100 * (soft[..., 0] / 100) ** 0.6
    soft[..., 1:] *= 0.7
    out[bg] = soft[bg]
    if face is None:
        return out
    rest = parts.person & ~parts.skin & ~parts.hair
    for k in range(parts.clusters.max() + 1):  # clothes and the like: flat cluster colours
        region = rest & (parts.clusters == k)
        if region.any():
            out[region] = lab[region].mean(0)
    skin_tone, skin_colours = _tones(lab, parts.skin, [SHADOW_PERCENTILE], side / 30)
    skin_colours[0] = skin_colours[1] + SHADOW_DEPTH * (skin_colours[0] - skin_colours[1])
    skin_colours[:, 1:] *= 1.1
    _paint(out, skin_tone, skin_colours)
    hair_tone, hair_colours = _tones(lab, parts.hair, [40, 85], side / 80)
    hair_colours[-1, 0] = min(100.0, hair_colours[-1, 0] + 12)  # the highlight band
    _paint(out, hair_tone, hair_colours)
    if parts.lips.any():
        out[parts.lips] = lab[parts.lips].mean(0) * [1, 1.25, 1.25]
    return out


def _brows(out, lab, parts: Parts):
    """Solid brows, as dark as the photo's (`lab`; painted after the lift)."""
    for brow in parts.brows:
        if brow.any():
            out[brow] = lab[brow].mean(0) * [0.55, 1, 1]


def _eyes(out, rgb, lab, parts: Parts, face: Face):
    """Sclera near white; the iris (the darkest disc of the photo's grey) darkened from its own
    colour (`lab`, the photo's), with a catch-light."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    for eye, idx in zip(parts.eyes, EYES):
        if not eye.any():
            continue
        pts = face.points[idx]
        width = np.linalg.norm(pts[0] - pts[8])
        r = 0.22 * width
        centre = _iris(grey, eye, r)
        disc = np.zeros(eye.shape, np.uint8)
        cv2.circle(disc, tuple(np.round(centre).astype(int)), max(1, round(r)), 1, -1)
        iris = disc.astype(bool) & eye
        out[eye & ~iris] = [92, 0, 2]  # sclera
        if iris.any():
            out[iris] = lab[iris].mean(0) * [0.45, 1.3, 1.3]
        light = np.zeros(eye.shape, np.uint8)
        cv2.circle(light, tuple(np.round(centre - 0.35 * r).astype(int)), max(1, round(0.28 * r)), 1, -1)
        out[light.astype(bool) & eye] = [100, 0, 0]


def _ink(canvas, parts: Parts, face: Face | None, side: int, line_scale: int) -> np.ndarray:
    """Draws the outlines on the uint8 canvas; returns the mask of inked pixels."""
    t = max(1, round(side / line_scale))
    ink = np.zeros(canvas.shape[:2], np.uint8)

    def outline(mask):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        big = [c for c in contours if cv2.contourArea(c) > side * side / 400]
        cv2.drawContours(ink, big, -1, 255, t, cv2.LINE_AA)

    def stroke(pts, width, closed=False):
        cv2.polylines(ink, [np.round(pts).astype(np.int32)], closed, 255, width, cv2.LINE_AA)

    outline(cv2.morphologyEx(parts.person.astype(np.uint8), cv2.MORPH_OPEN, np.ones((7, 7), np.uint8)))
    if face is not None:
        p = face.points
        outline(parts.hair)
        clothes = parts.person & ~parts.skin & ~parts.hair & ~parts.face
        for k in range(parts.clusters.max() + 1):
            outline(clothes & (parts.clusters == k))
        stroke(p[JAW], t)
        eye_width = np.linalg.norm(p[33] - p[133])
        for lid, eye in zip(UPPER_LIDS, EYES):
            stroke(p[lid], max(2 * t, round(eye_width / 7)))
            stroke(p[eye[:9]], t)  # the lower lid
        stroke(p[MOUTH_LINE], t)
        nose = np.stack([p[NOSE_BOTTOM], 0.55 * p[NOSE_BOTTOM] + 0.45 * p[NOSE_WING]])
        stroke(nose, t)
    alpha = ink.astype(np.float32)[..., None] / 255
    canvas[:] = (canvas * (1 - alpha) + INK * alpha).round().astype(np.uint8)
    return ink > 127


def _texture_lines(canvas, rgb, parts: Parts, where: str) -> np.ndarray:
    """The bold guide's XDoG line art of the photo's texture, multiplied in where asked."""
    bold = STYLES["bold"]
    lines = xdog(cv2.cvtColor(_smooth(rgb, bold["line_smoothing"]), cv2.COLOR_RGB2GRAY), bold["sigma"], bold["p"],
                 bold["phi"])
    inside = {"hair": parts.hair, "outside_skin": ~(parts.skin | parts.face),
              "everywhere": np.ones(lines.shape, bool)}[where]
    return (canvas * np.where(inside, lines, 1.0)[..., None]).round().astype(np.uint8)


def semantic_target(rgb: np.ndarray, finder: FaceFinder, style: TargetStyle = TargetStyle()
                    ) -> tuple[np.ndarray, Parts]:
    face = finder.find(rgb)
    parts = _segment(rgb, face)
    out = _fill(rgb, parts, face)
    gamma = np.full(out.shape[:2], style.lightness_gamma, np.float32)
    if face is not None:
        gamma[parts.skin | parts.lips] = style.skin_gamma
    out[..., 0] = 100 * (out[..., 0] / 100) ** gamma
    if face is not None:
        photo = _lab(rgb.astype(np.float32) / 255)
        _brows(out, photo, parts)
        _eyes(out, rgb, photo, parts, face)
    canvas = (_rgb(out) * 255).round().astype(np.uint8)
    parts.lines = _ink(canvas, parts, face, max(rgb.shape[:2]), style.line_scale)
    if face is not None and style.texture_lines != "none":
        canvas = _texture_lines(canvas, rgb, parts, style.texture_lines)
    if face is not None and style.eye_scale != 1:
        canvas = enlarge_eyes(canvas, face, style.eye_scale)
    return canvas, parts


def enlarge_eyes(rgb: np.ndarray, face: Face, scale: float) -> np.ndarray:
    """Anime proportions: each eye magnified `scale` times at its centre, easing back to no
    change at 1.3 eye widths away."""
    h, w = rgb.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = xs.copy(), ys.copy()
    for eye in EYES:
        pts = face.points[eye]
        centre, radius = pts.mean(0).astype(np.float32), 1.3 * np.linalg.norm(pts[0] - pts[8])
        d = np.hypot(xs - centre[0], ys - centre[1]) / radius
        shrink = np.where(d < 1, 1 - (1 - 1 / scale) * (1 - np.minimum(d, 1) ** 2) ** 2, 1).astype(np.float32)
        map_x = centre[0] + (map_x - centre[0]) * shrink
        map_y = centre[1] + (map_y - centre[1]) * shrink
    return cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
