"""Video files through OpenCV: read RGB frames, write them back (audio is not carried).

OpenCV's writer reports no error when a frame is not stored (a full disk, a codec that
gives up), so a written video is read back on close and must hold every frame written."""
from pathlib import Path

import cv2
import numpy as np

from .errors import UserError
from .files import problem

VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"}
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


class VideoError(UserError):
    pass


def output_name(path: Path) -> str:
    """Same name where OpenCV can write the container, else .mp4."""
    return path.name if path.suffix.lower() in FOURCC else path.stem + ".mp4"


def count_frames(path) -> int:
    """Frames OpenCV can read back from a video file."""
    cap, count = cv2.VideoCapture(str(path)), 0
    while cap.grab():
        count += 1
    cap.release()
    return count


class VideoReader:
    def __init__(self, path):
        why = problem(path, "video")
        if why is not None:
            raise VideoError(f"{path}: {why}")
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise VideoError("cannot open video")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        self.frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def __iter__(self):
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                break
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self.cap.release()


class VideoWriter:
    def __init__(self, path: Path, fps: float, size_wh: tuple[int, int]):
        code = FOURCC.get(path.suffix.lower(), "mp4v")
        self.path, self.written = path, 0
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), fps, size_wh)
        if not self.writer.isOpened():
            raise VideoError(f"cannot write {path.suffix} video")

    def write(self, rgb: np.ndarray):
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.written += 1

    def close(self):
        """Finish the file and check that it holds every frame written (a VideoError if not)."""
        self.writer.release()
        stored = count_frames(self.path)
        if stored != self.written:
            raise VideoError(f"the video writer stored {stored} of {self.written} frames (is the disk full?)")
