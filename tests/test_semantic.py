"""The semantic anime target (generator/semantic.py) on a public-domain portrait."""
import cv2
import numpy as np
import pytest
from skimage import data

from animeedge.generator.faces import FaceFinder
from animeedge.generator.semantic import NOSE_BOTTOM, TargetStyle, semantic_target


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


@pytest.fixture(scope="module")
def astronaut(finder):
    rgb = data.astronaut()
    face = finder.find(rgb)
    target, parts = semantic_target(rgb, finder)
    return rgb, face, target, parts


def _edges(mask, width=3):
    m = mask.astype(np.uint8)
    kernel = np.ones((2 * width + 1,) * 2, np.uint8)
    return (cv2.dilate(m, kernel) - cv2.erode(m, kernel)).astype(bool)


def test_the_face_mesh_lands_on_the_astronauts_face(astronaut):
    _, face, _, _ = astronaut
    assert face is not None and face.score > 0.5
    x, y = face.points[NOSE_BOTTOM]
    assert 190 < x < 260 and 100 < y < 180  # her nose, in the 512 px picture
    eyes_y = face.points[[33, 263], 1]
    assert np.all(eyes_y < y)


def test_every_region_of_the_target_is_found(astronaut):
    rgb, _, target, parts = astronaut
    assert target.shape == rgb.shape and target.dtype == np.uint8
    for name, mask in [("person", parts.person), ("skin", parts.skin), ("hair", parts.hair), ("lips", parts.lips),
                       *[(f"eye {i}", m) for i, m in enumerate(parts.eyes)],
                       *[(f"brow {i}", m) for i, m in enumerate(parts.brows)]]:
        assert mask.sum() > 20, name
    assert not (parts.skin & parts.hair).any()


def test_outlines_lie_on_region_boundaries_not_inside_skin(astronaut):
    _, face, _, parts = astronaut
    clusters = parts.clusters
    changes = np.zeros(clusters.shape, bool)
    changes[:, 1:] |= clusters[:, 1:] != clusters[:, :-1]
    changes[1:] |= clusters[1:] != clusters[:-1]
    boundaries = (changes | _edges(parts.person) | _edges(parts.hair) | _edges(parts.face) | _edges(parts.skin)
                  | parts.lips)  # the lip line runs inside the lips
    for eye in parts.eyes:
        boundaries |= _edges(eye, 5)
    nose = np.zeros(clusters.shape, np.uint8)
    cv2.circle(nose, tuple(np.round(face.points[NOSE_BOTTOM]).astype(int)), 12, 1, -1)
    boundaries = cv2.dilate(boundaries.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) | nose.astype(bool)
    ink = parts.lines
    assert ink.sum() > 500
    assert (ink & boundaries).sum() / ink.sum() > 0.95
    deep_skin = cv2.erode(parts.skin.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~nose.astype(bool)
    assert (ink & deep_skin).sum() / ink.sum() < 0.02


def test_a_tight_face_crop_is_a_face_and_a_coffee_cup_is_not(finder):
    """Both escape the detector; the mesh alone must be sure (it once drew a face on the cup)."""
    tight = cv2.resize(data.astronaut()[90:170, 180:260], (256, 256))  # brows to chin
    assert finder._detect(tight) is None and finder.find(tight) is not None
    assert finder._detect(data.coffee()) is None and finder.find(data.coffee()[:, 100:500]) is None


def test_a_picture_without_a_face_still_gets_a_target(finder):
    grey = np.full((128, 160, 3), 120, np.uint8)
    target, parts = semantic_target(grey, finder)
    assert target.shape == grey.shape and parts.face is None


def test_texture_lines_darken_the_skin_only_where_asked(astronaut, finder):
    """The sweep's texture lines: none inside the skin unless the style says "everywhere"."""
    rgb, _, target, parts = astronaut
    outside = semantic_target(rgb, finder, TargetStyle(texture_lines="outside_skin"))[0]
    everywhere = semantic_target(rgb, finder, TargetStyle(texture_lines="everywhere"))[0]
    skin, rest = parts.skin, ~(parts.skin | parts.face)
    assert np.array_equal(outside[skin], target[skin])
    assert outside[rest].mean() < target[rest].mean() - 1
    assert everywhere[skin].mean() < target[skin].mean() - 1
    with pytest.raises(ValueError, match="texture_lines"):
        TargetStyle(texture_lines="skin")
