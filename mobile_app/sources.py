"""Frame sources behind one interface: `read()` returns the next uint8 RGB HxWx3 frame, or
None when there is none right now (a camera that is missing or lost); `status` says why in
words the UI can show. No torch, no Kivy.

- CameraSource: OpenCV VideoCapture, for `camera` or `camera:N` (N < 1000) only (a file
  named camera_roll.avi is a file). A camera that is absent or disappears is retried every
  RETRY_SECONDS; meanwhile read() returns None and status explains (the app's unattended
  mode gives up after a bounded wait).
- VideoSource: a video file, looping.
- FolderSource: the images of a folder (or one image), looping, decoded one at a time as
  they are shown; unreadable files (and FIFOs, which would block) are skipped with a warning.
The content decides between picture and video, not the name (a JPEG named .mp4 is a
picture).
- SyntheticSource: a moving picture made here (discs drifting over a gradient).
"""
import os
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import regular_file
from animeedge.runtimes.imageio import image_format, list_images, read_image
from animeedge.runtimes.video import VIDEO_EXTS

RETRY_SECONDS = 2.0
MAX_SIDE = 1920  # pictures from a folder are shown at most this large


class FrameSource:
    name = "source"
    status = ""
    path = None  # where captures go: next to the input (a folder), else the working folder

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self):
        pass


class CameraSource(FrameSource):
    live = True

    def __init__(self, index: int = 0, size=(640, 480), capture=cv2.VideoCapture):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # it warns on every retry of a missing camera
        self.index, self.size, self._capture = index, size, capture
        self.name = f"camera {index}"
        self.cap, self._next_try = None, 0.0
        self._open()

    def _open(self):
        self._next_try = time.monotonic() + RETRY_SECONDS
        cap = self._capture(self.index)
        if cap is not None and cap.isOpened():
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            self.cap, self.status = cap, ""
        else:
            self.cap, self.status = None, f"No camera found ({self.name}); retrying. Try --source VIDEO or FOLDER."

    def read(self):
        if self.cap is None:
            if time.monotonic() >= self._next_try:
                self._open()
            return None
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            self.cap.release()
            self.cap, self.status = None, f"Camera lost ({self.name}); retrying."
            self._next_try = time.monotonic() + RETRY_SECONDS
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self):
        if self.cap is not None:
            self.cap.release()


class VideoSource(FrameSource):
    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name
        self.cap = None
        self._first = self._rewind()
        if self._first is None:
            raise UserError(f"{self.path}: cannot read this video")

    def _rewind(self) -> np.ndarray | None:
        """Reopen the file and read its first frame: seeking back to frame 0 is not reliable
        (a 1-frame MJPEG .avi reads nothing after the seek)."""
        if self.cap is not None:
            self.cap.release()
        self.cap = cv2.VideoCapture(str(self.path))
        ok, bgr = self.cap.read() if self.cap.isOpened() else (False, None)
        return bgr if ok else None

    def read(self):
        bgr, self._first = self._first, None
        if bgr is None:
            ok, bgr = self.cap.read()
            if not ok:  # end of file: loop
                bgr = self._rewind()
        self.status = "" if bgr is not None else f"Cannot read a frame from {self.name}."
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr is not None else None

    def close(self):
        self.cap.release()


class FolderSource(FrameSource):
    """The pictures are decoded one at a time, when read (a folder of large pictures does not
    fit in memory at once). At start only headers are read, and the first picture decoded."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name
        skipped = []
        self.files = [f for f in (list_images(self.path) if self.path.is_dir() else [self.path])
                      if _picture_header(f, skipped)]
        self.i, self._last = -1, (None, None)
        while self.files and self._decode(0, skipped) is None:
            pass
        if not self.files:
            raise UserError(f"{self.path}: no readable images ({'; '.join(skipped[:3])})")
        _warn_skipped(self.path, skipped)

    def _decode(self, i: int, skipped: list) -> np.ndarray | None:
        """files[i] decoded (the last one is kept: a single picture is decoded once); an
        unreadable one is dropped from the list and noted in `skipped`."""
        f = self.files[i]
        if self._last[0] != f:
            try:
                self._last = (f, _fit(read_image(regular_file(f, "picture"))[0]))
            except UserError as exc:
                skipped.append(f"{f.name} ({exc})")
                del self.files[i]
                return None
        return self._last[1]

    def read(self):
        skipped, frame = [], None
        while self.files and frame is None:
            self.i = (self.i + 1) % len(self.files)
            frame = self._decode(self.i, skipped)
            self.i -= frame is None  # the list shrank: the next file is at the same index
        _warn_skipped(self.path, skipped)
        self.status = "" if frame is not None else f"No readable pictures left in {self.name}."
        return frame


def _fit(rgb: np.ndarray) -> np.ndarray:
    """A picture scaled down to MAX_SIDE: a frame the size of a screen, as a camera gives
    (an 81 MP photo would be copied to the GPU and kept whole per frame)."""
    scale = MAX_SIDE / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _picture_header(f: Path, skipped: list) -> bool:
    """Whether f is a regular file whose header says picture (nothing is decoded; a FIFO
    is not opened)."""
    try:
        if image_format(regular_file(f, "picture")):
            return True
        skipped.append(f"{f.name} (not a picture)")
    except UserError as exc:
        skipped.append(str(exc))  # it names the file
    return False


def _warn_skipped(path, skipped):
    if skipped:
        print(f"animeedge: warning: skipped {len(skipped)} unreadable file(s) in {path}: "
              + "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else ""), file=sys.stderr)


class SyntheticSource(FrameSource):
    name = "synthetic"

    def __init__(self, size=(640, 480)):
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.base = np.stack([yy / h, xx / w, 1 - yy / h], -1) * 200
        self.yy, self.xx, self.t = yy, xx, 0

    def read(self):
        self.t += 1
        frame = self.base.copy()
        h, w = self.yy.shape
        for k, colour in enumerate(((250, 220, 190), (40, 40, 60), (230, 80, 90))):
            cy = h * (0.5 + 0.3 * np.sin(self.t / 30 + 2 * k))
            cx = w * (0.5 + 0.3 * np.cos(self.t / 40 + k))
            frame[(self.yy - cy) ** 2 + (self.xx - cx) ** 2 < (h / (5 + 2 * k)) ** 2] = colour
        return frame.astype(np.uint8)


CAMERA = re.compile(r"camera(?::(\d{1,3}))?", re.ASCII)  # camera, camera:0 .. camera:999


def open_source(spec: str | None) -> FrameSource:
    """camera[:N], synthetic, a video file, an image folder or an image."""
    spec = spec or "camera"
    if spec == "synthetic":
        return SyntheticSource()
    camera = CAMERA.fullmatch(spec)
    path = Path(spec)
    if camera:
        index = int(camera.group(1) or 0)
        if "ANDROID_ARGUMENT" in os.environ or sys.platform == "ios":  # no VideoCapture camera there
            from .platform_camera import KivyCameraSource
            return KivyCameraSource(index)
        return CameraSource(index)
    if spec.startswith("camera:") and not os.path.lexists(spec):
        raise UserError(f"camera index must be a number from 0 to 999: {spec!r}")
    if not path.exists():
        raise UserError(f"{spec}: no such file or folder (sources: camera, camera:N, synthetic, VIDEO, FOLDER)")
    if path.is_dir():
        try:
            return FolderSource(path)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
    if image_format(regular_file(path, "video or picture")):
        return FolderSource(path)
    if path.suffix.lower() in VIDEO_EXTS:
        return VideoSource(path)
    raise UserError(f"{spec}: not a video, image or folder")
