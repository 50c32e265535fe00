"""How close a picture is to its clean cel target (generator/cel.py): the line F-score and the
mean CIELAB delta-E per region, the two measures of "the network reaches the target".

- Lines: an output pixel is ink where its L* is at least halfway from the target's local
  fill (its L* blurred off its lines) to the ink's. Both masks count only where that fill is
  over VISIBLE L* lighter than the ink (a line on black hair is invisible in any picture).
  The F-score counts a pixel as found within TOLERANCE px.
- Regions (face models): skin, hair, clothes and background, the target's lines widened by
  1 px left out; the mean CIE76 delta-E to the target in each.
- Texture: the mean 1-px L* difference of the picture in skin and hair against the target's
  there. The target is flat; the photo keeps its skin texture and hair strands, so a picture
  that is the photo with lines drawn on it scores well above 1 here while its delta-E stays
  small.
"""
import cv2
import numpy as np

from . import cel

REGION_NAMES = ("skin", "hair", "clothes", "background")
TOLERANCE = 2  # px at 256 px
VISIBLE = 15.0  # L* between fill and ink for a line to count
MIN_REGION = 50  # px: a smaller region is not scored


def lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def inked(output, target, lines, ink=cel.INK) -> tuple[np.ndarray, np.ndarray]:
    """(the output's ink mask, where lines are visible)."""
    fill = cel.masked_blur(lab(target)[..., 0], ~lines, 3.0)
    ink_light = lab(np.asarray(ink, np.uint8).reshape(1, 1, 3))[0, 0, 0]
    visible = fill - ink_light > VISIBLE
    return (lab(output)[..., 0] < (fill + ink_light) / 2) & visible, visible


def line_fscore(pred, truth, tolerance=TOLERANCE) -> tuple[float, float, float]:
    """(F, precision, recall) of two line masks, a pixel counting as found within `tolerance` px."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1,) * 2)
    near = [cv2.dilate(m.astype(np.uint8), disc).astype(bool) for m in (truth, pred)]
    precision = (pred & near[0]).sum() / max(pred.sum(), 1)
    recall = (truth & near[1]).sum() / max(truth.sum(), 1)
    return float(2 * precision * recall / max(precision + recall, 1e-9)), float(precision), float(recall)


def region_masks(parts, lines) -> dict:
    off = ~cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    features = parts.lips | np.any(parts.eyes + parts.brows, axis=0)
    return {"skin": parts.skin & off, "hair": parts.hair & off,
            "clothes": parts.person & ~(parts.skin | parts.hair | parts.face | features) & off,
            "background": ~parts.person & ~parts.face & off}


def _texture(lightness: np.ndarray, region: np.ndarray) -> float:
    """The mean absolute 1-px L* difference, across and down, between pixels both in `region`."""
    steps = []
    for axis in (0, 1):
        both = np.logical_and(np.delete(region, 0, axis), np.delete(region, -1, axis))
        steps.append(np.abs(np.diff(lightness, axis=axis))[both])
    return float(np.concatenate(steps).mean())


class CelFit:
    """A photo's target, line mask and regions, made once; `score` rates an output of it."""

    def __init__(self, photo, finder, target=None, lines=None, ink=cel.INK):
        if target is None:
            target, lines = cel.cel_target(photo, finder)
        self.photo, self.target, self.lines, self.ink = photo, target, lines, ink
        _, parts = cel.find_regions(photo, finder)
        self.regions = region_masks(parts, lines) if parts is not None else None
        self.target_lab = lab(target)
        self.flat = self.regions["skin"] | self.regions["hair"] if self.regions is not None else None
        self.target_texture = _texture(self.target_lab[..., 0], self.flat) if self.flat is not None else None

    def score(self, output) -> dict:
        """{"f", "p", "r"} and the delta-E of each region large enough to score."""
        pred, visible = inked(output, self.target, self.lines, self.ink)
        f, p, r = line_fscore(pred, self.lines & visible)
        out = {"f": f, "p": p, "r": r}
        if self.regions is not None:
            output_lab = lab(output)
            diff = np.linalg.norm(output_lab - self.target_lab, axis=-1)
            out |= {k: float(diff[m].mean()) for k, m in self.regions.items() if m.sum() > MIN_REGION}
            if self.flat.sum() > MIN_REGION:
                out["texture"] = _texture(output_lab[..., 0], self.flat) / max(self.target_texture, 1e-6)
        return out


def mean_scores(scores: list[dict]) -> dict:
    """The mean of each figure over the pictures that have it (nan where none has)."""
    out = {}
    for k in ("f", "p", "r", *REGION_NAMES, "texture"):
        values = [s[k] for s in scores if k in s]
        out[k] = float(np.mean(values)) if values else float("nan")
    return out
