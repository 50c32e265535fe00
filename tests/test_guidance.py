import cv2
import numpy as np
import torch

from animeedge.generator import losses as L
from animeedge.generator.data import ImageStream
from animeedge.generator.guidance import STYLES, anime_guide, xdog


def _disc(size=64, value=60, background=170):
    img = np.full((size, size, 3), background, np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    img[inside] = value
    return img, inside


def test_guide_is_brighter_flat_colour_with_dark_outlines():
    img, inside = _disc()
    guide = anime_guide(img).astype(float)
    radius = np.hypot(*(np.mgrid[0:64, 0:64] - 32))
    ring, flat_in = np.abs(radius - 16) < 1.5, radius < 12
    assert guide[flat_in].mean() > 60 + 20 and guide[~inside & ~ring][:, 0].mean() > 170  # gamma brightens
    assert guide[ring].min() < 0.5 * guide[flat_in].mean()  # the edge is drawn as a dark line
    assert guide[flat_in].std() < 1.0  # flat regions stay flat


def test_bold_guide_outlines_shapes_but_draws_fewer_texture_strokes():
    img, inside = _disc(128)
    noise = np.random.default_rng(0).normal(0, 10, img.shape[:2])[..., None]
    textured = (img + noise).clip(0, 255).astype(np.uint8)  # skin-like grain on both regions
    radius = np.hypot(*(np.mgrid[0:128, 0:128] - 64))
    ring, away = np.abs(radius - 32) < 2, np.abs(radius - 32) > 6
    strokes = {}
    for style in STYLES:
        guide = anime_guide(textured, style).astype(float).mean(axis=2)
        assert guide[ring].min() < 0.3 * np.median(guide[inside & away])  # the outline is drawn
        strokes[style] = (guide[away] < 0.5 * np.median(guide[away])).mean()
    assert strokes["bold"] < 0.3 * strokes["sketch"]


def test_xdog_marks_edges_only():
    img, inside = _disc()
    lines = xdog(img[..., 0])
    assert lines.min() < 0.2 and np.median(lines) == 1.0


def test_structure_corr_ignores_brightness_and_contrast_but_not_layout():
    torch.manual_seed(0)
    photo = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8), size=64, mode="bilinear") * 2 - 1
    assert L.structure_corr_loss(photo, (0.5 * photo + 0.4).clamp(-1, 1)) < 1e-4
    assert L.structure_corr_loss(photo, photo.flip(-1)) > 0.2


def test_photo_batches_carry_guides_aligned_with_their_crops(photo_dir):
    stream = ImageStream(photo_dir, 32, seed=0)
    photos, labels, guides = stream.photo_batch(4, with_guide=True)
    assert guides.shape == photos.shape and labels.shape == (4, 32, 32)
    for p, g in zip(photos, guides):
        a, b = L.luminance(p[None]).flatten(), L.luminance(g[None]).flatten()
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.6  # same crop and flip
    assert stream.photo_batch(2)[2] is None


def test_cel_guide_lightens_dark_skin_without_washing_out_its_colour():
    skin = np.zeros((48, 48, 3), np.uint8) + np.uint8([92, 58, 42])  # a dark brown skin tone
    lab = {s: cv2.cvtColor(anime_guide(skin, s)[24:25, 24:25], cv2.COLOR_RGB2LAB)[0, 0].astype(float)
           for s in ("bold", "cel")}
    src = cv2.cvtColor(skin[:1, :1], cv2.COLOR_RGB2LAB)[0, 0].astype(float)
    chroma = {k: np.hypot(*(v[1:] - 128)) for k, v in lab.items()}
    hue = {k: np.degrees(np.arctan2(*(v[2:0:-1] - 128))) for k, v in (lab | {"src": src}).items()}
    assert lab["cel"][0] > src[0] + 20 and lab["bold"][0] > src[0] + 20  # both brighten
    assert chroma["cel"] > 1.2 * np.hypot(*(src[1:] - 128)) > 1.2 * 1.1 * chroma["bold"]  # per-channel gamma greys
    assert abs(hue["cel"] - hue["src"]) < 5
