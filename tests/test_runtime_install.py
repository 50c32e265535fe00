"""The torch-free runtime installs and runs on a Python other than the training one (slow:
a fresh virtual environment and a `pip install` of the package without extras)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OTHER_PYTHONS = ("python3.12", "python3.10", "python3.13")


def _runs(python) -> bool:
    """Whether `python` starts (a pyenv shim for a version not selected exits 127)."""
    try:
        return subprocess.run([python, "-c", "pass"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def _other_python():
    mine = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [shutil.which(name) for name in OTHER_PYTHONS if name != mine]
    found += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.1[023]*/bin/python") if mine[6:] not in p.parts[-3])
    return next((python for python in found if python and _runs(python)), None)


@pytest.mark.slow
def test_the_runtime_installs_and_stylizes_on_another_python(bundle, tmp_path):
    python = _other_python()
    if python is None:
        pytest.skip(f"none of {', '.join(OTHER_PYTHONS)} is on the PATH")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", str(ROOT)], capture_output=True,
                         text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-2000:]
    bundle_dir, _ = bundle
    code = ("import importlib.util, sys, numpy as np\n"
            "from animeedge.runtimes.load import load\n"
            "assert importlib.util.find_spec('torch') is None\n"
            f"s = load({str(bundle_dir)!r}, width=0.5, backend=sys.argv[1], precision='fp32')\n"
            "y = s(np.full((40, 56, 3), 128, np.uint8))\n"
            "print(y.shape, y.dtype, sys.version_info[:2])\n")
    for backend in ("onnx", "tflite"):
        run = subprocess.run([venv / "bin/python", "-c", code, backend], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.startswith("(40, 56, 3) uint8"), run.stdout
