"""Frame sources behind one interface: `read()` returns the next uint8 RGB HxWx3 frame, or
None when there is none right now (a camera that is missing or lost); `status` says why in
words the UI can show. No torch, no Kivy.

- CameraSource: OpenCV VideoCapture. A camera that is absent or disappears is retried every
  RETRY_SECONDS; meanwhile read() returns None and status explains (the app's unattended
  mode gives up after a bounded wait).
- VideoSource: a video file, looping.
- FolderSource: the images of a folder (or one image), looping; unreadable files are
  skipped with one warning.
The content decides between picture and video, not the name (a JPEG named .mp4 is a
picture).
- SyntheticSource: a moving picture made here (discs drifting over a gradient).
"""
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from runtimes.errors import UserError
from runtimes.imageio import ImageReadError, image_format, list_images, read_image
from runtimes.video import VIDEO_EXTS

RETRY_SECONDS = 2.0


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
        self.cap = cv2.VideoCapture(str(self.path))
        ok, _ = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok:
            raise UserError(f"{self.path}: cannot read this video")
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def read(self):
        ok, bgr = self.cap.read()
        if not ok:  # end of file: loop
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.cap.read()
        self.status = "" if ok else f"Cannot read a frame from {self.name}."
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def close(self):
        self.cap.release()


class FolderSource(FrameSource):
    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name
        files = [self.path] if self.path.is_file() else list_images(self.path)
        self.frames, skipped = [], []
        for f in files:
            try:
                self.frames.append(read_image(f)[0])
            except ImageReadError as exc:
                skipped.append(f"{f.name} ({exc})")
        if not self.frames:
            raise UserError(f"{self.path}: no readable images ({'; '.join(skipped[:3])})")
        if skipped:
            print(f"animeedge: warning: skipped {len(skipped)} unreadable file(s) in {self.path}: "
                  + "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else ""), file=sys.stderr)
        self.i = -1

    def read(self):
        self.i = (self.i + 1) % len(self.frames)
        return self.frames[self.i]


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


def open_source(spec: str | None) -> FrameSource:
    """camera[:N], synthetic, a video file, an image folder or an image."""
    spec = spec or "camera"
    if spec == "synthetic":
        return SyntheticSource()
    if spec.startswith("camera"):
        index = spec.partition(":")[2]
        if index and not index.isdigit():
            raise UserError(f"camera index must be a number: {spec!r}")
        if "ANDROID_ARGUMENT" in os.environ or sys.platform == "ios":  # no VideoCapture camera there
            from .platform_camera import KivyCameraSource
            return KivyCameraSource(int(index or 0))
        return CameraSource(int(index or 0))
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{spec}: no such file or folder (sources: camera, camera:N, synthetic, VIDEO, FOLDER)")
    if path.is_dir() or image_format(path):
        try:
            return FolderSource(path)
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
    if path.suffix.lower() in VIDEO_EXTS and path.is_file():
        return VideoSource(path)
    raise UserError(f"{spec}: not a video, image or folder")
