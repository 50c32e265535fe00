import json

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, synthetic_image
from animeedge.generator.inference import TorchStylizer
from animeedge.runtimes.imageio import read_image


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _assert_one_line_error(proc, text):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines and "Traceback" not in proc.stderr, proc.stderr
    assert text in lines[-1]


@pytest.mark.parametrize("h,w", [(1, 1), (31, 17), (64, 64), (100, 37)])
def test_output_size_equals_input_size(tiny_model_path, rng, h, w):
    stylize = TorchStylizer(tiny_model_path)
    out = stylize(synthetic_image(rng, 128)[:h, :w].copy())
    assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_default_model_inks_lines_and_keeps_the_photos_colours():
    import skimage.data

    from animeedge.generator import cel
    photo = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    out = TorchStylizer()(photo)
    lab = lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2LAB).astype(float)  # noqa: E731
    inked = lambda a: np.linalg.norm(a.astype(float) - cel.INK, axis=-1) < 40  # noqa: E731
    assert (inked(out) & ~inked(photo)).mean() > 0.03  # it draws lines in the ink colour where the photo has none
    off = ~cv2.dilate(inked(out).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert off.mean() > 0.3
    assert np.median(np.linalg.norm(lab(out) - lab(photo), axis=-1)[off]) < 8  # off the lines, the photo's colours
    detail = lambda a: np.abs(cv2.Laplacian(lab(a)[..., 0], cv2.CV_64F))[off].mean()  # noqa: E731
    assert detail(out) < 0.8 * detail(photo)  # and flatter than the photo there
    blur = lambda a: cv2.GaussianBlur(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(float), (0, 0), 4).ravel()  # noqa: E731
    assert np.corrcoef(blur(photo), blur(out))[0, 1] > 0.5  # the picture's layout survives


def test_resolution_and_width_change_the_computation(tiny_model_path, rng):
    img = synthetic_image(rng, 96)
    full = TorchStylizer(tiny_model_path)(img)
    low = TorchStylizer(tiny_model_path, resolution=48)(img)
    slim = TorchStylizer(tiny_model_path, width=0.25)(img)
    assert low.shape == slim.shape == img.shape
    assert not np.array_equal(full, low) and not np.array_equal(full, slim)


def test_bad_frames_are_refused(tiny_model_path):
    stylize = TorchStylizer(tiny_model_path)
    with pytest.raises(ValueError, match="uint8 RGB"):
        stylize(np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError):
        stylize([[0]])


def _exif_rotated_jpeg(path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(rgb).save(path, exif=exif)


def test_image_modes_are_read_as_rgb(tmp_path, rng):
    rgb = synthetic_image(rng, 40)[:, :30].copy()
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "deep.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.gif")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    _exif_rotated_jpeg(tmp_path / "rot.jpg", rgb)
    for name in ("grey.png", "deep.png", "pal.gif", "alpha.png"):
        img, alpha = read_image(tmp_path / name)
        assert img.shape == (40, 30, 3) and img.dtype == np.uint8
    assert np.array_equal(read_image(tmp_path / "deep.png")[0][..., 0], rgb[..., 0])
    assert (read_image(tmp_path / "alpha.png")[1] == 77).all()
    assert read_image(tmp_path / "rot.jpg")[0].shape == (30, 40, 3)


def test_cli_stylizes_a_folder_keeps_names_alpha_and_reports_bad_files(tiny_model_path, tmp_path, rng):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rgb = synthetic_image(rng, 40)
    Image.fromarray(rgb).save(src / "a.jpg")
    Image.fromarray(np.dstack([rgb, np.full((40, 40), 9, np.uint8)])).save(src / "sub" / "b.png")
    _exif_rotated_jpeg(src / "rot.jpg", rgb[:, :24].copy())
    (src / "broken.png").write_bytes(b"not an image")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    proc = run_cli("stylize", src, "--out", tmp_path / "out", "--model", tiny_model_path)
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if "error" in line] == [
        line for line in proc.stderr.splitlines() if "broken.png" in line and "cannot read image" in line]
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.jpg", "rot.jpg", "sub/b.png"]
    assert np.asarray(Image.open(out / "sub" / "b.png")).shape == (40, 40, 4)
    assert (np.asarray(Image.open(out / "sub" / "b.png"))[..., 3] == 9).all()
    assert Image.open(out / "rot.jpg").size == (40, 24)
    assert before == {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}


def test_cli_stylizes_a_video(tiny_model_path, tmp_path, rng):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for _ in range(5):
        writer.write(synthetic_image(rng, 48)[:32])
    writer.release()
    proc = run_cli("stylize", path, "--out", tmp_path / "out", "--model", tiny_model_path, "--width", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "warning: this model was trained for widths [1.0] only" in proc.stderr
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.avi"))
    frames = []
    while (ok_frame := cap.read())[0]:
        frames.append(ok_frame[1])
    assert len(frames) == 5 and frames[0].shape == (32, 48, 3)
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())


@pytest.mark.parametrize("args,message", [
    (["stylize", "{missing}", "--out", "{out}"], "no such file or folder"),
    (["stylize", "{img}", "--out", "{img_dir}"], "overwrite the input"),
    (["stylize", "{img}", "--out", "{out}", "--model", "{junk}"], "not a safetensors checkpoint"),
    (["stylize", "{img}", "--out", "{out}", "--width", "1.5"], "width must be a channel ratio in (0, 1]"),
    (["stylize", "{img}", "--out", "{out}", "--resolution", "-5"], "from 16 to 4096"),
    (["stylize", "{img}", "--out", "{out}", "--resolution", "100000"], "from 16 to 4096"),
    (["train", "--photos", "{missing}", "--anime", "{img_dir}", "--out", "{out}", "--preset", "tiny"], "not a folder"),
    (["train", "--photos", "{img_dir}", "--anime", "{img_dir}", "--out", "{out}", "--preset", "nope"], "presets:"),
    (["info", "--model", "{missing}"], "no such model file"),
])
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img_dir / "x.png")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    names = {"missing": tmp_path / "missing", "out": tmp_path / "out", "img": img_dir / "x.png",
             "img_dir": img_dir, "junk": tmp_path / "junk.safetensors"}
    _assert_one_line_error(run_cli(*[a.format(**names) for a in args]), message)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


def test_info_json_has_the_documented_form():
    proc = run_cli("info", "--json")
    assert proc.returncode == 0, proc.stderr
    widths = json.loads(proc.stdout)["widths"]
    assert list(widths) == ["0.25", "0.5", "0.75", "1.0"]
    assert set(widths["1.0"]["gmacs"]) == {"128", "256", "512", "1024"}
    assert widths["1.0"]["params"] <= 1_100_000 and widths["1.0"]["gmacs"]["256"] <= 4.0
    assert widths["0.25"]["gmacs"]["256"] < widths["1.0"]["gmacs"]["256"]
