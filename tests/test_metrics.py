import cv2
import numpy as np

from generator.metrics import flicker_ratio, pan_zoom_frames, structure_correlation, temporal_ratio


def _picture(side=512, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (16, 16, 3)).astype(np.float32)
    return cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _contrast(k):
    return lambda rgb: (128 + k * (rgb.astype(np.float32) - 128)).clip(0, 255).astype(np.uint8)


def _noisy(seed=0):
    rng = np.random.default_rng(seed)
    return lambda rgb: (rgb + rng.normal(0, 12, rgb.shape)).clip(0, 255).astype(np.uint8)


def test_structure_correlation_keeps_layout_not_brightness():
    img = _picture(256)
    assert structure_correlation(img, _contrast(0.5)(img)) > 0.99
    assert structure_correlation(img, img[:, ::-1]) < 0.9


def test_temporal_ratio_counts_all_change_flicker_only_unexplained_change():
    img = _picture()
    frames = pan_zoom_frames(img)
    assert abs(temporal_ratio(lambda x: x, frames) - 1) < 1e-9
    sharper = _contrast(1.8)
    # more contrast moving with the camera: more frame-to-frame change, but no more flicker
    assert temporal_ratio(sharper, frames) > 1.3
    assert flicker_ratio(sharper, img) < 2.0 * flicker_ratio(lambda x: x, img) + 0.05
    noisy = _noisy()  # changes that no camera move explains
    assert flicker_ratio(noisy, img) > 3 * flicker_ratio(sharper, img)
