"""`animeedge export`: a bundle of ONNX / TFLite / Core ML files plus manifest.json.

Each width is cut into a physically smaller network (generator/slicing.py) before tracing.
Each format makes the asked precisions it lists in runtimes/formats.py (int8w: Core ML only).
Calibration and evaluation photos are disjoint: even-numbered calibration photos calibrate
int8, odd-numbered ones measure every artifact's fidelity against the torch fp32 network of
its width and its quality against the full model (width 1.0, highest resolution).
Speed is measured per format, precision and width on this machine (recorded as the manifest's
`machine`, runtimes/machine.py: whose numbers they are), and the manifest recommends, per
format, the fastest precision whose fidelity stays >= MIN_PSNR_DB and which is at least
MIN_SPEEDUP times faster than fp32 at every width (else fp32).
The bundle is written under a temporary name and renamed into place only when complete.
An existing --out is checked before any work and replaced (with force) only if it is a bundle
this tool wrote: a folder holding a valid manifest and only the files it lists, neither the
current folder nor one above it, holding no input. The new bundle is swapped in (the old
one renamed aside, the new one renamed in, the old one deleted), checked again just before.
"""
import functools
import importlib
import json
import logging
import os
import platform
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from animeedge.generator.checkpoint import load_generator, read_meta, resolve_model_path, trained_widths
from animeedge.generator.profile import profile
from animeedge.generator.slicing import sliced_copy
from animeedge.calibration.data import CalibrationSet
from animeedge.runtimes.probe import cpu_model
from animeedge.runtimes.atomic import atomic_dir
from animeedge.runtimes import coreml_reference
from animeedge.runtimes.backends import SESSIONS
from animeedge.runtimes.bench import best_median_ms
from animeedge.runtimes.console import muted
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import exists
from animeedge.runtimes.formats import (FORMAT_NAMES, FORMATS, PRECISIONS, RESOLUTIONS, reference_resolution,
                                        runs_here, width_key)
from animeedge.runtimes.machine import machine
from animeedge.runtimes.manifest import (MANIFEST, SCHEMA_VERSION, load_manifest, package_versions, sha256_path,
                                         size_bytes, validate)

from .quality import psnr_signed

TOOLS = ("animeedge", "torch", "onnx", "onnxslim", "onnxruntime", "nncf", "litert-torch", "ai-edge-litert", "coremltools",
         "numpy")
MIN_PSNR_DB = 30.0
COREML_SOURCE = "reference evaluator (runtimes/coreml_reference.py: the file's graph and weights in numpy, not Apple's kernels)"
SPEED_RUNS, SPEED_REPEATS = 20, 3
MIN_SPEEDUP = 1.3  # a lower precision is recommended only where it buys this much, at every width


def quiet_converters():
    """The converters log every pass; the export has its own progress bar."""
    for var, value in (("LITERT_TORCH_SHOW_PROGRESS", "n"), ("TF_CPP_MIN_LOG_LEVEL", "2"), ("GLOG_minloglevel", "2")):
        os.environ.setdefault(var, value)
    logging.getLogger("nncf").setLevel(logging.WARNING)
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", module="coremltools|torch.onnx|nncf|litert_torch|torchao")
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch pytree deprecations, per conversion


def _require(fmt):
    missing = [p for p in FORMATS[fmt].packages if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(f"{fmt} export needs the package(s) {', '.join(missing)}: pip install 'animeedge[export]'")
    return importlib.import_module(FORMATS[fmt].exporter)


@torch.no_grad()
def reference_outputs(net, images) -> list:
    return [net(torch.from_numpy(x)).numpy() for x in images]


def fidelity(outputs, references) -> dict:
    err_sq = [float(np.mean((y - ref) ** 2)) for y, ref in zip(outputs, references)]
    max_abs = max(float(np.abs(y - ref).max()) for y, ref in zip(outputs, references))
    return {"psnr_db": round(psnr_signed(float(np.mean(err_sq))), 2), "max_abs_error": float(f"{max_abs:.3g}"),
            "photos": len(outputs)}


def quality(outputs, finals) -> float:
    """PSNR of outputs, upsampled (bicubic) to the final size, against the final outputs: what
    a (width, resolution, precision) keeps of the full-quality picture."""
    side = finals[0].shape[-1]
    err = [np.mean((cv2.resize(y[0].transpose(1, 2, 0), (side, side), interpolation=cv2.INTER_CUBIC)
                    - f[0].transpose(1, 2, 0)) ** 2) for y, f in zip(outputs, finals)]
    return round(psnr_signed(float(np.mean(err))), 2)


def latency_ms(session, x, runs=SPEED_RUNS, repeats=SPEED_REPEATS) -> float:
    return round(best_median_ms(lambda: session.run(x), repeats, 1, runs), 2)


def _pays(by_width: dict, baseline: dict | None) -> bool:
    """At least MIN_SPEEDUP times faster than the baseline at every width timed for both."""
    if not baseline:
        return True
    shared = set(by_width) & set(baseline)
    return bool(shared) and all(by_width[w] * MIN_SPEEDUP <= baseline[w] for w in shared)


def _pick(artifacts, fmt, by_precision: dict, widths=None) -> str:
    """fp32, unless a precision whose fidelity holds (>= MIN_PSNR_DB wherever it was
    measured) is at least MIN_SPEEDUP times faster at each of `widths` (default: all); then
    the fastest such precision at the widest of them."""
    if widths is not None:
        by_precision = {p: {w: ms for w, ms in by.items() if w in widths} for p, by in by_precision.items()}
        by_precision = {p: by for p, by in by_precision.items() if by}
    baseline = by_precision.get("fp32")
    paying = [p for p, by_width in by_precision.items() if p != "fp32" and _pays(by_width, baseline) and all(
        a["fidelity"] is None or a["fidelity"]["psnr_db"] >= MIN_PSNR_DB
        for a in artifacts if a["format"] == fmt and a["precision"] == p)]
    widest = lambda p: by_precision[p][max(by_precision[p], key=float)]
    return min(paying, key=widest) if paying else "fp32" if baseline else min(by_precision, key=widest)


def recommend_by_width(artifacts, speed) -> dict:
    """{format: {width: precision}}: `_pick` width by width (a low precision may pay at
    width 1.0 and not at 0.25, where the rest of the graph dominates)."""
    return {fmt: {w: _pick(artifacts, fmt, by_precision, {w}) for w in {w for by in by_precision.values() for w in by}}
            for fmt, by_precision in speed.items()}


def recommended_precisions(artifacts, speed) -> dict:
    """{format: precision}: `_pick` over every width. `speed`: {format: {precision: {width: ms}}}."""
    chosen = {fmt: _pick(artifacts, fmt, by_precision) for fmt, by_precision in speed.items()}
    for fmt in {a["format"] for a in artifacts} - set(chosen):
        chosen[fmt] = _unmeasured_pick(artifacts, fmt)
    return chosen


def _unmeasured_pick(artifacts, fmt) -> str:
    """For files whose speed cannot be measured here (Core ML): fp16, the Neural Engine's own
    precision, where its fidelity holds everywhere; else fp32 (else whatever the bundle has)."""
    held = {p for p in ("fp16", "fp32") if all(
        a["fidelity"] is None or a["fidelity"]["psnr_db"] >= MIN_PSNR_DB
        for a in artifacts if a["format"] == fmt and a["precision"] == p)}
    present = {a["precision"] for a in artifacts if a["format"] == fmt}
    return next((p for p in ("fp16", "fp32") if p in held & present), min(present))


def _foreign_file(bundle: Path, manifest: dict) -> Path | None:
    """The first file in `bundle` that is neither its manifest nor part of an artifact it lists."""
    listed = {MANIFEST} | {a["file"] for a in manifest["artifacts"]}
    for root, _, names in os.walk(bundle):
        for path in (Path(root, name) for name in names):
            rel = path.relative_to(bundle).as_posix()
            if not any(rel == f or rel.startswith(f + "/") for f in listed):
                return path
    return None


def check_replaceable(out: Path, inputs=()):
    """A UserError unless the existing `out` is a bundle this tool may replace."""
    refused = "--force replaces only a bundle this tool wrote; nothing was deleted"
    if out.is_symlink() or not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; --out takes a bundle folder")
    real = out.resolve()
    if Path.cwd().resolve().is_relative_to(real):
        raise UserError(f"{out}: is the current folder or one above it; {refused}")
    held = next((p for p in inputs if p is not None and Path(p).resolve().is_relative_to(real)), None)
    if held is not None:
        raise UserError(f"{out}: holds the input {held}; {refused}")
    try:
        manifest = load_manifest(out)
    except UserError:
        raise UserError(f"{out}: not a bundle (no valid {MANIFEST}); {refused}") from None
    foreign = _foreign_file(out, manifest)
    if foreign is not None:
        raise UserError(f"{out}: holds {foreign}, which is not part of the bundle; {refused}")


def check_out(out, force: bool, inputs=()) -> Path:
    """Checked before any work: `out` can be made, and if it exists, `force` is given and it
    is a bundle this tool may replace (one line otherwise, nothing touched)."""
    out = Path(out)
    blocking = next((p for p in out.parents if exists(p) and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"{blocking}: exists and is not a folder")
    if exists(out):
        if out.is_dir() and not out.is_symlink() and not force:
            raise UserError(f"{out} exists; pass --force to replace it")
        check_replaceable(out, inputs)
    return out


class BundleExporter:
    def __init__(self, model, out, formats=FORMAT_NAMES, precisions=PRECISIONS, widths=None, resolutions=RESOLUTIONS,
                 calib=None, progress=True, force=False, calib_source=None):
        """`force`: replace an existing bundle at `out` (never anything else; see check_out).
        `calib_source`: what the calibration photos are, in words, for the manifest."""
        self.model_path = resolve_model_path(model)
        self.inputs = (self.model_path, calib)
        self.out = check_out(out, force, self.inputs)
        self.model = load_generator(self.model_path)
        self.widths = sorted(widths or trained_widths(self.model_path))
        self.formats, self.precisions, self.resolutions = list(formats), list(precisions), sorted(resolutions)
        unmade = [p for p in self.precisions if not any(p in FORMATS[f].precisions for f in self.formats)]
        if unmade:  # int8w: Core ML only
            raise UserError(f"no format asked ({', '.join(self.formats)}) makes {', '.join(unmade)}")
        self.progress = progress
        self.photos, self.calib_source = CalibrationSet(calib), calib_source or str(calib)
        self.profile = profile(self.model, self.widths, self.resolutions)["widths"]
        self.errors = {}

    def _entries(self, fmt, width, net, tmp):
        precisions = [p for p in self.precisions if p in FORMATS[fmt].precisions]
        if not precisions:
            return []
        try:
            with muted():
                files = _require(fmt).export(net, tmp / fmt, f"w{width_key(width)}", precisions, self.resolutions,
                                             self.photos)
        except ImportError as e:
            self.errors[fmt] = str(e)
            return []
        entries, cost = [], self.profile[str(float(width))]
        for f in files:
            path = Path(f.pop("path"))
            for res in [r for r in f["resolutions"] if r in self.resolutions]:
                entries.append(f | {
                    "file": path.relative_to(tmp).as_posix(), "format": fmt, "width": width, "resolution": res,
                    "value_range": [-1.0, 1.0], "normalization": "x / 127.5 - 1 on RGB uint8; output (y + 1) * 127.5",
                    "params": cost["params"], "gmacs": cost["gmacs"][str(res)],
                    "size_bytes": size_bytes(path), "sha256": sha256_path(path)})
        return entries

    def _measure(self, entries, tmp, references, width):
        """Fidelity and quality of every entry; latency of each (format, precision) at the
        widest width."""
        for e in entries:
            res = e["resolution"]
            images = self.photos.eval(res)
            if runs_here(e["format"]):
                session = SESSIONS[e["format"]](tmp / e["file"], e, threads=os.cpu_count())
                outputs, source = [session.run(x) for x in images], "artifact"
            else:  # Core ML on Linux: its graph and weights, not Apple's kernels
                outputs, source = [coreml_reference.evaluate(tmp / e["file"], x) for x in images], COREML_SOURCE
            e["fidelity"] = fidelity(outputs, references[res]) | ({"source": source} if source != "artifact" else {})
            e["quality"] = {"psnr_db": quality(outputs, self.finals), "source": source}
            if not runs_here(e["format"]):
                continue
            if res == self._speed_res():
                self.speed.setdefault(e["format"], {}).setdefault(e["precision"], {})[str(width)] = \
                    latency_ms(session, images[0])

    def _speed_res(self):
        return reference_resolution(self.resolutions)

    def run(self) -> Path:
        quiet_converters()
        self.speed = {}
        top = self.resolutions[-1]
        self.finals = reference_outputs(sliced_copy(self.model, 1.0), self.photos.eval(top))
        artifacts = []
        steps = len(self.widths) * len(self.formats)
        replaceable = functools.partial(check_replaceable, inputs=self.inputs)  # again: minutes have passed
        with atomic_dir(self.out, replaceable) as tmp, tqdm(total=steps, desc="export", disable=not self.progress) as bar:
            for width in self.widths:
                net = sliced_copy(self.model, width)
                references = {r: reference_outputs(net, self.photos.eval(r)) for r in self.resolutions}
                for fmt in self.formats:
                    bar.set_postfix_str(f"width {width} {fmt}")
                    entries = self._entries(fmt, width, net, tmp)
                    self._measure(entries, tmp, references, width)
                    artifacts += entries
                    bar.update()
            if not artifacts:
                raise UserError("nothing was exported: " + "; ".join(self.errors.values()))
            manifest = self._manifest(artifacts)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for fmt, why in self.errors.items():
            print(f"animeedge: warning: {fmt} not exported: {why}", file=sys.stderr)
        return self.out

    def _manifest(self, artifacts):
        meta = read_meta(self.model_path)
        speed_notes = {"resolution": self._speed_res(), "width": self.widths[-1], "runs": SPEED_RUNS,
                       "threads": os.cpu_count(), "machine": f"{cpu_model()}, "
                       f"{os.cpu_count()} cores, {platform.system()}"}
        if not all(runs_here(a["format"]) for a in artifacts):
            speed_notes["coreml"] = ("not measured: Core ML runs on Apple devices only; recommended: fp16, the Neural "
                                     "Engine's own precision, where its fidelity holds")
        return validate({
            "schema_version": SCHEMA_VERSION,
            "model": {"file": self.model_path.name, "sha256": sha256_path(self.model_path),
                      "trained_widths": meta.get("trained_widths", [1.0]), "generator": meta.get("generator"),
                      "teacher": {k: v for k, v in (meta.get("compressed_from") or {}).items()
                                  if k in ("kind", "file", "sha256", "callable", "license")}},
            "tools": package_versions(TOOLS),
            "calibration": {"source": self.calib_source, "photos": [p.name for p in self.photos.calib_files],
                            "evaluation": [p.name for p in self.photos.eval_files]},
            "speed": {"p50_ms": {f: {p: ms[str(self.widths[-1])] for p, ms in by.items()} for f, by in self.speed.items()},
                      "p50_ms_by_width": self.speed} | speed_notes,
            "recommended_precision": recommended_precisions(artifacts, self.speed),
            "recommended_precision_by_width": recommend_by_width(artifacts, self.speed),
            "machine": machine(),  # whose numbers speed and the recommendation are (runtimes/machine.py)
            "min_psnr_db": MIN_PSNR_DB,
            "quality_reference": f"width 1.0 fp32 torch output at {self.resolutions[-1]} px on the evaluation photos; "
                                 "quality.psnr_db compares each artifact's output, upsampled bicubic, with it",
            "errors": self.errors,
            "artifacts": artifacts,
        })
