import cv2
import numpy as np

from generator.metrics import (flicker_ratio, pan_zoom_frames, structure_correlation, temporal_ratio,
                               temporal_reference)


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


def _outlined(img):
    """Posterized with black outlines: a cartoon of img."""
    flat = (img // 64 * 64 + 32).astype(np.uint8)
    edges = cv2.Canny(flat, 50, 150) > 0
    flat[edges] = 0
    return flat


def test_temporal_reference_is_the_ratio_of_outputs_that_move_like_the_targets():
    photos = [_picture(seed=s) for s in range(3)]
    assert abs(temporal_reference(photos, photos).mean() - 1) < 1e-9
    cartoons = [_outlined(p) for p in photos]
    assert temporal_reference(cartoons, photos).min() > 1.3
    assert temporal_reference([cv2.GaussianBlur(p, (0, 0), 4) for p in photos], photos).max() < 1
    # a stylizer whose outputs are the cartoon filmed by the same camera move scores it exactly
    frames, drawn = pan_zoom_frames(photos[0]), pan_zoom_frames(cartoons[0])
    lookup = {f.tobytes(): d for f, d in zip(frames, drawn)}
    assert abs(temporal_ratio(lambda f: lookup[f.tobytes()], frames)
               - temporal_reference(cartoons[:1], photos[:1])[0]) < 1e-9
