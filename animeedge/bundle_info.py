"""`animeedge info --model BUNDLE`: what an exported bundle holds and whose numbers its
timings and recommendation are. A bundle is untrusted input: the manifest is read only
through runtimes.manifest.load_manifest (schema-checked, every number checked), and its text
reaches the terminal only through one_line. Torch-free, like runtimes/.

A path goes this way when it is a folder holding manifest.json or an exported file (.onnx,
.tflite, .mlpackage); an exported file is shown with its bundle's entries for it (its bundle
is the folder above it or the one above that), or, outside any bundle, as the file says.
"""
import json
from pathlib import Path

from animeedge.runtimes.errors import UserError, one_line
from animeedge.runtimes.formats import SUFFIXES, width_key
from animeedge.runtimes.machine import describe, differs_note, machine, same_machine
from animeedge.runtimes.manifest import MANIFEST, load_manifest, os_errors

MB = 1e6


def is_bundle_path(path) -> bool:
    """A bundle folder (it has a manifest, even a broken one: load_manifest says what is
    wrong) or an exported file; anything else is a checkpoint for `info`."""
    path = Path(path)
    if path.suffix in SUFFIXES:
        return True
    with os_errors(path):
        return path.is_dir() and ((path / MANIFEST).is_symlink() or (path / MANIFEST).exists())


def _listing_bundle(path: Path):
    """(bundle folder, manifest) of the bundle that lists this file, or (None, None)."""
    for bundle in (path.parent, path.parent.parent):
        if (bundle / MANIFEST).exists() or (bundle / MANIFEST).is_symlink():
            manifest = load_manifest(bundle)
            rel = path.resolve().relative_to(bundle.resolve()).as_posix()
            if any(a["file"] == rel for a in manifest["artifacts"]):
                return bundle, manifest, rel
    return None, None, None


def _files(artifacts) -> list[dict]:
    """One row per file: a file serving several resolutions has one manifest entry each."""
    rows = {}
    for a in artifacts:
        row = rows.setdefault(a["file"], {
            "file": a["file"], "format": a["format"], "precision": a["precision"], "width": width_key(a["width"]),
            "resolutions": [], "size_mb": round(a["size_bytes"] / MB, 3), "fidelity_psnr_db": None,
            "fidelity_psnr_db_by_resolution": {}})
        if a["resolution"] not in row["resolutions"]:
            row["resolutions"].append(a["resolution"])
        if a["fidelity"] is not None:
            row["fidelity_psnr_db_by_resolution"][str(a["resolution"])] = a["fidelity"]["psnr_db"]
    for row in rows.values():
        row["resolutions"].sort()
        measured = row["fidelity_psnr_db_by_resolution"].values()
        row["fidelity_psnr_db"] = min(measured) if measured else None  # the worst of its resolutions
    return list(rows.values())


def _numbers(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _manifest_info(bundle: Path, manifest: dict, file=None) -> dict:
    artifacts = [a for a in manifest["artifacts"] if file is None or a["file"] == file]
    speed = manifest.get("speed", {})
    recorded = manifest.get("machine")
    here = machine()
    info = {"bundle": str(bundle)} | ({"file": file} if file else {}) | {
        "files": _files(artifacts),
        "formats": sorted({a["format"] for a in artifacts}),
        "widths": [width_key(w) for w in sorted({a["width"] for a in artifacts})],
        "resolutions": sorted({a["resolution"] for a in artifacts}),
        "precisions": sorted({a["precision"] for a in artifacts}),
        "recommended_precision": manifest["recommended_precision"],
        "recommended_precision_by_width": manifest.get("recommended_precision_by_width", {}),
        "timings_p50_ms": speed.get("p50_ms", {}),
        "timings_at": {k: speed[k] for k in ("resolution", "width") if _numbers(speed.get(k))},
        "measured_on": recorded,
        "this_machine": here,
        "same_machine": same_machine(recorded, here) if recorded else None,
        "machine_note": differs_note(recorded, here),
    }
    if recorded is None and isinstance(speed.get("machine"), str):  # bundles from before the machine field
        info["measured_on_note"] = one_line(speed["machine"], 120)
    return info


def _loose_file(path: Path) -> dict:
    """An exported file in no bundle: what the file itself says (nothing about timings)."""
    from animeedge.runtimes.backends import describe_file
    from animeedge.runtimes.manifest import size_bytes
    fmt = SUFFIXES[path.suffix]
    described = describe_file(path, fmt)
    here = machine()
    return {"bundle": None, "file": str(path),
            "files": [{"file": path.name, "format": fmt, "precision": described["precision"], "width": None,
                       "resolutions": [described["resolution"]] if described["resolution"] else [],
                       "size_mb": round(size_bytes(path) / MB, 3), "fidelity_psnr_db": None,
                       "fidelity_psnr_db_by_resolution": {}}],
            "formats": [fmt], "widths": [], "resolutions": [described["resolution"]] if described["resolution"] else [],
            "precisions": [described["precision"]], "recommended_precision": {}, "recommended_precision_by_width": {},
            "timings_p50_ms": {}, "timings_at": {}, "measured_on": None, "this_machine": here, "same_machine": None,
            "machine_note": "not in a bundle: no manifest records this file's width, fidelity, timings or the machine "
                            "they came from; run `animeedge bench` on its bundle"}


def bundle_info(path) -> dict:
    path = Path(path)
    with os_errors(path):
        if path.suffix in SUFFIXES:
            if not path.exists():
                raise UserError(f"{path}: no such file")
            if path.suffix != ".mlpackage" and not path.is_file():
                raise UserError(f"{path}: not a regular file")
            bundle, manifest, rel = _listing_bundle(path)
            return _manifest_info(bundle, manifest, rel) if manifest else _loose_file(path)
        return _manifest_info(path, load_manifest(path))


def _shown(value, limit=80) -> str:
    return one_line(str(value), limit)


def _recommendation(info) -> str:
    by_width = info["recommended_precision_by_width"]
    parts = []
    for fmt, precision in info["recommended_precision"].items():
        widths = by_width.get(fmt) or {}
        detail = ", ".join(f"{_shown(w, 16)} {p}" for w, p in sorted(widths.items()))
        parts.append(f"{_shown(fmt, 16)} {precision}" + (f" (by width: {detail})" if detail else ""))
    return "; ".join(parts) or "none recorded"


def _timings(info) -> str:
    at = info["timings_at"]
    where = ", ".join(([f"{at['resolution']:g} px"] if "resolution" in at else [])
                      + ([f"width {width_key(at['width'])}"] if "width" in at else []))
    rows = "; ".join(f"{_shown(fmt, 16)} " + ", ".join(f"{_shown(p, 16)} {ms:g}" for p, ms in by.items())
                     for fmt, by in info["timings_p50_ms"].items())
    return f"export timings, p50 ms{f' ({where})' if where else ''}: {rows}" if rows else "export timings: none recorded"


def format_info(info) -> str:
    if not info["bundle"]:
        rows = [f"file: {_shown(info['file'], 300)} (in no bundle)"]
    else:
        rows = [f"bundle: {_shown(info['bundle'], 300)}" + (f" (its entries for {_shown(info['file'], 120)})"
                                                              if info.get("file") else "")]
    names = [_shown(f["file"], 60) for f in info["files"]]
    wide = max([len(n) for n in names] + [4])
    rows.append(f"{'file':<{wide}}  {'format':<6}  {'prec':<5}  {'width':>5}  {'resolution(s)':<13}  {'MB':>7}  "
                f"{'PSNR dB':>7}")
    for name, f in zip(names, info["files"]):
        psnr = f"{f['fidelity_psnr_db']:.2f}" if f["fidelity_psnr_db"] is not None else "-"
        rows.append(f"{name:<{wide}}  {f['format']:<6}  {f['precision']:<5}  {f['width'] or '-':>5}  "
                    f"{','.join(map(str, f['resolutions'])) or '-':<13}  {f['size_mb']:>7.2f}  {psnr:>7}")
    rows.append("PSNR dB: fidelity to the torch network of the same width, the worst of the file's resolutions"
                + ("; -: not measured" if any(f["fidelity_psnr_db"] is None for f in info["files"]) else "")
                + ("; Core ML's by the reference evaluator (its graph and weights, not Apple's kernels)"
                   if "coreml" in info["formats"] else ""))
    rows += [f"formats: {', '.join(info['formats'])}",
             f"widths: {', '.join(info['widths']) or '-'}",
             f"resolutions: {', '.join(map(str, info['resolutions'])) or '-'}",
             f"precisions: {', '.join(info['precisions'])}",
             f"recommended precision: {_recommendation(info)}",
             _timings(info)]
    if info["same_machine"]:
        rows.append(f"timings measured on: {describe(info['measured_on'])}: this machine (same CPU, flags and "
                    "cores), so the timings and recommendation hold here")
    elif info["measured_on"] is not None:  # the note names both machines
        rows.append(f"note: {info['machine_note']}")
    else:
        if info["bundle"]:
            rows.append("timings measured on: unknown (the manifest does not record the machine"
                        + (f"; its speed notes say {info['measured_on_note']!r})" if info.get("measured_on_note")
                           else ")"))
        rows.append(f"note: {info['machine_note']}")
    return "\n".join(rows)


def info_json(info) -> str:
    return json.dumps(info, indent=2)
