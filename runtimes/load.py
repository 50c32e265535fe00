"""`load(bundle, width, resolution, backend, precision)`: pick an artifact from a bundle's
manifest, check it, and return a Stylizer (uint8 RGB HxWx3 in and out). No torch here."""
import platform

import numpy as np

from .backends import SESSIONS
from .errors import UserError
from .manifest import load_manifest, verify_artifact
from .processing import check_frame, from_nchw, from_nhwc, processing_size, resize, to_nchw, to_nhwc

BACKENDS = ("auto", "onnx", "tflite", "coreml")


class Stylizer:
    """Runs one artifact. Files with a fixed input size get the frame scaled to fit (aspect
    kept) and reflect-padded to the square; the padding is cropped away afterwards."""

    def __init__(self, session, artifact: dict):
        self.session, self.artifact = session, artifact
        self.backend, self.precision = artifact["format"], artifact["precision"]
        self.width, self.resolution = artifact["width"], artifact["resolution"]
        self.fixed = all(isinstance(d, int) for d in artifact["input"].get("shape", ["H"]))
        # frames go straight into the file's layout: no transpose there and back per frame
        self.to_input, self.from_output = (to_nhwc, from_nhwc) if session.nhwc else (to_nchw, from_nchw)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        check_frame(rgb)
        h, w = rgb.shape[:2]
        ph, pw = processing_size(h, w, self.resolution)
        x = resize(rgb, ph, pw)
        if self.fixed:
            r = self.resolution
            x = np.pad(x, ((0, r - ph), (0, r - pw), (0, 0)), mode="reflect" if min(ph, pw) > 1 else "edge")
        y = self.from_output(self.session.run_native(self.to_input(x)))[:ph, :pw]
        return resize(y, h, w)


def _keep(artifacts, key, wanted, what) -> list:
    """The artifacts whose `key` is `wanted`; a clear error naming the choices if none."""
    kept = [a for a in artifacts if a[key] == wanted]
    if not kept:
        values = ", ".join(map(str, sorted({a[key] for a in artifacts})))
        raise UserError(f"the bundle has no {what} {wanted}; it has {values}")
    return kept


def select(manifest: dict, width=1.0, resolution=None, backend="auto", precision=None) -> dict:
    formats = sorted({a["format"] for a in manifest["artifacts"]})
    if backend == "auto":
        order = ["coreml", "onnx", "tflite"] if platform.system() == "Darwin" else ["onnx", "tflite"]
        backend = next((f for f in order if f in formats), None)
        if backend is None:
            raise UserError(f"the bundle holds only {', '.join(formats)}, which cannot run on this system")
    elif backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    arts = _keep(manifest["artifacts"], "format", backend, "format")
    precision = precision or manifest["recommended_precision"].get(backend, "fp32")
    arts = _keep(arts, "precision", precision, f"{backend} precision")
    arts = _keep(arts, "width", float(width), f"{backend} {precision} width")
    if resolution is None:
        return max(arts, key=lambda a: a["resolution"])
    exact = [a for a in arts if a["resolution"] == resolution]
    dynamic = [a for a in arts if resolution in a["resolutions"]]
    if not exact and not dynamic:
        raise UserError(f"the bundle has no {backend} {precision} width-{width} artifact for resolution {resolution}; "
                        f"it has {', '.join(str(a['resolution']) for a in arts)}")
    return dict(exact[0] if exact else dynamic[0], resolution=resolution)


def load(bundle, width=1.0, resolution=None, backend="auto", precision=None, threads=None) -> Stylizer:
    manifest = load_manifest(bundle)
    artifact = select(manifest, width, resolution, backend, precision)
    path = verify_artifact(bundle, artifact)
    return Stylizer(SESSIONS[artifact["format"]](path, artifact, threads), artifact)
