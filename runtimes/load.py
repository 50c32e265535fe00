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
from .autotune import tune
from .choose import AUTO, Choice, choose
from .errors import UserError
from .formats import SUFFIXES
from .manifest import MANIFEST, load_manifest, os_errors, verify_artifact
from .processing import (MIN_SIDE, byte_table, check_frame, check_resolution, check_threads, from_nchw,
                         from_nhwc, lookup_nchw, lookup_nhwc, output_nchw, output_nhwc, output_table, pad,
                         processing_size, resize, to_nchw, to_nhwc)



class Stylizer:
    """Runs one artifact. Files with a fixed input size get the frame scaled to fit (aspect
    kept) and reflect-padded to the square; frames thinner than MIN_SIDE (a 5000x1 strip) are
    edge-padded to it, because the graph's own reflect padding needs that much. The padding
    is cropped away afterwards. An output that is not finite or not the input's size (batch
    1, 3 channels) is a UserError for that frame.

    A frame passes through STAGES in order: `prepare` runs the first three, `invoke` the
    model, `finish` the last three; `staged` runs them all, calling lap(stage) as each ends
    (what `bench` times stage by stage). An int8 input is normalized and quantized in one
    look-up per byte (processing.byte_table: identical to computing it), an int8 output
    dequantized and made bytes in one, and a float output made bytes in one pass."""

    STAGES = ("resize_in", "to_input", "prepare", "invoke", "finish", "from_output", "resize_out")

    def __init__(self, session, artifact: dict):
        self.session, self.artifact = session, artifact
        self.backend, self.precision = artifact["format"], artifact["precision"]
        self.width, self.resolution = artifact["width"], artifact["resolution"]
        self.fixed = all(isinstance(d, int) for d in artifact["input"].get("shape", ["H"]))
        # frames go straight into the file's layout: no transpose there and back per frame
        nhwc = session.nhwc
        self.to_input, self.from_output = (to_nhwc, from_nhwc) if nhwc else (to_nchw, from_nchw)
        self._in_table = byte_table(session.native) if session.q_in else None
        self._out_table = output_table(session.finish) if session.q_out else None
        self._lookup_in = lookup_nhwc if nhwc else lookup_nchw
        self._lookup_out = output_nhwc if nhwc else output_nchw

    def fit(self, rgb: np.ndarray):
        """uint8 RGB frame -> (uint8 HxWx3 at the size the model takes, the geometry)."""
        check_frame(rgb)
        h, w = rgb.shape[:2]
        ph, pw = processing_size(h, w, self.resolution)
        th, tw = (self.resolution, self.resolution) if self.fixed else (max(ph, MIN_SIDE), max(pw, MIN_SIDE))
        return pad(resize(rgb, ph, pw), th, tw), (h, w, ph, pw, th, tw)

    def native(self, x: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 at the model's size -> the file's input (layout, range, type)."""
        if self._in_table is not None:
            return self._lookup_in(x, self._in_table)
        return self.session.native(self.to_input(x))

    def prepare(self, rgb: np.ndarray):
        """uint8 RGB frame -> (the model's input, the geometry `finish` needs)."""
        x, geometry = self.fit(rgb)
        return self.session.feed(self.native(x)), geometry

    def invoke(self, x):
        """The model alone (what `bench` times as model-only)."""
        try:
            return self.session.invoke(x)
        except Exception as exc:
            raise UserError(f"{self.artifact['file']}: the model failed on this frame ({first_line(exc)})") from None

    def finished(self, y, geometry):
        """The model's output, checked; float [-1, 1] in the file's layout, or int8 where
        `output_bytes` turns it into bytes in one look-up."""
        self._check_output(y, *geometry[4:])
        return y if self._out_table is not None and y.dtype == np.int8 else self.session.finish(y)

    def output_bytes(self, y) -> np.ndarray:
        """`finished`'s output -> uint8 HxWx3 at the model's size."""
        if self._out_table is not None and y.dtype == np.int8:
            return self._lookup_out(y, self._out_table)
        return self.from_output(y)

    def unfit(self, z: np.ndarray, geometry, to_frame=True) -> np.ndarray:
        """uint8 HxWx3 at the model's size -> the frame's size (padding cropped); with
        to_frame=False only cropped, for a display that scales the picture itself."""
        h, w, ph, pw = geometry[:4]
        return resize(z[:ph, :pw], h, w) if to_frame else z[:ph, :pw]

    def finish(self, y, geometry, to_frame=True) -> np.ndarray:
        return self.unfit(self.output_bytes(self.finished(y, geometry)), geometry, to_frame)

    def staged(self, rgb: np.ndarray, lap) -> np.ndarray:
        """__call__ with lap(stage) called as each of STAGES ends."""
        x, geometry = self.fit(rgb)
        lap("resize_in")
        x = self.native(x)
        lap("to_input")
        x = self.session.feed(x)
        lap("prepare")
        y = self.invoke(x)
        lap("invoke")
        y = self.finished(y, geometry)
        lap("finish")
        z = self.output_bytes(y)
        lap("from_output")
        out = self.unfit(z, geometry)
        lap("resize_out")
        return out

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
    """A Stylizer for `path`. `width` None: the widest the bundle holds (1.0 for torch).
    precision="auto" (with backend "auto" or one format): of a bundle's runnable files for
    that width and resolution, the fastest on this device whose output passes the bundle's
    fidelity floor here, timed at first use and cached (runtimes/autotune.py)."""
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
    if precision == AUTO:
        return _open(bundle, _tuned(bundle, manifest, backend, width, resolution, threads).artifact, threads)
    return _open(bundle, choose(manifest, backend, precision, width, resolution).artifact, threads)


def _open(bundle, artifact, threads) -> Stylizer:
    checked = verify_artifact(bundle, artifact)
    return Stylizer(SESSIONS[artifact["format"]](checked, artifact, threads), artifact)


def _tuned(bundle, manifest, backend, width, resolution, threads) -> Choice:
    """autotune's pick among the runnable files of the width and resolution `choose` settles
    (of one format, where one is asked)."""
    settled = choose(manifest, backend, None, width, resolution).artifact
    if backend not in (None, AUTO):
        manifest = dict(manifest, artifacts=[a for a in manifest["artifacts"] if a["format"] == backend])
    return tune(manifest, settled["width"], settled["resolution"], lambda a: _open(bundle, a, threads), threads)
