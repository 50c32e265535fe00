"""The one decision of what runs (runtimes/choose.py): the manifest's recommendation, the
fidelity gate, an explicit request, a missing width; and a width outside the usual four
runs through every entry point."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import _folder
from animeedge.runtimes.choose import FASTEST, choose
from animeedge.runtimes.errors import UserError


def _artifact(fmt, precision, width, resolution=256, psnr=60.0):
    return {"format": fmt, "precision": precision, "width": width, "resolution": resolution,
            "resolutions": [resolution], "file": f"{fmt}/w{width}_{precision}", "fidelity": {"psnr_db": psnr}}


def _manifest(recommended=None, by_width=None, speed=None):
    arts = [_artifact(f, p, w, r) for f in ("onnx", "tflite") for p in ("fp32", "int8") for w in (0.25, 1.0)
            for r in (128, 256)]
    return {"artifacts": arts, "recommended_precision": recommended or {"onnx": "fp32", "tflite": "int8"},
            "recommended_precision_by_width": by_width or {}, "speed": {"p50_ms": speed or {}}}


def test_with_nothing_asked_the_manifest_decides_and_says_why():
    choice = choose(_manifest())
    a = choice.artifact
    assert (a["format"], a["precision"], a["width"], a["resolution"]) == ("onnx", "fp32", 1.0, 256)
    assert "first of onnx, tflite" in choice.why and "widest" in choice.why and "largest" in choice.why


def test_the_recommendation_for_the_width_wins_over_the_format_s():
    m = _manifest(by_width={"tflite": {"0.25": "fp32", "1.0": "int8"}})
    assert choose(m, "tflite", width=0.25).artifact["precision"] == "fp32"
    assert choose(m, "tflite", width=1.0).artifact["precision"] == "int8"


def test_a_precision_the_fidelity_gate_refused_is_never_chosen_unasked():
    # the export recommends onnx fp32 because its int8 failed the gate, though int8 is faster
    m = _manifest(speed={"onnx": {"fp32": 50.0, "int8": 10.0}, "tflite": {"fp32": 40.0, "int8": 30.0}})
    first = choose(m, FASTEST).artifact
    assert (first["format"], first["precision"]) == ("tflite", "int8")  # onnx's 10 ms is not on offer
    m["recommended_precision"]["tflite"] = "fp32"
    first = choose(m, FASTEST).artifact
    assert (first["format"], first["precision"]) == ("tflite", "fp32")


def test_an_explicit_request_is_obeyed():
    a = choose(_manifest(), "tflite", "fp32", 0.25, 128).artifact
    assert (a["format"], a["precision"], a["width"], a["resolution"]) == ("tflite", "fp32", 0.25, 128)


def test_a_missing_width_names_the_widths_held():
    with pytest.raises(UserError, match=r"no onnx width 0.5; it has 0.25, 1.0"):
        choose(_manifest(), width=0.5)


@pytest.fixture(scope="module")
def odd_width_bundle(tmp_path_factory):
    from animeedge.compress.export import BundleExporter
    from animeedge.generator.checkpoint import DEFAULT_MODEL
    tmp = tmp_path_factory.mktemp("odd")
    return BundleExporter(DEFAULT_MODEL, tmp / "bundle", ["onnx", "tflite"], ["fp32"], [0.3, 1.0], [32],
                          _folder(tmp / "photos", 2, n=4, size=40), progress=False).run()


def test_a_width_of_0_3_runs_through_load_stylize_and_the_app(odd_width_bundle, tmp_path):
    from PIL import Image

    from animeedge.runtimes.load import load
    assert load(odd_width_bundle, width=0.3).width == 0.3
    assert load(odd_width_bundle, width=0.3)(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30, 3)
    Image.new("RGB", (30, 20), (90, 120, 200)).save(tmp_path / "p.png")
    run = subprocess.run([sys.executable, "-m", "animeedge", "stylize", tmp_path / "p.png", "--model",
                          odd_width_bundle, "--width", "0.3", "--out", tmp_path / "out"], capture_output=True, text=True)
    assert run.returncode == 0 and "width 0.3," in run.stdout, run.stderr
    app = subprocess.run([sys.executable, "-m", "animeedge", "app", "--bundle", odd_width_bundle, "--source",
                          "synthetic", "--frames", "3", "--width", "0.3", "--threads", "1"], capture_output=True,
                         text=True, timeout=300)
    assert app.returncode == 0, app.stderr[-2000:]
    assert json.loads(app.stdout.strip().splitlines()[-1])["width"] == 0.3
