"""The calibration set for quantization and the held-out photos that measure each exported
artifact: where the shared research data live, which photos are used, and how they are sized.

Policy: the photos of one folder, sorted by name; even-numbered ones calibrate int8
(CALIB_PHOTOS at most), odd-numbered ones evaluate (EVAL_PHOTOS at most), so the two never
overlap. Each photo is resized (bicubic, aspect not kept: portraits are near-square) to the
square resolution being calibrated, as float32 1x3xRxR in [-1, 1], loaded once per resolution.
"""
import os
from pathlib import Path

from runtimes.errors import UserError
from runtimes.imageio import list_images, load_square
from runtimes.processing import to_nchw

CALIB_PHOTOS, EVAL_PHOTOS = 32, 8


def shared_data(sub: str) -> Path:
    """A folder of $ANIMEEDGE_DATA, else of ../shared/data beside the checkout."""
    root = Path(os.environ.get("ANIMEEDGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / sub
    if not path.is_dir():
        raise UserError(f"no data folder {path}; pass the folder explicitly or set ANIMEEDGE_DATA")
    return path


class CalibrationSet:
    def __init__(self, folder, n_calib=CALIB_PHOTOS, n_eval=EVAL_PHOTOS):
        try:
            files = list_images(folder)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
        if len(files) < 2:
            raise UserError(f"{folder}: needs at least 2 photos for calibration and evaluation")
        self.calib_files, self.eval_files = files[0::2][:n_calib], files[1::2][:n_eval]
        self._cache = {}

    def _load(self, kind, files, res):
        if (kind, res) not in self._cache:
            self._cache[kind, res] = [to_nchw(load_square(f, res)) for f in files]
        return self._cache[kind, res]

    def calib(self, res):
        return self._load("calib", self.calib_files, res)

    def eval(self, res):
        return self._load("eval", self.eval_files, res)
