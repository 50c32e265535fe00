"""The clean cel target (generator/cel.py) on pictures made here and on scikit-image's
public-domain astronaut: it keeps what the photo shows, draws no line in smooth shading and
no speck, and keeps hues; and the hair and clothes hue measure (generator/metrics.py)."""
import cv2
import numpy as np
import pytest
from skimage import data

from animeedge.generator.cel import SPECK, cel_target, find_regions
from animeedge.generator.faces import FaceFinder
from animeedge.generator.metrics import region_hue_change
from animeedge.generator.semantic import EYES
from animeedge.runtimes.errors import UserError


def _lab(rgb):
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def _rgb(lab):
    return (cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB).clip(0, 1) * 255).round().astype(np.uint8)


def _hue(lab_pixels):
    return np.degrees(np.arctan2(lab_pixels[:, 2].mean(), lab_pixels[:, 1].mean()))


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


def _frames(shape, boxes, width=3):
    """A dark glasses frame: one rectangle per eye and a bridge between them."""
    frame = np.zeros(shape[:2], np.uint8)
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(frame, (x0, y0), (x1, y1), 1, width)
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = sorted(boxes)
    cv2.line(frame, (ax1, (ay0 + ay1) // 2), (bx0, (by0 + by1) // 2), 1, width)
    return frame.astype(bool)


def _assert_frame_dark(photo, target, frame):
    light = _lab(target)[..., 0]
    ring = cv2.dilate(frame.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~cv2.dilate(
        frame.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.median(light[frame]) < 30 and np.percentile(light[frame], 90) < 45
    assert abs(np.median(light[ring]) - np.median(_lab(photo)[..., 0][ring])) < 10  # the face around it stays


def test_a_drawn_face_keeps_its_glasses_frame():
    yy, xx = np.mgrid[0:256, 0:256]
    photo = np.full((256, 256, 3), (170, 190, 215), np.uint8)  # a blue-grey wall
    photo[((yy - 130) / 95) ** 2 + ((xx - 128) / 75) ** 2 < 1] = (226, 178, 150)  # skin
    for cx in (98, 158):
        cv2.ellipse(photo, (cx, 115), (14, 7), 0, 0, 360, (245, 245, 240), -1)
        cv2.circle(photo, (cx, 115), 5, (70, 45, 30), -1)
    cv2.ellipse(photo, (128, 185), (22, 6), 0, 0, 360, (190, 90, 90), -1)
    frame = _frames(photo.shape, [(78, 100, 118, 130), (138, 100, 178, 130)])
    photo[frame] = (28, 24, 24)
    target, _ = cel_target(photo)
    _assert_frame_dark(photo, target, frame)


def test_the_astronaut_keeps_a_glasses_frame_drawn_on_her_face(finder):
    """With the face models, skin is flattened into two tones: the frame over it must survive."""
    photo = np.ascontiguousarray(cv2.resize(data.astronaut()[20:276, 100:356], (256, 256)))
    face = finder.find(photo)
    assert face is not None
    boxes = []
    for eye in EYES:
        x0, y0 = face.points[eye].min(0) - 6
        x1, y1 = face.points[eye].max(0) + 6
        boxes.append(tuple(int(round(v)) for v in (x0, y0, x1, y1)))
    frame = _frames(photo.shape, boxes)
    photo[frame] = (28, 24, 24)
    _, parts = find_regions(photo, finder)
    assert parts is not None and (parts.skin & frame).sum() > 0.2 * frame.sum()  # the frame lies in the skin
    target, _ = cel_target(photo, finder)
    _assert_frame_dark(photo, target, frame)


def _skin_gradient_picture():
    """Skin-coloured shading (a lightness ramp and a soft shadow), a dark disc (a structure
    edge), and dots and a dash shorter than the speck limit."""
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    lab = np.empty((256, 256, 3), np.float32)
    lab[..., 0] = 58 + 22 * xx / 255 - 12 / (1 + np.exp(-(yy - 170) / 5))
    lab[..., 1], lab[..., 2] = 16, 22
    rgb = _rgb(lab)
    cv2.circle(rgb, (60, 60), 22, (60, 35, 30), -1)
    specks = np.zeros((256, 256), np.uint8)
    for x, y in ((150, 60), (200, 120), (120, 220)):
        cv2.rectangle(specks, (x, y), (x + 1, y + 1), 1, -1)
    cv2.line(specks, (200, 210), (203, 210), 1, 1)
    rgb[specks.astype(bool)] = (70, 40, 35)
    return rgb, specks.astype(bool)


def test_no_line_inside_smooth_skin_shading_and_no_specks():
    rgb, specks = _skin_gradient_picture()
    _, lines = cel_target(rgb)
    disc = np.zeros(lines.shape, np.uint8)
    cv2.circle(disc, (60, 60), 22 + 6, 1, -1)
    assert lines[disc.astype(bool)].sum() > 100  # the disc's outline is drawn...
    assert not lines[~disc.astype(bool)].any()  # ...and nothing in the shading or at the specks
    n, _, stats, _ = cv2.connectedComponentsWithStats(lines.astype(np.uint8), connectivity=8)
    extents = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    assert n > 1 and extents.min() >= SPECK


def _patches():
    """Six coloured patches with a gentle lightness ramp each, on grey."""
    lab = np.zeros((256, 384, 3), np.float32)
    lab[..., 0] = 60
    boxes = []
    for i, hue in enumerate((10, 70, 130, 190, 250, 310)):
        y0, x0 = 24 + (i // 3) * 120, 24 + (i % 3) * 120
        ramp = np.linspace(45, 70, 96)[None, :]
        lab[y0:y0 + 96, x0:x0 + 96, 0] = ramp
        lab[y0:y0 + 96, x0:x0 + 96, 1] = 30 * np.cos(np.radians(hue))
        lab[y0:y0 + 96, x0:x0 + 96, 2] = 30 * np.sin(np.radians(hue))
        boxes.append((y0, x0))
    return _rgb(lab), boxes


def test_colours_keep_their_hue():
    rgb, boxes = _patches()
    target, lines = cel_target(rgb)
    for y0, x0 in boxes:
        inside = np.zeros(lines.shape, bool)
        inside[y0 + 8:y0 + 88, x0 + 8:x0 + 88] = True
        inside &= ~lines
        turn = (_hue(_lab(target)[inside]) - _hue(_lab(rgb)[inside]) + 180) % 360 - 180
        assert abs(turn) < 3, (y0, x0, turn)


def test_the_astronauts_skin_and_hair_keep_their_hue(finder):
    photo = np.ascontiguousarray(cv2.resize(data.astronaut()[20:276, 100:356], (256, 256)))
    _, parts = find_regions(photo, finder)
    target, lines = cel_target(photo, finder)
    for mask in (parts.skin, parts.hair):
        assert mask.sum() > 500
        assert region_hue_change([photo], [target], [mask & ~lines]) < 5


def test_hue_measure_passes_the_identity_and_fails_a_hue_rotation():
    rgb, _ = _patches()
    lab = _lab(rgb)
    turn = np.radians(40)
    rotated = lab.copy()
    rotated[..., 1] = lab[..., 1] * np.cos(turn) - lab[..., 2] * np.sin(turn)
    rotated[..., 2] = lab[..., 1] * np.sin(turn) + lab[..., 2] * np.cos(turn)
    everywhere = np.ones(rgb.shape[:2], bool)
    assert region_hue_change([rgb], [rgb], [everywhere]) < 1
    assert region_hue_change([rgb], [_rgb(rotated)], [everywhere]) > 30
    grey = np.full_like(rgb, 128)  # no chroma: no hue to keep, nothing measured
    assert np.isnan(region_hue_change([grey], [rgb], [everywhere]))


@pytest.mark.parametrize("bad", [np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.uint8),
                                 np.zeros((4, 64, 3), np.uint8)])
def test_a_picture_it_cannot_use_is_refused_in_words(bad):
    with pytest.raises(UserError, match="cel target needs"):
        cel_target(bad)


def test_the_fit_measures_score_the_target_perfect_and_the_photo_textured(finder):
    from animeedge.generator.cel_fit import CelFit
    photo = np.ascontiguousarray(cv2.resize(data.astronaut()[20:276, 100:356], (256, 256)))
    fit = CelFit(photo, finder)
    perfect = fit.score(fit.target)
    assert perfect["f"] > 0.99 and perfect["texture"] == pytest.approx(1.0)
    assert max(perfect[k] for k in ("skin", "hair", "clothes", "background") if k in perfect) < 0.01
    as_photo = fit.score(photo)  # the photo's own texture in skin and hair, and no lines
    assert as_photo["texture"] > 1.5 and as_photo["f"] < perfect["f"] - 0.3
