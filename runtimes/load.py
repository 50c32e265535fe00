"""`load(path, width, resolution, backend, precision, threads)`: a Stylizer (uint8 RGB HxWx3
in and out) for a bundle (the artifact is picked from its manifest), a single exported file
(.onnx, .tflite, .mlpackage: its bundle's manifest entry when it sits in one, else described
from the file itself), or, with backend="torch" where torch is installed, a generator
checkpoint as the reference. Files listed in a manifest are sha256-checked before loading,
every file's operators are checked before a runtime sees it (runtimes/opset.py), and every
output is checked (finite, the expected shape). No torch import unless backend="torch" is
asked for."""
import importlib.util
import platform
from pathlib import Path

import numpy as np

from .backends import SESSIONS, describe_file, first_line
from .errors import UserError
from .manifest import MANIFEST, load_manifest, os_errors, verify_artifact
from .processing import (MIN_SIDE, check_frame, check_resolution, check_threads, from_nchw, from_nhwc,
                         processing_size, resize, to_nchw, to_nhwc)

BACKENDS = ("auto", "onnx", "tflite", "coreml", "torch")
SUFFIXES = {".onnx": "onnx", ".tflite": "tflite", ".mlpackage": "coreml"}


class Stylizer:
    """Runs one artifact. Files with a fixed input size get the frame scaled to fit (aspect
    kept) and reflect-padded to the square; frames thinner than MIN_SIDE (a 5000x1 strip) are
    edge-padded to it, because the graph's own reflect padding needs that much. The padding
    is cropped away afterwards. An output that is not finite or not the input's size (batch
    1, 3 channels) is a UserError for that frame."""

    def __init__(self, session, artifact: dict):
        self.session, self.artifact = session, artifact
        self.backend, self.precision = artifact["format"], artifact["precision"]
        self.width, self.resolution = artifact["width"], artifact["resolution"]
        self.fixed = all(isinstance(d, int) for d in artifact["input"].get("shape", ["H"]))
        # frames go straight into the file's layout: no transpose there and back per frame
        self.to_input, self.from_output = (to_nhwc, from_nhwc) if session.nhwc else (to_nchw, from_nchw)

    def prepare(self, rgb: np.ndarray):
        """uint8 RGB frame -> (the model's input, the geometry `finish` needs)."""
        check_frame(rgb)
        h, w = rgb.shape[:2]
        ph, pw = processing_size(h, w, self.resolution)
        x = resize(rgb, ph, pw)
        th, tw = (self.resolution, self.resolution) if self.fixed else (max(ph, MIN_SIDE), max(pw, MIN_SIDE))
        if (th, tw) != (ph, pw):
            x = np.pad(x, ((0, th - ph), (0, tw - pw), (0, 0)), mode="reflect" if min(ph, pw) > 1 else "edge")
        return self.session.prepare(self.to_input(x)), (h, w, ph, pw, th, tw)

    def invoke(self, x):
        """The model alone (what `bench` times as model-only)."""
        try:
            return self.session.invoke(x)
        except Exception as exc:
            raise UserError(f"{self.artifact['file']}: the model failed on this frame ({first_line(exc)})") from None

    def finish(self, y, geometry) -> np.ndarray:
        h, w, ph, pw, th, tw = geometry
        self._check_output(y, th, tw)
        return resize(self.from_output(self.session.finish(y))[:ph, :pw], h, w)

    def _check_output(self, y, th, tw):
        expected = (1, th, tw, 3) if self.session.nhwc else (1, 3, th, tw)
        if not isinstance(y, np.ndarray) or y.shape != expected:
            raise UserError(f"{self.artifact['file']}: the model returned shape {tuple(np.shape(y))}, not {expected} "
                            f"for a {th}x{tw} input; refused")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise UserError(f"{self.artifact['file']}: the model returned NaN or infinity; refused")

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x, geometry = self.prepare(rgb)
        return self.finish(self.invoke(x), geometry)


def _keep(artifacts, key, wanted, what) -> list:
    """The artifacts whose `key` is `wanted`; a clear error naming the choices if none."""
    kept = [a for a in artifacts if a[key] == wanted]
    if not kept:
        values = ", ".join(map(str, sorted({a[key] for a in artifacts})))
        raise UserError(f"the bundle has no {what} {wanted}; it has {values}")
    return kept


def select(manifest: dict, width=None, resolution=None, backend="auto", precision=None) -> dict:
    """The artifact to run. `width` None: the widest the bundle holds for the backend (and
    precision, where given)."""
    formats = sorted({a["format"] for a in manifest["artifacts"]})
    if backend == "auto":
        order = ["coreml", "onnx", "tflite"] if platform.system() == "Darwin" else ["onnx", "tflite"]
        backend = next((f for f in order if f in formats), None)
        if backend is None:
            raise UserError(f"the bundle holds only {', '.join(formats)}, which cannot run on this system")
    elif backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    arts = _keep(manifest["artifacts"], "format", backend, "format")
    if width is None:
        width = max([a["width"] for a in arts if precision in (None, a["precision"])] or [a["width"] for a in arts])
    by_width = manifest.get("recommended_precision_by_width", {}).get(backend, {})
    precision = precision or by_width.get(str(float(width))) or manifest["recommended_precision"].get(backend, "fp32")
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


def _listing_bundle(path: Path):
    """The bundle folder (and its manifest) that lists this file, if any."""
    for bundle in (path.parent, path.parent.parent):
        if (bundle / MANIFEST).is_file():
            manifest = load_manifest(bundle)
            rel = path.resolve().relative_to(bundle.resolve()).as_posix()
            listed = [a for a in manifest["artifacts"] if a["file"] == rel]
            if listed:
                return bundle, dict(manifest, artifacts=listed)
    return None, None


def _torch_reference(path, width, resolution, threads):
    if importlib.util.find_spec("torch") is None:
        raise UserError("backend torch is the reference and needs torch: pip install 'animeedge[train]'")
    import torch
    from generator.inference import TorchStylizer
    if threads:
        torch.set_num_threads(threads)
    return TorchStylizer(path, width, resolution)


def load(path=None, width=None, resolution=None, backend="auto", precision=None, threads=None):
    """A Stylizer for `path`. `width` None: the widest the bundle holds (1.0 for torch)."""
    resolution, threads = check_resolution(resolution), check_threads(threads)
    if backend == "torch":
        return _torch_reference(path, 1.0 if width is None else width, resolution, threads)
    if path is None:
        raise UserError("no model given: pass a bundle folder or an exported file")
    with os_errors(path):
        return _load(Path(path), width, resolution, backend, precision, threads)


def _load(path: Path, width, resolution, backend, precision, threads):
    if path.suffix in SUFFIXES:
        if not path.exists():
            raise UserError(f"{path}: no such file")
        if path.suffix != ".mlpackage" and not path.is_file():
            raise UserError(f"{path}: not a regular file")
        bundle, manifest = _listing_bundle(path)
        if manifest is None:
            artifact = describe_file(path, SUFFIXES[path.suffix])
            artifact["resolution"] = artifact["resolution"] or resolution
            return Stylizer(SESSIONS[artifact["format"]](path, artifact, threads), artifact)
        first = manifest["artifacts"][0]
        backend, precision, width = first["format"], first["precision"], first["width"]
    else:
        bundle, manifest = path, load_manifest(path)
    artifact = select(manifest, width, resolution, backend, precision)
    checked = verify_artifact(bundle, artifact)
    return Stylizer(SESSIONS[artifact["format"]](checked, artifact, threads), artifact)
