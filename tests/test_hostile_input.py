"""Hostile pictures, names and sizes: each is one file's clean error (the rest of a folder
goes on) or is handled, never a traceback, never a half-written file."""
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, synthetic_image
from runtimes.atomic import atomic_dir, remove_stale, _owner_prefix
from runtimes.imageio import ImageReadError, read_image
from runtimes.load import load
from runtimes.manifest import load_manifest


def bomb_png(path, width=100_000, height=100_000):
    """A tiny PNG whose header claims width x height."""
    Image.new("RGB", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4:ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


def _one_line(result):
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    return lines


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "in"
    path.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(rng, 40)).save(path / f"ok{i}.png")
    return path


def test_a_decompression_bomb_is_one_files_error(folder, tmp_path, tiny_model_path):
    bomb_png(folder / "bomb.png")
    with pytest.raises(ImageReadError, match="too large: 10000 MP"):
        read_image(folder / "bomb.png")
    result = run_cli("stylize", folder, "--out", tmp_path / "out", "--model", tiny_model_path)
    assert result.returncode == 1
    assert [line for line in _one_line(result) if "error" in line] == [
        f"animeedge: error: {folder / 'bomb.png'}: image too large: 10000 MP (the limit is 89 MP)"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok0.png", "ok1.png", "ok2.png"]


def test_non_finite_float_pixels_are_unreadable(tmp_path):
    pixels = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    pixels[2, 3] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "nan.tif")
    pixels[2, 3] = np.inf
    Image.fromarray(pixels, mode="F").save(tmp_path / "inf.tif")
    for name in ("nan.tif", "inf.tif"):
        with pytest.raises(ImageReadError, match="NaN or infinite"):
            read_image(tmp_path / name)


@pytest.mark.parametrize("h, w", [(1, 5000), (5000, 1), (2, 3000)])
@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_extreme_aspect_ratios_keep_their_size(bundle, rng_image, h, w, backend):
    """ONNX files are dynamic (the frame keeps its shape), TFLite files fixed (padded square)."""
    frame = rng_image(h, w)
    out = load(bundle[0], 1.0, None, backend, "fp32")(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8


@pytest.fixture
def rng_image():
    rng = np.random.default_rng(4)
    return lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_extreme_aspect_ratio_in_torch(tiny_model_path, rng_image):
    from generator.inference import TorchStylizer
    frame = rng_image(1, 3000)
    assert TorchStylizer(tiny_model_path)(frame).shape == frame.shape


def test_a_long_file_name_is_written(tmp_path, tiny_model_path):
    name = "p" * 240 + ".png"
    Image.new("RGB", (20, 12), (10, 200, 30)).save(tmp_path / name)
    result = run_cli("stylize", tmp_path / name, "--out", tmp_path / "out", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / name).is_file() and len(os.listdir(tmp_path / "out")) == 1


def test_content_decides_and_names_say_the_content(tmp_path, tiny_model_path):
    Image.new("RGB", (20, 12), (10, 200, 30)).save(tmp_path / "clip.mp4", format="JPEG")
    Image.new("RGB", (20, 12), (200, 20, 30)).save(tmp_path / "README", format="PNG")
    (tmp_path / "notes.txt").write_text("hello")
    result = run_cli("stylize", tmp_path / "clip.mp4", tmp_path / "README", tmp_path / "notes.txt",
                     "--out", tmp_path / "out", "--model", tiny_model_path)
    assert result.returncode == 1
    errors = [line for line in _one_line(result) if "error" in line]
    assert errors == [f"animeedge: error: {tmp_path / 'notes.txt'}: not a picture or a video this tool reads"]
    assert sorted(os.listdir(tmp_path / "out")) == ["README.png", "clip.mp4.jpg"]
    assert Image.open(tmp_path / "out" / "clip.mp4.jpg").format == "JPEG"
    assert Image.open(tmp_path / "out" / "README.png").size == (20, 12)


def test_out_that_is_a_file_is_said_once(folder, tmp_path, tiny_model_path):
    (tmp_path / "taken").write_text("mine")
    result = run_cli("stylize", folder, "--out", tmp_path / "taken", "--model", tiny_model_path)
    assert result.returncode == 2
    assert _one_line(result) == [f"animeedge: error: {tmp_path / 'taken'}: exists and is not a folder; --out takes a folder"]
    assert (tmp_path / "taken").read_text() == "mine"


def test_a_single_exported_file_is_a_model(bundle, folder, tmp_path):
    listed = next(a for a in load_manifest(bundle[0])["artifacts"] if a["format"] == "onnx" and a["precision"] == "fp32")
    shutil.copy2(bundle[0] / listed["file"], tmp_path / "alone.onnx")
    result = run_cli("stylize", folder / "ok0.png", "--out", tmp_path / "out", "--model", tmp_path / "alone.onnx")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "ok0.png").size == (40, 40)


def test_export_takes_widths_without_the_full_one(tiny_model_path, folder, tmp_path):
    from animeedge.cli import build_parser
    from compress.export import BundleExporter
    args = build_parser().parse_args(["export", "--out", "b", "--widths", "0.5"])
    assert args.widths == [0.5]
    out = BundleExporter(tiny_model_path, tmp_path / "bundle", ["onnx"], ["fp32"], args.widths, [32], folder,
                         progress=False).run()
    assert {a["width"] for a in load_manifest(out)["artifacts"]} == {0.5}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compress", "--out", "c.safetensors", "--widths", "0.5"])


def test_a_killed_writers_temporary_folder_is_removed_by_the_next(tmp_path):
    final = tmp_path / "bundle"
    dead = tmp_path / f"{_owner_prefix(final)}999999999.abcd.tmp"  # no such pid
    alive = tmp_path / f"{_owner_prefix(final)}{os.getpid()}.efgh.tmp"  # a writer still at work
    other = tmp_path / f"{_owner_prefix(tmp_path / 'other')}999999999.ijkl.tmp"
    for d in (dead, alive, other):
        (d / "onnx").mkdir(parents=True)
    with atomic_dir(final) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert not dead.exists() and alive.exists() and other.exists() and (final / "manifest.json").is_file()
    assert remove_stale(final) == []
