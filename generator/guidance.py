"""Classical anime guidance: a pseudo-target for the tails, made from the photo alone.

AnimeGANv3 guides its support tail with classical filters instead of a pretrained network;
here the target is flat colour (repeated bilateral filtering), brightened with a gamma (anime
portraits are high-key: darkening anime images by 0.6 drops the project's anime classifier
from 0.9 to 0.26), times XDoG line art (Winnemoeller et al.'s thresholded difference of
Gaussians): blur alone (sigma 2) drops the classifier to 0.06, so crisp dark lines are what
anime images have and photos lack.

Three styles, parameters from small sweeps scored on development judges (README, "Towards a
default that reads as anime"):
- "sketch": fine XDoG lines of the raw photo, thickened to 2 px (the first guide);
- "bold": coarser, stronger XDoG lines of a twice-smoothed photo, so skin and hair texture
  make fewer strokes and outlines are thick and closed, like cel line art;
- "cel": bold lines on a fill brightened in CIELAB lightness only, its chroma raised 1.3x.
  The gamma on each RGB channel of the other two also greys colours (a dark brown skin tone
  keeps 0.85x of its chroma, and a model trained on it washed dark skin out to grey-white);
  this keeps hue, so skin stays brown; it reads as anime as often for the development judges
  (0.69 vs 0.70), less often for the held-out one (0.77 vs 0.86).
"""
import cv2
import numpy as np

K = 1.6  # XDoG: ratio of the two Gaussians
STYLES = {
    "sketch": {"line_smoothing": 0, "sigma": 0.8, "p": 20.0, "phi": 100.0, "thicken": 2, "gamma": 0.5, "tone": "rgb"},
    "bold": {"line_smoothing": 2, "sigma": 1.5, "p": 100.0, "phi": 100.0, "thicken": 1, "gamma": 0.5, "tone": "rgb"},
}
STYLES["cel"] = STYLES["bold"] | {"tone": "lab", "chroma": 1.3}
SEMANTIC = "semantic"  # not a filter: the face-model target of generator/semantic.py (training only)


def xdog(grey: np.ndarray, sigma: float = 0.8, p: float = 20.0, phi: float = 100.0) -> np.ndarray:
    """Line art in [0, 1] (0 = line) from a uint8 grey image."""
    g = grey.astype(np.float32) / 255
    dog = (1 + p) * cv2.GaussianBlur(g, (0, 0), sigma) - p * cv2.GaussianBlur(g, (0, 0), sigma * K)
    return np.where(dog >= 0, 1.0, 1 + np.tanh(phi * dog)).clip(0, 1).astype(np.float32)


def _smooth(rgb: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        rgb = cv2.bilateralFilter(rgb, 9, 50, 7)
    return rgb


def brighten(rgb: np.ndarray, gamma: float, tone: str = "rgb", chroma: float = 1.0) -> np.ndarray:
    """uint8 RGB -> float RGB in [0, 1], lifted by `gamma` on each channel ("rgb") or on CIELAB
    lightness with the chroma scaled by `chroma` ("lab")."""
    x = rgb.astype(np.float32) / 255
    if tone == "rgb":
        return x ** gamma
    lab = cv2.cvtColor(x, cv2.COLOR_RGB2LAB)
    lab[..., 0] = 100 * (lab[..., 0] / 100) ** gamma
    lab[..., 1:] *= chroma
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).clip(0, 1)


def anime_guide(rgb: np.ndarray, style: str | dict = "sketch") -> np.ndarray:
    """uint8 RGB photo -> uint8 RGB pseudo-anime target of the same size; `style` is a name
    in STYLES or a dict of parameters (missing ones from "sketch"); gamma 0 gives a white fill,
    line_strength (default 1) scales how dark the lines are."""
    s = STYLES[style] if isinstance(style, str) else STYLES["sketch"] | style
    bright = brighten(_smooth(rgb, 3), s["gamma"], s["tone"], s.get("chroma", 1.0))
    grey = cv2.cvtColor(_smooth(rgb, s["line_smoothing"]), cv2.COLOR_RGB2GRAY)
    lines = xdog(grey, s["sigma"], s["p"], s["phi"])
    if s["thicken"] > 1:
        lines = cv2.erode(lines, np.ones((s["thicken"],) * 2, np.uint8))
    lines = 1 - s.get("line_strength", 1.0) * (1 - lines)  # 0: no lines, the fill alone
    return (bright * lines[..., None] * 255).round().clip(0, 255).astype(np.uint8)


def cartoon_filter(rgb: np.ndarray) -> np.ndarray:
    """The classical cartoon filter the learned default must beat: four
    bilateral passes, SLIC region means, chroma x1.3, bold XDoG lines; no learning."""
    from skimage.segmentation import slic
    smooth = _smooth(rgb, 4)
    labels = slic(smooth, n_segments=smooth.shape[0] * smooth.shape[1] // 400, compactness=10, start_label=0)
    flat = np.zeros_like(smooth, np.float32)
    for k in np.unique(labels):
        flat[labels == k] = smooth[labels == k].mean(0)
    lab = cv2.cvtColor(flat / 255, cv2.COLOR_RGB2LAB)
    lab[..., 1:] *= 1.3
    fill = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).clip(0, 1)
    s = STYLES["bold"]
    lines = xdog(cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY), s["sigma"], s["p"], s["phi"])
    return (fill * lines[..., None] * 255).round().astype(np.uint8)
