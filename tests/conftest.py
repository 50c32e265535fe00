import os
import subprocess
import sys
import tempfile

# Kivy reads these at import (../shared/notes/kivy-headless.md): headless, no config or log files
os.environ.update(KIVY_NO_ARGS="1", KIVY_NO_CONFIG="1", KIVY_NO_FILELOG="1", KIVY_LOG_MODE="PYTHON",
                  KIVY_HOME=tempfile.mkdtemp(prefix="kivy-"), SDL_VIDEODRIVER="offscreen", SDL_AUDIODRIVER="dummy")
# the self-tuning cache of runtimes.load(precision="auto"): the suite's own, never the user's
os.environ["ANIMEEDGE_CACHE"] = tempfile.mkdtemp(prefix="animeedge-cache-")

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


def synthetic_image(rng, size=48) -> np.ndarray:
    """A smooth random picture: a colour gradient with a few filled discs."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([yy, xx, 1 - yy], -1) * rng.uniform(0.3, 1.0, 3)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.1, 0.3)]
        base[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return (base * 255).clip(0, 255).astype(np.uint8)


def _folder(path, seed, n=6, size=48):
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(synthetic_image(rng, size)).save(path / f"{i:03d}.png")
    return path


@pytest.fixture
def photo_dir(tmp_path):
    return _folder(tmp_path / "photos", 1)


@pytest.fixture
def anime_dir(tmp_path):
    return _folder(tmp_path / "anime", 2)


@pytest.fixture
def tiny_config():
    from animeedge.generator.train import load_config
    return load_config("tiny")


def run_cli(*args, check=None):
    """Run the real console entry point in a subprocess; returns CompletedProcess."""
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "animeedge", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def tiny_model_path(tmp_path):
    from animeedge.generator.checkpoint import save_generator
    from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
    torch.manual_seed(0)
    g = DoubleTailGenerator(GeneratorConfig(base_channels=8, tail_blocks=1))
    with torch.no_grad():  # an untrained init maps everything to nearly one colour
        for name, p in g.named_parameters():
            if name.endswith("weight"):
                p.normal_(0, 0.4)
    path = tmp_path / "tiny.safetensors"
    save_generator(g, path)
    return path


BUNDLE_RES, BUNDLE_RES2 = 32, 48


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """The embedded default exported once per session: 3 formats x (fp32, int8) x widths
    (0.5, 1.0) at BUNDLE_RES and BUNDLE_RES2, calibrated on synthetic photos."""
    from animeedge.compress.export import BundleExporter
    from animeedge.generator.checkpoint import DEFAULT_MODEL
    tmp = tmp_path_factory.mktemp("export")
    photos = _folder(tmp / "photos", 3, n=6, size=64)
    out = BundleExporter(DEFAULT_MODEL, tmp / "bundle", precisions=("fp32", "int8"), widths=(0.5, 1.0),
                         resolutions=(BUNDLE_RES, BUNDLE_RES2), calib=photos, progress=False).run()
    return out, DEFAULT_MODEL


@pytest.fixture(scope="session")
def teacher_form_bundle(tmp_path_factory):
    """The default's widths in the teacher's own form (Double-Tail + LADE), int8 only: what
    `export --teacher-form` ships."""
    from animeedge.compress.export import BundleExporter
    from animeedge.generator.checkpoint import TEACHER_FORM_MODEL
    tmp = tmp_path_factory.mktemp("teacher_form")
    photos = _folder(tmp / "photos", 3, n=6, size=64)
    out = BundleExporter(TEACHER_FORM_MODEL, tmp / "bundle", formats=("onnx", "tflite"), precisions=("int8",),
                         widths=(0.5,), resolutions=(BUNDLE_RES,), calib=photos, progress=False).run()
    return out, TEACHER_FORM_MODEL
