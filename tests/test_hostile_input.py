"""Hostile pictures, names and sizes: each is one file's clean error (the rest of a folder
goes on) or is handled, never a traceback, never a half-written file."""
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageSequence

from animeedge.stylize import plan_jobs, run
from conftest import run_cli, synthetic_image
from animeedge.generator.checkpoint import DEFAULT_MODEL
from animeedge.runtimes.atomic import atomic_dir, remove_stale, _owner_prefix
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.imageio import ImageReadError, read_image
from animeedge.runtimes.load import load
from animeedge.runtimes.manifest import load_manifest


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
    from animeedge.generator.inference import TorchStylizer
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
    from animeedge.compress.export import BundleExporter
    args = build_parser().parse_args(["export", "--out", "b", "--widths", "0.5"])
    assert args.widths == [0.5]
    out = BundleExporter(tiny_model_path, tmp_path / "bundle", ["onnx"], ["fp32"], args.widths, [32], folder,
                         progress=False).run()
    assert {a["width"] for a in load_manifest(out)["artifacts"]} == {0.5}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compress", "--out", "c.safetensors", "--widths", "0.5"])


def test_a_killed_writers_leftovers_are_removed_by_the_next_write_into_the_folder(tmp_path):
    """Whatever the next write is: a SIGKILLed video's hidden file goes when a picture is written."""
    final = tmp_path / "bundle"
    dead = tmp_path / f"{_owner_prefix(final)}999999999.abcd1234.tmp"  # no such pid
    alive = tmp_path / f"{_owner_prefix(final)}{os.getpid()}.efgh5678.tmp"  # a writer still at work
    other = tmp_path / f"{_owner_prefix(tmp_path / 'clip.avi')}999999999.ijkl9012.tmp.avi"
    users = tmp_path / ".clip.avi.notmine.999999999.ijkl9012.tmp.avi"  # not a name this tool makes
    for d in (dead, alive):
        (d / "onnx").mkdir(parents=True)
    other.write_bytes(b"half a video")
    users.write_bytes(b"someone else's")
    with atomic_dir(final) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert not dead.exists() and not other.exists() and alive.exists() and users.exists()
    assert (final / "manifest.json").is_file() and remove_stale(final) == []


def _run(*args, timeout=120):
    """A subprocess that must answer promptly: a FIFO opened for reading would block it forever."""
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def test_fifos_and_dangling_links_are_one_line_each(tmp_path, folder):
    fifo = "not a regular file (a FIFO, socket or device); refused"
    os.mkfifo(folder / "b.jpg")
    os.symlink(tmp_path / "gone.jpg", folder / "broken.jpg")
    os.mkfifo(tmp_path / "model.safetensors")
    api = _run("-c", "from animeedge.runtimes.imageio import read_image, list_images, ImageReadError\n"
               f"print(len(list_images({str(folder)!r})))\n"
               f"try: read_image({str(folder / 'b.jpg')!r})\nexcept ImageReadError as e: print(e)")
    assert api.stdout.splitlines() == ["5", f"{folder / 'b.jpg'}: {fifo}"], api.stderr
    result = _run("-m", "animeedge", "stylize", folder, "--out", tmp_path / "out", "--model", tmp_path / "model.safetensors")
    assert result.returncode == 2 and _one_line(result) == [f"animeedge: error: {tmp_path / 'model.safetensors'}: {fifo}"]
    result = _run("-m", "animeedge", "info", "--model", tmp_path / "model.safetensors")
    assert result.returncode == 2 and _one_line(result) == [f"animeedge: error: {tmp_path / 'model.safetensors'}: {fifo}"]
    result = _run("-m", "animeedge", "stylize", folder, "--out", tmp_path / "out", "--model", DEFAULT_MODEL)
    assert result.returncode == 1
    assert [line for line in _one_line(result) if "error" in line] == [
        f"animeedge: error: {folder / 'b.jpg'}: {fifo}", f"animeedge: error: {folder / 'broken.jpg'}: a link to nothing"]
    assert sorted(os.listdir(tmp_path / "out")) == ["ok0.png", "ok1.png", "ok2.png"]
    result = _run("-m", "animeedge", "export", "--out", tmp_path / "bundle", "--calib", folder, "--formats", "onnx",
                  "--precisions", "fp32", "--resolutions", "32")
    assert result.returncode == 2 and _one_line(result)[-1] == f"animeedge: error: {folder / 'b.jpg'}: {fifo}"
    assert not (tmp_path / "bundle").exists()


def _frames(path):
    img = Image.open(path)
    return [(np.asarray(img.convert("RGB"), dtype=int), img.info.get("duration")) for _ in ImageSequence.Iterator(img)]


@pytest.mark.parametrize("name", ["anim.gif", "anim.webp", "anim.png", "pages.tif"])
def test_animated_pictures_keep_every_frame_and_its_duration(tmp_path, name):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    frames = [Image.new("RGB", (20, 12), c) for c in colours]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0)
    jobs = plan_jobs([tmp_path / name], tmp_path / "out")
    assert run(lambda rgb: 255 - rgb, jobs, progress=False) == 0
    out = _frames(tmp_path / "out" / name)
    assert len(out) == 3
    for (pixels, duration), colour, ms in zip(out, colours, [100, 200, 300]):
        assert np.abs(pixels - (255 - np.array(colour))).max() <= 8  # each frame stylized (GIF, WebP: lossy)
        assert name == "pages.tif" or duration == ms
    assert Image.open(tmp_path / "out" / name).format == Image.open(tmp_path / name).format


def test_an_animation_into_a_still_format_is_refused(tmp_path, capsys):
    frames = [Image.new("RGB", (8, 8), (i * 90, 0, 0)) for i in range(2)]
    frames[0].save(tmp_path / "anim.jpg", format="GIF", save_all=True, append_images=frames[1:], duration=50)
    assert run(lambda rgb: rgb, plan_jobs([tmp_path / "anim.jpg"], tmp_path / "out"), progress=False) == 1
    assert capsys.readouterr().err.strip().endswith("anim.jpg: 2 frames cannot be written as .jpg (GIF, PNG, WebP and "
                                                    "TIFF hold frames); give the input its format's extension")
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_pixels_scale_by_the_files_nominal_range(tmp_path):
    Image.fromarray(np.full((4, 4), 200, np.uint16)).save(tmp_path / "dark16.png")  # 200 of 65535
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "half.tif")  # floats are 0..1
    Image.fromarray(np.full((4, 4), 2 ** 30, np.int32)).save(tmp_path / "half32.tif")  # of 2**31 - 1
    Image.fromarray(np.full((4, 4), -7, np.int32)).save(tmp_path / "negative32.tif")
    expected = {"dark16.png": 1, "half.tif": 128, "half32.tif": 128, "negative32.tif": 0}
    assert {name: int(read_image(tmp_path / name)[0].max()) for name in expected} == expected


def test_names_too_long_for_a_file_system_are_one_line(tmp_path):
    from animeedge.compress.export import check_out
    from animeedge.generator.checkpoint import resolve_model_path
    long = "n" * 300
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    for call in (lambda: plan_jobs([tmp_path / f"{long}.png"], tmp_path / "out"),
                 lambda: plan_jobs([tmp_path / "a.png"], tmp_path / "out" / long / "x"),
                 lambda: check_out(tmp_path / long, True),
                 lambda: resolve_model_path(tmp_path / f"{long}.safetensors")):
        with pytest.raises(UserError, match="too long for a file system"):
            call()
    assert os.listdir(tmp_path) == ["a.png"]


def _nan_checkpoint(path, info=None):
    """A generator whose first convolution holds a NaN: every picture would come out one colour."""
    import torch
    from animeedge.generator.checkpoint import save_generator
    from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
    torch.manual_seed(0)
    g = DoubleTailGenerator(GeneratorConfig(base_channels=8, tail_blocks=1))
    with torch.no_grad():
        g.encoder[0][0].weight[0, 0, 0, 0] = float("nan")
    save_generator(g, path, info)
    return path


@pytest.mark.parametrize("command", ["stylize", "info", "export", "compress --init"])
def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(command, folder, tmp_path, tiny_model_path):
    from animeedge.runtimes.manifest import sha256_path
    bad = _nan_checkpoint(tmp_path / "bad.safetensors", {"compressed_from": {"sha256": sha256_path(tiny_model_path)}})
    args = {"stylize": ["stylize", folder, "--out", tmp_path / "out", "--model", bad],
            "info": ["info", "--model", bad],
            "export": ["export", "--model", bad, "--out", tmp_path / "out", "--calib", folder, "--formats", "onnx",
                       "--precisions", "fp32", "--resolutions", "32"],
            "compress --init": ["compress", "--generator", tiny_model_path, "--init", bad, "--photos", folder,
                                "--out", tmp_path / "out" / "c.safetensors", "--steps", "1", "--resolutions", "32"]}
    result = run_cli(*args[command])
    assert result.returncode != 0
    assert _one_line(result)[-1] == (f"animeedge: error: {bad}: tensor encoder.0.0.weight holds NaN or infinite "
                                     "values; refused")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.*"))


def test_a_model_whose_output_turns_nan_is_refused_in_torch_too(rng_image):
    import torch
    from animeedge.generator.inference import TorchStylizer

    class Nan(torch.nn.Module):
        def set_width(self, width):
            return self

        def forward(self, x):
            return x * float("nan")
    with pytest.raises(UserError, match="the model returned NaN or infinity; refused"):
        TorchStylizer(Nan())(rng_image(24, 32))


def test_a_link_loop_in_a_folder_is_that_entrys_one_line(folder, tmp_path):
    os.symlink("loop.jpg", folder / "loop.jpg")
    os.symlink("b.png", folder / "a.png")
    os.symlink("a.png", folder / "b.png")
    result = run_cli("stylize", folder, "--out", tmp_path / "out", "--model", DEFAULT_MODEL)
    assert result.returncode == 1
    assert [line for line in _one_line(result) if "error" in line] == [
        f"animeedge: error: {folder / name}: a loop of links that never reaches a file"
        for name in ("a.png", "b.png", "loop.jpg")]
    assert sorted(os.listdir(tmp_path / "out")) == ["ok0.png", "ok1.png", "ok2.png"]
    result = run_cli("stylize", folder / "loop.jpg", "--out", tmp_path / "out2")
    assert result.returncode == 1 and "a loop of links" in _one_line(result)[-1]


def test_a_killed_writers_temporary_file_is_never_an_input(folder, tmp_path):
    """What a SIGKILLed write leaves (a hidden name ending in the output's extension) is not
    a picture of the user's, in a folder given to stylize, export's calibration or the app."""
    from animeedge.runtimes.imageio import list_images
    leftover = folder / f"{_owner_prefix(folder / 'ok0.png')}999999999.abcd1234.tmp.png"
    shutil.copy(folder / "ok0.png", leftover)
    assert leftover.name not in [p.name for p in list_images(folder)]
    assert [job.src.name for job in plan_jobs([folder], tmp_path / "out")] == ["ok0.png", "ok1.png", "ok2.png"]
