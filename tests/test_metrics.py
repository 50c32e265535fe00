import cv2
import numpy as np

from animeedge.compress.quality import blurred_psnr_uint8, delta_e_uint8, psnr_uint8
from animeedge.generator.metrics import (SKIN_GOALS, flicker_ratio, meets, pan_zoom_frames, skin_figures, structure_correlation,
                               temporal_ratio, temporal_reference)


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


def _skin_portraits():
    """Face crops whose centres hold skin tones from dark brown to pale (CIELAB), on a grey ground."""
    faces = []
    for lightness in (25, 35, 45, 55, 65, 75, 85):
        lab = np.full((64, 64, 3), (50, 0, 0), np.float32)
        lab[16:48, 16:48] = (lightness, 14, 18)
        faces.append((cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255).round().clip(0, 255).astype(np.uint8))
    return faces


def test_the_skin_measure_passes_identity_and_fails_a_whitening_filter():
    faces = _skin_portraits()
    same = skin_figures(faces, faces)
    assert all(meets(same[k], goal) for k, goal in SKIN_GOALS.items())
    whiten = [(0.4 * f + 0.6 * 255).round().astype(np.uint8) for f in faces]
    whitened = skin_figures(faces, whiten)
    assert not meets(whitened["chroma_ratio"], SKIN_GOALS["chroma_ratio"])
    flat_grey = [np.full_like(f, 200) for f in faces]  # everyone the same pale grey: no order, no colour
    grey = skin_figures(faces, flat_grey)
    assert not meets(grey["lightness_rank_corr"], SKIN_GOALS["lightness_rank_corr"])
    teal = [f[..., [1, 2, 0]] for f in faces]  # the channel swap turns brown skin teal
    assert not meets(skin_figures(faces, teal)["hue_change_deg"], SKIN_GOALS["hue_change_deg"])


def _line_art(side=256):
    img = np.zeros((side, side, 3), np.uint8)
    img[:] = (235, 150, 60)  # an orange suit
    img[:, side // 2:] = (240, 220, 200)
    for k in range(8, side, 24):
        cv2.line(img, (k, 0), (side - k, side), (20, 20, 20), 1)
    return img


def test_the_blurred_consistency_forgives_a_one_pixel_shift_but_not_a_colour_shift():
    art = _line_art()
    shifted = np.roll(art, 1, axis=1)
    assert psnr_uint8(shifted, art) < 25  # plain PSNR calls it a failure at every width
    assert blurred_psnr_uint8(shifted, art) >= 25 and delta_e_uint8(shifted, art) <= 5
    browned = (art.astype(np.float32) * [0.55, 0.45, 0.4]).astype(np.uint8)  # the orange suit turned brown
    assert delta_e_uint8(browned, art) > 5
