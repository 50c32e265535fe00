"""Where the face, its parts and the person are in a photo: MediaPipe's face detector, face
mesh (468 points) and selfie segmentation, run with the LiteRT interpreter.

The models ship inside the mediapipe 0.10.14 wheel (Apache-2.0). `python -m animeedge.generator.faces`
(a step of `make install`) fetches that wheel with `pip download --no-deps` and extracts the
three .tflite files under .cache/face_models/; mediapipe itself is never installed. They are
used at training time only, to build targets (generator/semantic.py); no bundle carries them.
"""
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from animeedge.runtimes.atomic import atomic_path
from animeedge.runtimes.errors import UserError

WHEEL = "mediapipe==0.10.14"
MODELS_DIR = Path(__file__).resolve().parents[1] / ".cache" / "face_models"
FILES = {
    "detector": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "mesh": "mediapipe/modules/face_landmark/face_landmark.tflite",
    "person": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
}
MIN_FACE_SCORE = 0.5  # detector and mesh probabilities below this are "no face"
# A picture the detector calls faceless is read as a tight face crop only when the mesh is
# sure. Below that the mesh cannot tell: scikit-image's coffee scores 0.58, and so does a
# blurred, tightly cropped face of photos/calib (its other two such crops: 0.86 and 1.0).
MIN_CROP_FACE_SCORE = 0.8


class FaceModelsMissing(UserError):
    pass


def fetch(folder: Path = MODELS_DIR) -> Path:
    """Download the wheel (no dependencies) and extract the model files; idempotent."""
    if all((folder / Path(p).name).exists() for p in FILES.values()):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", tmp], check=True)
        (wheel,) = Path(tmp).glob("mediapipe-*.whl")
        with zipfile.ZipFile(wheel) as z:
            for member in FILES.values():
                with atomic_path(folder / Path(member).name) as out:
                    out.write_bytes(z.read(member))
    return folder


def _interpreter(name: str, folder: Path):
    from ai_edge_litert.interpreter import Interpreter
    path = folder / Path(FILES[name]).name
    if not path.exists():
        raise FaceModelsMissing(f"{path} is missing: run `make install` (or `python -m animeedge.generator.faces`)")
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return it


def _run(it, x: np.ndarray) -> list[np.ndarray]:
    it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _sigmoid(x):
    return 1 / (1 + np.exp(-np.clip(x, -80, 80)))


def _anchors() -> np.ndarray:
    """The short-range detector's 896 anchor centres (SSD: a 16x16 grid with 2 anchors per
    cell, then an 8x8 grid with 6), in [0, 1] units."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        c = (np.arange(grid) + 0.5) / grid
        yy, xx = np.meshgrid(c, c, indexing="ij")
        out.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], 1), per_cell, axis=0))
    return np.concatenate(out)


@dataclass
class Face:
    points: np.ndarray  # 468 x 2, pixel coordinates in the photo
    score: float
    person: np.ndarray  # H x W person probability in [0, 1]


class FaceFinder:
    """`find(rgb)` -> Face or None for a uint8 RGB photo (the largest face)."""

    def __init__(self, folder: Path = MODELS_DIR):
        self.detector, self.mesh, self.person = (_interpreter(n, folder) for n in ("detector", "mesh", "person"))
        self.anchors = _anchors()

    def _detect(self, rgb) -> tuple[np.ndarray, float] | None:
        """The best face box (cx, cy, w, h in pixels) on the photo letterboxed to a square."""
        side = max(rgb.shape[:2])
        square = cv2.copyMakeBorder(rgb, 0, side - rgb.shape[0], 0, side - rgb.shape[1], cv2.BORDER_CONSTANT)
        x = cv2.resize(square, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
        boxes, scores = _run(self.detector, x)
        scores = _sigmoid(scores[0, :, 0])
        i = int(np.argmax(scores))
        if scores[i] < MIN_FACE_SCORE:
            return None
        raw = boxes[0, i, :4] / 128
        box = np.array([raw[0] + self.anchors[i, 0], raw[1] + self.anchors[i, 1], raw[2], raw[3]]) * side
        return box, float(scores[i])

    def _mesh(self, rgb, box) -> tuple[np.ndarray, float]:
        """468 points from a square crop 1.5x the box (mesh's own margin), mapped back."""
        cx, cy, w, h = box
        half = 0.75 * max(w, h)
        x0, y0 = cx - half, cy - half
        scale = 192 / (2 * half)
        m = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float32)
        crop = cv2.warpAffine(rgb, m, (192, 192), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        points, score = _run(self.mesh, crop.astype(np.float32) / 255)
        pts = points.reshape(468, 3)[:, :2] / scale + [x0, y0]
        return pts, float(_sigmoid(score.ravel()[0]))

    def _person(self, rgb) -> np.ndarray:
        x = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        (mask,) = _run(self.person, x)
        return cv2.resize(mask[0, :, :, 0], (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)

    def find(self, rgb: np.ndarray) -> Face | None:
        found = self._detect(rgb)
        minimum = MIN_FACE_SCORE
        if found is None:  # perhaps a tight face crop: the whole picture is the face box
            h, w = rgb.shape[:2]
            found, minimum = (np.array([w / 2, h / 2, w / 1.5, h / 1.5]), 0.0), MIN_CROP_FACE_SCORE
        points, score = self._mesh(rgb, found[0])
        if score < minimum:
            return None
        return Face(points, score, self._person(rgb))


if __name__ == "__main__":
    print(fetch())
