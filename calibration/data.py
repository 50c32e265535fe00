"""The calibration set for quantization and the held-out photos that measure each exported
artifact: where the shared research data live, which photos are used, and how they are sized.

Policy: the photos of one folder, sorted by name; even-numbered ones calibrate int8
(CALIB_PHOTOS at most), odd-numbered ones evaluate (EVAL_PHOTOS at most), so the two never
overlap. Each photo is resized (bicubic, aspect not kept: portraits are near-square) to the
square resolution being calibrated, as float32 1x3xRxR in [-1, 1], loaded once per resolution.
"""
import os
from pathlib import Path

from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import regular_file
from animeedge.runtimes.imageio import list_images, load_square
from animeedge.runtimes.processing import to_nchw

CALIB_PHOTOS, EVAL_PHOTOS = 32, 8


SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "colorwheel", "camera")  # scikit-image's own pictures, public domain or CC0: the project may ship them


def shared_root() -> Path:
    return Path(os.environ.get("ANIMEEDGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared_data(sub: str, flag: str = "the folder") -> Path:
    """A folder of $ANIMEEDGE_DATA, else of ../shared/data beside the checkout (the
    project's research data); the error names the option that gives a folder instead."""
    path = shared_root() / sub
    if not path.is_dir():
        raise UserError(f"no {flag} given, and no research data folder {path}: pass {flag} MY_PHOTOS/ "
                        "(or set ANIMEEDGE_DATA)")
    return path


def has_shared_data(sub: str) -> bool:
    return (shared_root() / sub).is_dir()


def sample_photos() -> Path:
    """scikit-image's sample pictures, written once to the user's cache folder: the
    calibration and evaluation set used where no photos are given (needs scikit-image)."""
    import skimage.data

    from animeedge.runtimes.imageio import write_image
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "animeedge" / "sample-photos"
    for i, name in enumerate(SAMPLE_PHOTOS):
        path = folder / f"{i}_{name}.png"
        if not path.is_file():
            write_image(path, getattr(skimage.data, name)())
    return folder


def photos_or_samples(given, sub: str) -> tuple[Path, str]:
    """(folder, what it is): the photos given, else the research data's `sub` where this
    checkout has it, else the sample pictures."""
    if given:
        return Path(given), str(given)
    if has_shared_data(sub):
        return shared_data(sub), f"research data {sub}"
    return sample_photos(), f"{len(SAMPLE_PHOTOS)} scikit-image sample pictures (built in)"


class CalibrationSet:
    def __init__(self, folder, n_calib=CALIB_PHOTOS, n_eval=EVAL_PHOTOS):
        try:
            files = list_images(folder)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
        if len(files) < 2:
            raise UserError(f"{folder}: needs at least 2 photos for calibration and evaluation")
        self.calib_files, self.eval_files = files[0::2][:n_calib], files[1::2][:n_eval]
        for f in self.calib_files + self.eval_files:  # now, not minutes into an export (a FIFO would block)
            regular_file(f, "photo")
        self._cache = {}

    def _load(self, kind, files, res):
        if (kind, res) not in self._cache:
            self._cache[kind, res] = [to_nchw(load_square(f, res)) for f in files]
        return self._cache[kind, res]

    def calib(self, res):
        return self._load("calib", self.calib_files, res)

    def eval(self, res):
        return self._load("eval", self.eval_files, res)
