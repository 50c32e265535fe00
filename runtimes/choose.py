"""The one place that decides what runs: given a bundle's manifest and what the caller asked
for (backend, precision, width, resolution; each optional), the artifact to load and why.
`runtimes.load`, `stylize`, the app's session and Auto, and the bench all call `choose`.

Each part, in this order:
- backend: as asked (it must be in the bundle and run here); "auto", the first of
  BACKEND_ORDER the bundle holds that runs here; "fastest", the runnable format whose
  recommended precision the export measured fastest (what the app starts on).
- width: as asked (one the bundle holds); else the widest the bundle holds for the backend.
- precision: as asked; else the manifest's recommendation for that width, else for the
  format. The export recommends a lower precision only where its fidelity gate passed, so
  nothing chosen here runs a precision that gate refused.
- resolution: as asked (a file made for it, or a dynamic file that lists it); else the largest.
"""
from dataclasses import dataclass

from .errors import UserError
from .formats import FORMATS, runs_here, width_key

BACKEND_ORDER = ("coreml", "onnx", "tflite")  # Core ML first where it runs (Apple's own runtime)
AUTO, FASTEST = "auto", "fastest"


@dataclass(frozen=True)
class Choice:
    artifact: dict
    why: str  # one line a user can read: how each part was decided


def _keep(artifacts, key, wanted, what) -> list:
    """The artifacts whose `key` is `wanted`; a clear error naming the choices if none."""
    kept = [a for a in artifacts if a[key] == wanted]
    if not kept:
        values = ", ".join(map(str, sorted({a[key] for a in artifacts})))
        raise UserError(f"the bundle has no {what} {wanted}; it has {values}")
    return kept


def recommended_precision(manifest: dict, backend: str, width: float) -> str:
    by_width = manifest.get("recommended_precision_by_width", {}).get(backend, {})
    return by_width.get(width_key(width)) or manifest["recommended_precision"].get(backend, "fp32")


def _runnable(manifest) -> list[str]:
    held = {a["format"] for a in manifest["artifacts"]}
    return [f for f in BACKEND_ORDER if f in held and runs_here(f)]


def _fastest(manifest, runnable) -> tuple[str, str]:
    """The runnable format whose recommended precision the export timed fastest (at its widest width)."""
    speed = manifest.get("speed", {}).get("p50_ms", {})  # {format: {precision: ms}}
    timed = [(speed[f][p], f) for f in runnable
             if (p := manifest["recommended_precision"].get(f, "fp32")) in speed.get(f, {})]
    if not timed:
        return runnable[0], f"{runnable[0]} (no export timings; the first of {', '.join(runnable)} that runs here)"
    ms, fmt = min(timed)
    return fmt, f"{fmt} (the fastest the export measured: {ms:g} ms)"


def _backend(manifest, backend) -> tuple[str, str]:
    runnable = _runnable(manifest)
    if backend in (None, AUTO, FASTEST):
        if not runnable:
            formats = ", ".join(sorted({a["format"] for a in manifest["artifacts"]}))
            raise UserError(f"the bundle holds only {formats}, which cannot run on this system")
        if backend == FASTEST:
            return _fastest(manifest, runnable)
        return runnable[0], f"{runnable[0]} (the first of {', '.join(runnable)} that runs here)"
    if backend not in FORMATS:
        raise UserError(f"unknown backend {backend!r}; choose from {', '.join((AUTO, *FORMATS))}")
    return backend, f"{backend} (asked)"


def choose(manifest: dict, backend=None, precision=None, width=None, resolution=None) -> Choice:
    backend, why_backend = _backend(manifest, backend)
    arts = _keep(manifest["artifacts"], "format", backend, "format")
    if width is None:
        width = max([a["width"] for a in arts if precision in (None, a["precision"])] or [a["width"] for a in arts])
        why_width = f"width {width} (the widest it holds)"
    else:
        held = sorted({a["width"] for a in arts})
        match = [w for w in held if width_key(w) == width_key(width)]
        if not match:
            raise UserError(f"the bundle has no {backend} width {width}; it has {', '.join(map(str, held))}")
        width, why_width = match[0], f"width {match[0]} (asked)"
    if precision is None:
        precision = recommended_precision(manifest, backend, width)
        why_precision = f"{precision} (the export's pick for this width: it passed the fidelity gate)"
    else:
        why_precision = f"{precision} (asked)"
    arts = _keep(arts, "precision", precision, f"{backend} precision")
    arts = _keep(arts, "width", width, f"{backend} {precision} width")
    if resolution is None:
        artifact = max(arts, key=lambda a: a["resolution"])
        why_resolution = f"{artifact['resolution']} px (the largest)"
    else:
        exact = [a for a in arts if a["resolution"] == resolution]
        dynamic = [a for a in arts if resolution in a["resolutions"]]
        if not exact and not dynamic:
            raise UserError(f"the bundle has no {backend} {precision} width-{width} artifact for resolution "
                            f"{resolution}; it has {', '.join(str(a['resolution']) for a in arts)}")
        artifact = dict(exact[0] if exact else dynamic[0], resolution=resolution)
        why_resolution = f"{resolution} px (asked)"
    return Choice(artifact, ", ".join((why_backend, why_precision, why_width, why_resolution)))
