"""The README's tour, every command as written and in order, on the state `make demo` leaves
(slow: it runs `animeedge demo` first, then compresses, exports, benches and runs the app).

The user's own files are made here: `photo.jpg` (a phone JPEG with an EXIF rotation),
`holiday/` (a JPEG and a PNG with alpha), `clip.mp4` (a short video), `MY_PHOTOS/` (photos)
and the teacher `animeganv3.onnx` (a fixed filter). Only knobs that set how long a command
runs are added (`--steps`, `--frames`, the bench's repeats, the export's sizes), and lines
this machine cannot run are left out (buildozer, `make arm64` and `verify`, which need the
Android tool chain and an emulated ARM64 set-up, tests/test_verify.py covers verify; the app
on a camera where there is none)."""
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_image

ROOT = Path(__file__).resolve().parents[1]
NOT_HERE = ("buildozer", "make arm64", "animeedge verify")
CAMERA_LINES = ("animeedge app", "animeedge app --bundle demo_out/bundle --source camera")
SHORTER = {  # command prefix -> options appended (later options win in argparse)
    "animeedge compress": ["--steps", "2", "--report-photos", "2", "--resolutions", "64"],
    "animeedge export": ["--widths", "0.25,1.0", "--resolutions", "64", "--formats", "onnx,tflite"],
    "animeedge bench": ["--warmup", "1", "--runs", "3", "--min-seconds", "0.05", "--rounds", "1", "--no-peers",
                        "--frames", "20"],
    "animeedge app": ["--frames", "20"],
}


def tour_commands() -> list[str]:
    """The tour's shell lines and python blocks, in order."""
    text = (ROOT / "README.md").read_text()
    tour = text[text.index("## A tour"):]
    tour = tour[:tour.index("\n## ", 3)]
    steps = []
    for lang, block in re.findall(r"```(\w*)\n(.*?)```", tour, flags=re.S):
        if lang == "python":
            steps.append(("python", block))
        else:
            steps += [("shell", line.strip()) for line in block.splitlines() if line.strip()]
    return steps


def _user_files(where: Path):
    rng = np.random.default_rng(11)
    portrait = synthetic_image(rng, 96)[:, :72]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees, as a phone writes it
    Image.fromarray(portrait).save(where / "photo.jpg", exif=exif)
    (where / "holiday").mkdir()
    Image.fromarray(synthetic_image(rng, 64)).save(where / "holiday" / "beach.jpg")
    rgba = np.dstack([synthetic_image(rng, 64), np.full((64, 64), 180, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(where / "holiday" / "logo.png")
    video = cv2.VideoWriter(str(where / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(8):
        video.write(np.roll(synthetic_image(rng, 64)[:48], i, axis=1))
    video.release()
    (where / "MY_PHOTOS").mkdir()
    for i in range(6):
        Image.fromarray(synthetic_image(rng, 64)).save(where / "MY_PHOTOS" / f"{i}.png")
    from animeedge.compress.fixed_filter import FixedFilter, onnx_file
    onnx_file(FixedFilter(), where / "animeganv3.onnx", (1, 64, 64, 3))


def _argv(line: str, venv_bin: Path) -> list[str]:
    argv = shlex.split(line)
    for prefix, extra in SHORTER.items():
        if line.startswith(prefix):
            argv += extra
    if argv[0] == "animeedge":
        return [str(venv_bin / "animeedge"), *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return argv


@pytest.mark.slow
@pytest.mark.timeout(5400)  # a clean `make demo` state and the whole tour: 20-40 minutes on 2 cores
def test_every_tour_command_runs_as_written(tmp_path):
    venv_bin = Path(sys.executable).parent
    has_camera = cv2.VideoCapture(0).isOpened()
    _user_files(tmp_path)
    start = time.perf_counter()
    demo = subprocess.run([venv_bin / "animeedge", "demo"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=1800)
    assert demo.returncode == 0, demo.stderr[-3000:]
    print(f"\n{time.perf_counter() - start:6.0f} s  animeedge demo")  # the tour's timings, with -s
    ran = []
    for kind, step in tour_commands():
        if kind == "shell" and any(step.startswith(p) or f"&& {p}" in step for p in NOT_HERE):
            continue
        if kind == "shell" and (step == CAMERA_LINES[0] or step.startswith(CAMERA_LINES[1])) and not has_camera:
            continue
        start = time.perf_counter()
        if kind == "python":
            result = subprocess.run([sys.executable, "-c", step], cwd=tmp_path, capture_output=True, text=True,
                                    timeout=600)
        else:
            result = subprocess.run(_argv(step, venv_bin), cwd=tmp_path, capture_output=True, text=True,
                                    timeout=1800)
        assert result.returncode == 0, f"{step}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, f"{step}\n{result.stderr[-3000:]}"
        print(f"{time.perf_counter() - start:6.0f} s  {step.splitlines()[0]}")
        ran.append(step)
    assert len(ran) == 18 - 2 * (not has_camera), ran  # every tour line but buildozer, make arm64 and verify
    for written in ("styled/photo.jpg", "styled/beach.jpg", "styled/logo.png", "styled/clip.mp4",
                    "runs/student/default.safetensors", "runs/bundle/manifest.json", "photo_anime.png",
                    "bench.json", "bench.md", "bench.png", "build/phone/main.py"):
        assert (tmp_path / written).exists(), written
    with Image.open(tmp_path / "styled/photo.jpg") as out:
        assert out.size == (96, 72)  # the EXIF rotation applied, the size kept
