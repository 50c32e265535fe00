"""Self-tuning on first use: which runnable (backend, precision) of a bundle runs a width and
resolution fastest on this device, among those whose picture on this device stays within
the bundle's fidelity floor of the fp32 file.

Why here and not at export: int8 beats fp32 on a CPU with 8-bit dot-product instructions
(VNNI, ARM dotprod) and loses on one without (an AVX2-only EPYC: TFLite int8 1.4x slower,
ONNX int8 2.2x), and an int8 file's rounding can differ between instruction sets. The
export's recommendation describes the export host; a phone runs nobody's `bench` first.

The answer is cached per device under the user's cache folder, keyed by a fingerprint (CPU
model and flags, core count, library versions, thread count) and the candidates' sha256, so
the next load reuses it. A cache that cannot be read, or an answer naming a file the bundle
no longer has, is ignored with a warning and measured again, never trusted.
"""
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .atomic import write_text
from .choose import Choice
from .formats import runs_here, width_key
from .machine import machine

BUDGET_SECONDS = 1.0  # all candidates together: loading, one fidelity frame, timed runs
MIN_RUNS = 2
SKIP_RATIO = 1.5
FRAME_SIZE = (240, 320)  # the built-in frame, 4:3 like a camera's
CACHE_ENV = "ANIMEEDGE_CACHE"


def cache_file() -> Path:
    """$ANIMEEDGE_CACHE, else the platform's user cache folder, + autotune.json."""
    if os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV])
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches" / "animeedge"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "animeedge"
    return root / "autotune.json"


def builtin_frame() -> np.ndarray:
    """A camera-like picture made here (no data ships): smooth shading, hard edges, fine texture."""
    h, w = FRAME_SIZE
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    rgb = np.stack([0.3 + 0.6 * yy, 0.2 + 0.5 * xx, 0.8 - 0.5 * yy * xx], -1)
    for cy, cx, r, colour in ((0.4, 0.5, 0.22, (0.9, 0.7, 0.6)), (0.35, 0.43, 0.03, (0.1, 0.1, 0.1)),
                              (0.35, 0.57, 0.03, (0.1, 0.1, 0.1)), (0.8, 0.2, 0.15, (0.2, 0.5, 0.2))):
        rgb[(yy - cy) ** 2 + ((xx - cx) * w / h) ** 2 < r * r] = colour
    rgb += np.random.default_rng(0).normal(0, 0.03, rgb.shape)
    return (rgb.clip(0, 1) * 255).round().astype(np.uint8)


def candidates(manifest: dict, width: float, resolution: int) -> list[dict]:
    """One artifact per runnable (format, precision) that holds this width and resolution."""
    found = {}
    for a in manifest["artifacts"]:
        if (runs_here(a["format"]) and width_key(a["width"]) == width_key(width)
                and (a["resolution"] == resolution or resolution in a["resolutions"])):
            found.setdefault((a["format"], a["precision"]), dict(a, resolution=resolution))
    return list(found.values())


def cache_key(arts: list[dict], threads) -> str:
    what = {"machine": machine(), "threads": threads,
            "files": sorted((a["sha256"], a["resolution"]) for a in arts)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        cache = json.loads(path.read_text())
        if not isinstance(cache, dict):
            raise ValueError("not a JSON object")
        return cache
    except (OSError, ValueError) as exc:
        print(f"animeedge: warning: {path}: unreadable self-tuning cache ignored ({exc})", file=sys.stderr)
        return {}


def _cached_choice(entry, arts) -> dict | None:
    """The candidate a cache entry names, if the entry is well-formed and names one."""
    if not isinstance(entry, dict):
        return None
    return next((a for a in arts if [a["format"], a["precision"]] == entry.get("pick")), None)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


def _reference(arts, fmt) -> dict | None:
    """The fp32 file a candidate is held to: its own format's, else any fp32 that runs here."""
    fp32 = [a for a in arts if a["precision"] == "fp32"]
    return next((a for a in fp32 if a["format"] == fmt), fp32[0] if fp32 else None)


def measure(arts, open_artifact, floor_db: float, budget=BUDGET_SECONDS) -> dict:
    """{"format/precision": {"ms", "psnr_db", "passed"}}: each candidate's fastest call on the
    built-in frame within its share of the budget (loading and a first call included: it
    warms the runtime and gives the picture), and its PSNR to the fp32 reference. A
    candidate already SKIP_RATIO x slower than the best so far is not timed further."""
    frame, results, outputs, best = builtin_frame(), {}, {}, float("inf")
    share = budget / max(len(arts), 1)
    for a in sorted(arts, key=lambda a: a["precision"] != "fp32"):  # the references first
        start = time.perf_counter()
        stylizer = open_artifact(a)
        outputs[(a["format"], a["precision"])] = stylizer(frame)
        times = []
        while len(times) < MIN_RUNS or time.perf_counter() - start < share:
            t = time.perf_counter()
            stylizer(frame)
            times.append((time.perf_counter() - t) * 1000)
            if min(times) > SKIP_RATIO * best:
                break
        best = min(best, min(times))
        ref = _reference(arts, a["format"])
        db = psnr(outputs[(a["format"], a["precision"])], outputs[(ref["format"], "fp32")]) if ref else None
        results[f"{a['format']}/{a['precision']}"] = {
            "ms": round(min(times), 3), "psnr_db": None if db is None else round(db, 2),
            "passed": db is None or db >= floor_db}
    return results


def pick(arts, results) -> dict:
    """The fastest candidate that passed; fp32 always passes (it is the reference)."""
    passed = [a for a in arts if results[f"{a['format']}/{a['precision']}"]["passed"]]
    return min(passed, key=lambda a: results[f"{a['format']}/{a['precision']}"]["ms"])


def tune(manifest: dict, width: float, resolution: int, open_artifact, threads=None, refresh=False) -> Choice:
    """The Choice for this device: cached, or measured now (about BUDGET_SECONDS) and cached."""
    arts = candidates(manifest, width, resolution)
    if not arts:
        raise ValueError("no runnable candidates")  # callers check with candidates() first
    if len(arts) == 1:
        return Choice(arts[0], f"{arts[0]['format']} {arts[0]['precision']} (the only file for this width "
                               f"and resolution that runs here)")
    path, key = cache_file(), cache_key(arts, threads)
    cache = _read_cache(path)
    chosen = None if refresh else _cached_choice(cache.get(key), arts)
    if chosen is not None:
        return Choice(chosen, f"{chosen['format']} {chosen['precision']} (the fastest on this device, "
                              f"timed at first use; cached in {path})")
    results = measure(arts, open_artifact, manifest.get("min_psnr_db", 30.0))
    chosen = pick(arts, results)
    cache[key] = {"pick": [chosen["format"], chosen["precision"]], "width": width, "resolution": resolution,
                  "results": results, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(cache, indent=1) + "\n")
    except OSError as exc:
        print(f"animeedge: warning: {path}: the self-tuning answer could not be cached ({exc})", file=sys.stderr)
    refused = [k for k, r in results.items() if not r["passed"]]
    return Choice(chosen, f"{chosen['format']} {chosen['precision']} (the fastest on this device: "
                          + ", ".join(f"{k} {r['ms']:g} ms" for k, r in results.items())
                          + (f"; {', '.join(refused)} missed the {manifest.get('min_psnr_db', 30.0):g} dB floor here"
                             if refused else "") + ")")
