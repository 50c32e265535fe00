"""The phone camera through Kivy's Camera widget (its Android and iOS providers), as a frame
source. OpenCV's VideoCapture has no camera backend in python-for-android or kivy-ios builds,
so on a phone this source replaces CameraSource.

Kivy delivers camera frames as a GL texture on the UI thread: each new texture is read back
there (`texture.pixels`, RGBA) into a one-item slot, and `read()` (the pipeline's reader
thread) takes the newest. Not verified here: these machines have no camera and cannot build
for a phone (README, "Phones").
"""
import numpy as np

from .pipeline import LatestSlot
from .sources import FrameSource


class KivyCameraSource(FrameSource):
    name = "phone camera"
    live = True

    def __init__(self, index=0, resolution=(640, 480)):
        from kivy.uix.camera import Camera
        self.slot = LatestSlot()
        try:
            self.camera = Camera(index=index, resolution=resolution, play=True)
        except Exception as exc:  # no camera, or no permission: Kivy raises in the constructor
            self.camera, self.status = None, f"No camera available ({exc}); check the camera permission."
            return
        self.camera.bind(texture=self._on_texture)
        self.camera._camera.bind(on_texture=self._on_texture)

    def _on_texture(self, *_):
        texture = self.camera.texture
        if texture is not None:
            w, h = texture.size
            rgba = np.frombuffer(texture.pixels, np.uint8).reshape(h, w, 4)
            self.slot.put(np.ascontiguousarray(rgba[::-1, :, :3]))  # GL rows run bottom-up

    def read(self):
        return self.slot.take(timeout=0.1) if self.camera is not None else None

    def close(self):
        if self.camera is not None:
            self.camera.play = False
