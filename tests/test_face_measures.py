"""The face measures (generator/face_measures.py) on scikit-image's public-domain astronaut, her
face and drawn changes to it: blob eyes, a fold line, a dark band under the nose, dark teeth,
a small face in a frame; and the clean cel target's face (an iris kept, no fold line)."""
import cv2
import numpy as np
import pytest

from animeedge.generator import cel
from animeedge.generator import face_measures as fm
from animeedge.generator.faces import FaceFinder
from animeedge.quality import public_pictures


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


@pytest.fixture(scope="module")
def face(finder):
    """Her face at 256 px (a smile with teeth, both eyes open), its mesh and zones."""
    photo = public_pictures()[1]
    points = finder.find(photo).points
    return photo, points, fm.zones(photo, points)


def _with_lightness(rgb, mask, light):
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    lab[mask, 0] = light
    return (cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).clip(0, 1) * 255).round().astype(np.uint8)


def test_the_photo_scores_as_itself(face):
    photo, _, z = face
    assert len(z.eyes) == 2 and z.teeth.sum() >= 50 and not z.moustache
    m = fm.measure(photo, photo, z)
    assert min(m["eye_corr"]) > 0.99 and m["eye_black"] == m["eye_black_photo"]
    assert m["fold_ink"] <= 0.005 * m["fold_px"] and m["lip_ink"] <= 0.02 and m["teeth_kept"]
    s = fm.summarize([m])
    assert s["eye_corr"] > 0.99 and s["eye_black_ratio"] == 1.0 and s["teeth_kept"] == 1.0


def test_dark_blob_eyes_lose_the_eye(face):
    photo, _, z = face
    noise = np.random.default_rng(0).normal(0, 2, photo.shape[:2])
    blob = photo.copy()
    for eye in z.eyes:
        blob = _with_lightness(blob, eye, (12 + noise)[eye])
    s = fm.summarize([fm.measure(photo, blob, z)])
    assert s["eye_corr"] < 0.3 and s["eye_black_ratio"] > 3.0


def test_a_fold_line_is_ink_in_the_fold_zones(face):
    photo, points, z = face
    folded = photo.copy()
    for wing, corner in zip(fm.NOSE_WINGS, fm.MOUTH_CORNERS):  # nose-to-mouth lines, just outside the corners
        out = 4 * (points[wing] - points[fm.NOSE_TIP]) / np.linalg.norm(points[wing] - points[fm.NOSE_TIP])
        cv2.line(folded, tuple(np.round(points[wing] + out).astype(int)), tuple(np.round(points[corner] + out).astype(int)),
                 tuple(int(c) for c in cel.INK), 2)
    m = fm.measure(photo, folded, z)
    assert m["fold_ink"] >= 0.01 * m["fold_px"] > fm.measure(photo, photo, z)["fold_ink"]


def test_dark_teeth_are_not_kept(face):
    photo, _, z = face
    assert not fm.measure(photo, _with_lightness(photo, z.teeth, 30.0), z)["teeth_kept"]


def test_a_small_face_in_a_frame_keeps_its_zones_and_a_band_under_its_nose_is_ink(face):
    photo, points, _ = face
    frame, moved = fm.place_small(photo, points, 48)
    assert frame.shape == (256, 256, 3)
    assert abs(np.linalg.norm(moved[fm.FACE_SIDES[0]] - moved[fm.FACE_SIDES[1]]) - 48) < 2
    assert (moved >= 0).all() and (moved < 256).all()
    z = fm.zones(frame, moved)
    assert z.eyes and z.upper_lip.sum() >= 4 and not z.moustache
    assert fm.measure(frame, frame, z)["lip_ink"] <= 0.02
    band = frame.copy()
    band[z.upper_lip] = cel.INK
    assert fm.measure(frame, band, z)["lip_ink"] > 0.9
    assert fm.zones(band, moved).moustache  # dark hair in the photo: its upper lip is not scored


def test_the_cel_target_keeps_the_iris_and_draws_no_fold_line(face, finder):
    photo, points, z = face
    folded = photo.copy()  # a soft fold shadow drawn from each nose wing towards the mouth's corner
    shade = np.zeros(photo.shape[:2], np.float32)
    for wing, corner in zip(fm.NOSE_WINGS, fm.MOUTH_CORNERS):
        out = 5 * (points[wing] - points[fm.NOSE_TIP]) / np.linalg.norm(points[wing] - points[fm.NOSE_TIP])
        end = points[wing] + 0.85 * (points[corner] - points[wing])  # the lips' own outline is not a fold
        cv2.line(shade, tuple(np.round(points[wing] + out).astype(int)), tuple(np.round(end + out).astype(int)), 1.0, 3)
    lab = cv2.cvtColor(folded.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    lab[..., 0] -= 20 * cv2.GaussianBlur(shade, (0, 0), 1.0)
    folded = (cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).clip(0, 1) * 255).round().astype(np.uint8)
    assert cel._canny(cel.smooth(folded), cel.GATES["skin"])[z.folds].sum() > 20  # the fold is an edge Canny finds
    assert not (cel.cel_target(photo, finder)[1] & z.folds).any()
    target, lines = cel.cel_target(folded, finder)
    # the drawn fold is no stroke: what is left lies where it meets the smile's own crease at the
    # mouth's corner (the earlier target drew 141 px of it)
    assert (lines & z.folds).sum() <= 0.03 * z.folds.sum()
    light, photo_light = fm.lightness(target), fm.lightness(folded)
    for eye in z.eyes:  # sclera and iris: the eye's own tones, not ink
        lo, hi = np.percentile(light[eye], [5, 95])
        inside = cv2.erode(eye.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # the mesh moves < 1 px
        assert hi - lo > 25 and not lines[inside].any()
        assert np.corrcoef(light[eye], photo_light[eye])[0, 1] > 0.85
    assert fm.measure(folded, target, z, ink=lines)["teeth_kept"]
