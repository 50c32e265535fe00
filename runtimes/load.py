"""`load(path, width, resolution, backend, precision, threads)`: a Stylizer (uint8 RGB HxWx3
in and out) for a bundle (the artifact is picked from its manifest), a single exported file
(.onnx, .tflite, .mlpackage: its bundle's manifest entry when it sits in one, else described
from the file itself), or, with backend="torch" where torch is installed, a generator
checkpoint as the reference. Files listed in a manifest are sha256-checked before loading,
every file's operators are checked before a runtime sees it (runtimes/opset.py), and every
output is checked (finite, the expected shape). No torch import unless backend="torch" is
asked for. Which artifact of a bundle runs is runtimes/choose.py's decision."""
import importlib.util
from pathlib import Path

import numpy as np

from .backends import SESSIONS, describe_file, first_line
from .choose import choose
from .errors import UserError
from .formats import SUFFIXES
from .manifest import MANIFEST, load_manifest, os_errors, verify_artifact
from .processing import (MIN_SIDE, check_frame, check_resolution, check_threads, from_nchw, from_nhwc,
                         processing_size, resize, to_nchw, to_nhwc)



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
    from animeedge.generator.inference import TorchStylizer
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
    artifact = choose(manifest, backend, precision, width, resolution).artifact
    checked = verify_artifact(bundle, artifact)
    return Stylizer(SESSIONS[artifact["format"]](checked, artifact, threads), artifact)
