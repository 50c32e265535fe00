"""A camera frame's path around the model (runtimes/processing.py, Stylizer's stages): the
faster forms give today's pixels. The input side is identical (an int8 input is one table
look-up of what normalizing and quantizing computes per byte; OpenCV's border is numpy's
pad); the output side is within 1 level (rounded to nearest in one pass)."""
import numpy as np
import pytest

from conftest import BUNDLE_RES, synthetic_image
from animeedge.runtimes.backends import Fed, dequantize, quantize
from animeedge.runtimes.load import Stylizer, load
from animeedge.runtimes.processing import (byte_table, from_nchw, from_nhwc, lookup_nchw, lookup_nhwc, output_nchw,
                                           output_nhwc, output_table, pad, resize, to_nchw, to_nhwc)

Q = {"scale": 0.007839307188987732, "zero_point": 0}  # what export gives a [-1, 1] int8 input
RNG = np.random.default_rng(11)


def skimage_astronaut():
    import skimage
    return skimage.data.astronaut()


def _floor_bytes(x):
    """What from_nhwc computed before: floor((x + 1) * 127.5 + 0.5), clipped."""
    y = x[0] * np.float32(127.5) + np.float32(128.0)
    return np.clip(y, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("q", [Q, {"scale": 0.0123, "zero_point": -7}, None])
def test_an_int8_input_is_one_look_up_of_normalize_and_quantize(q):
    rgb = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    table = byte_table(lambda x: quantize(x, q))
    assert table.shape == (256,) and table.dtype == (np.int8 if q else np.float32)
    np.testing.assert_array_equal(lookup_nhwc(rgb, table), quantize(to_nhwc(rgb), q))
    np.testing.assert_array_equal(lookup_nchw(rgb, table), quantize(to_nchw(rgb), q))


def test_quantize_rounds_halves_to_even_and_clips_as_before():
    x = np.array([-2.0, -1.0, -0.5 * Q["scale"], 0.5 * Q["scale"], 1.5 * Q["scale"], 1.0, 3.0], np.float32)
    before = np.clip(np.round(x / Q["scale"]) + Q["zero_point"], -128, 127).astype(np.int8)
    np.testing.assert_array_equal(quantize(x, Q), before)


def test_an_int8_output_is_one_look_up_of_dequantize_and_bytes():
    q = {"scale": 0.0081, "zero_point": 3}
    y = RNG.integers(-128, 128, (1, 20, 30, 3), dtype=np.int8)
    table = output_table(lambda v: dequantize(v, q))
    np.testing.assert_array_equal(output_nhwc(y, table), from_nhwc(dequantize(y, q)))
    yc = np.ascontiguousarray(y.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(output_nchw(yc, table), from_nhwc(dequantize(y, q)))


def test_float_outputs_become_bytes_within_one_level_of_before():
    y = np.tanh(RNG.normal(size=(1, 64, 48, 3)) * 2).astype(np.float32)
    y[0, 0, 0] = [-5.0, 5.0, 0.0]  # clipped at both ends
    got = from_nhwc(y)
    assert got.dtype == np.uint8 and got.shape == (64, 48, 3)
    assert np.abs(got.astype(int) - _floor_bytes(y)).max() <= 1
    assert list(got[0, 0]) == [0, 255, 128]
    np.testing.assert_array_equal(from_nchw(np.ascontiguousarray(y.transpose(0, 3, 1, 2))), got)
    np.testing.assert_array_equal(from_nhwc(y.astype(np.float64)), got)


@pytest.mark.parametrize("h, w, th, tw", [(24, 32, 32, 32), (32, 20, 32, 32), (5, 9, 16, 16), (2, 3, 16, 16),
                                          (1, 40, 16, 40), (40, 1, 40, 16), (16, 16, 16, 16)])
def test_padding_is_numpys_reflect_or_edge(h, w, th, tw):
    rgb = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mode = "reflect" if min(h, w) > 1 else "edge"
    np.testing.assert_array_equal(pad(rgb, th, tw), np.pad(rgb, ((0, th - h), (0, tw - w), (0, 0)), mode=mode))


@pytest.mark.parametrize("fmt, precision", [("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"),
                                            ("tflite", "int8")])
def test_frames_come_out_as_before_and_in_any_call_order(bundle, fmt, precision):
    """The stylizer against the path it replaced (float normalize, quantize, the runtime,
    dequantize, floor to bytes, the same resizes), on frames that are shrunk, enlarged and
    padded; and a prepared input stays itself when another frame is prepared before it runs."""
    s = load(bundle[0], 0.5, BUNDLE_RES, fmt, precision, threads=1)
    assert isinstance(s, Stylizer)
    frames = [synthetic_image(RNG, 96), synthetic_image(RNG, 20)[:, :14], synthetic_image(RNG, 40)[:30]]
    for frame in frames:
        x, geometry = s.fit(frame)
        native = quantize((to_nhwc if s.session.nhwc else to_nchw)(x), s.session.q_in)
        before = s.session.finish(s.session.invoke(native))
        h, w, ph, pw = geometry[:4]
        expected = s.unfit(_floor_bytes(before if s.session.nhwc else before.transpose(0, 2, 3, 1))[:ph, :pw], geometry)
        got = s(frame)
        assert got.shape == frame.shape and np.abs(got.astype(int) - expected).max() <= 1
    first, later = frames[0], frames[2]
    x1, g1 = s.prepare(first)
    x2, g2 = s.prepare(later)
    assert isinstance(x1, Fed) == (fmt == "tflite")
    np.testing.assert_array_equal(s.finish(s.invoke(x1), g1), s(first))
    np.testing.assert_array_equal(s.finish(s.invoke(x2), g2), s(later))
    np.testing.assert_array_equal(s.finish(s.invoke(x2), g2), s(later))  # invoked twice: the same input


def test_staged_is_the_call_with_a_lap_per_stage(bundle):
    s = load(bundle[0], 1.0, BUNDLE_RES, "tflite", "int8", threads=1)
    frame = synthetic_image(RNG, 50)
    laps = []
    np.testing.assert_array_equal(s.staged(frame, laps.append), s(frame))
    assert laps == list(Stylizer.STAGES)


@pytest.mark.parametrize("size, to", [((480, 640), (192, 256)), ((360, 480), (192, 256)), ((1080, 1920), (144, 256)),
                                      ((600, 800), (256, 341))])
def test_a_shrink_by_an_uneven_factor_is_near_inter_area_and_a_lanczos_resize(size, to):
    """The blur + linear shrink against OpenCV's INTER_AREA (what it replaced, 4x slower at
    640x480 to 256x192): the same picture, not shifted, and within 3 dB of INTER_AREA's
    distance to Pillow's Lanczos resize (0.4-2.9 dB on the astronaut)."""
    import cv2
    from PIL import Image
    photo = cv2.resize(skimage_astronaut(), size[::-1], interpolation=cv2.INTER_CUBIC)
    lanczos = np.asarray(Image.fromarray(photo).resize(to[::-1], Image.LANCZOS))
    area = cv2.resize(photo, to[::-1], interpolation=cv2.INTER_AREA).astype(int)
    got = resize(photo, *to).astype(int)
    assert got.shape == area.shape and np.abs(got - area).mean() < 2
    assert np.abs(got - area).mean() < np.abs(got[:, 1:] - area[:, :-1]).mean() / 2  # not shifted
    assert _psnr(got, lanczos) > _psnr(area, lanczos) - 3


def _psnr(a, b) -> float:
    return 10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b) ** 2))


def test_whole_factors_and_enlarging_keep_opencvs_own_resizes():
    import cv2
    photo = skimage_astronaut()
    np.testing.assert_array_equal(resize(photo, 128, 256), cv2.resize(photo, (256, 128), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(resize(photo[:100, :90], 150, 135),
                                  cv2.resize(photo[:100, :90], (135, 150), interpolation=cv2.INTER_CUBIC))


def test_for_the_display_the_output_is_the_frame_at_the_models_size(bundle):
    """The app's path (finish with to_frame=False) skips the way back to the frame's size,
    which the display does; the picture is the call's, shrunk."""
    s = load(bundle[0], 1.0, BUNDLE_RES, "tflite", "int8", threads=1)
    frame = synthetic_image(RNG, 96)[:72]
    x, geometry = s.prepare(frame)
    y = s.invoke(x)
    small = s.finish(y, geometry, to_frame=False)
    assert small.shape == (24, BUNDLE_RES, 3)
    np.testing.assert_array_equal(s.finish(y, geometry), resize(small, 72, 96))
