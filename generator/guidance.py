"""Classical anime guidance: a pseudo-target for the support tail, made from the photo alone.

AnimeGANv3 guides its support tail with classical filters instead of a pretrained network;
here the target is flat colour (repeated bilateral filtering), brightened with a gamma (anime
portraits are high-key: darkening anime images by 0.6 drops the project's anime classifier
from 0.9 to 0.26), times XDoG line art (Winnemoeller et al.'s thresholded difference of
Gaussians), thickened to 2 px: blur alone (sigma 2) drops the classifier to 0.06, so crisp
dark lines are what anime images have and photos lack. Parameters from a small sweep (README,
"Towards a default that reads as anime").
"""
import cv2
import numpy as np

GAMMA = 0.5
SIGMA, K, P, PHI = 0.8, 1.6, 20.0, 100.0


def xdog(grey: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """Line art in [0, 1] (0 = line) from a uint8 grey image."""
    g = grey.astype(np.float32) / 255
    dog = (1 + P) * cv2.GaussianBlur(g, (0, 0), sigma) - P * cv2.GaussianBlur(g, (0, 0), sigma * K)
    return np.where(dog >= 0, 1.0, 1 + np.tanh(PHI * dog)).clip(0, 1).astype(np.float32)


def anime_guide(rgb: np.ndarray, smoothing: int = 3) -> np.ndarray:
    """uint8 RGB photo -> uint8 RGB pseudo-anime target of the same size."""
    flat = rgb
    for _ in range(smoothing):
        flat = cv2.bilateralFilter(flat, 9, 50, 7)
    bright = (flat.astype(np.float32) / 255) ** GAMMA
    lines = cv2.erode(xdog(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)), np.ones((2, 2), np.uint8))
    return (bright * lines[..., None] * 255).round().clip(0, 255).astype(np.uint8)
