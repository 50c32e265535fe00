"""The bundle manifest: what `animeedge export` writes and every consumer (runtimes, bench,
app) reads. A bundle is untrusted input: the manifest is validated against MANIFEST_SCHEMA
and every number in it is checked (finite, bounded) before use; a path it names must be a
plain relative path to a regular file (or a Core ML folder of regular files) inside the
bundle, with no link on the way, and is refused before anything is read; then the size and
the sha256 are checked before the file is used. The schema is JSON Schema draft 4, where an
integer is an integer: later drafts accept 256.0 as one, which then reaches code that needs
an int. Whatever the bytes, loading ends in the manifest or in a one-line UserError: text
from the file enters a message only through errors.one_line (tests/test_reader_mutations.py
loads mutated manifests).

A Core ML .mlpackage is a folder: its sha256 is that of the text made of one line
"<sha256 of file>  <path relative to the package, '/'-separated>\\n" per file, sorted by path.
"""
import hashlib
import json
import math
import os
import platform
import stat
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path, PurePosixPath

import fastjsonschema

from .errors import UserError, one_line
from .formats import FORMAT_NAMES, PRECISIONS, RESOLUTION_RANGE

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 16 << 20
MAX_DEPTH = 32  # a manifest nests 6 levels; 900 would exhaust Python's recursion on the way
ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}
_RESOLUTION = {"type": "integer", "minimum": RESOLUTION_RANGE[0], "maximum": RESOLUTION_RANGE[1]}

_TENSOR = {
    "type": "object",
    "required": ["name", "layout", "dtype"],
    "properties": {
        "name": {"type": "string"},
        "layout": {"enum": ["NCHW", "NHWC"]},
        "dtype": {"enum": ["float32", "float16", "int8", "uint8"]},
        "shape": {"type": "array", "maxItems": 8,
                  "items": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1 << 20}, {"type": "string"}]}},
        "quantization": {"type": "object", "required": ["scale", "zero_point"],
                         "properties": {"scale": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                                        "zero_point": {"type": "integer", "minimum": -128, "maximum": 255}}},
    },
}
_FIDELITY = {
    "type": ["object", "null"],
    "required": ["psnr_db", "max_abs_error", "photos"],
    "properties": {"psnr_db": {"type": "number"}, "max_abs_error": {"type": "number"},
                   "photos": {"type": "integer", "minimum": 1}, "source": {"type": "string", "maxLength": 200}},
}
_VERIFIED = {  # `animeedge verify`: the emulated ARM CPUs where the file gave this host's output
    "type": "array", "maxItems": 64,
    "items": {"type": "object", "required": ["arch", "cpu", "result"],
              "properties": {"arch": {"enum": ["arm64"]}, "cpu": {"type": "string", "maxLength": 64},
                             "emulator": {"type": "string"}, "onnxruntime": {"type": "string"},
                             "ai_edge_litert": {"type": "string"},
                             "max_abs_error": {"type": "number", "minimum": 0},
                             "psnr_db": {"type": "number", "minimum": 0},
                             "result": {"enum": ["bit-exact", "within 1e-4", "rounds differently"]}}},
}
_TEXT = {"type": "string", "maxLength": 200}
_MACHINE = {  # runtimes/machine.py: the machine the export's timings and recommendation come from
    "type": "object",
    "required": ["cpu", "flags", "cores", "os", "arch"],
    "maxProperties": 16,
    "properties": {
        "cpu": {"type": "string", "minLength": 1, "maxLength": 200}, "vendor": _TEXT, "cpu_id": _TEXT,
        "flags": {"type": "array", "maxItems": 64, "uniqueItems": True,
                  "items": {"type": "string", "pattern": "^[a-z0-9_]{1,32}$"}},
        "cores": {"type": "integer", "minimum": 1, "maximum": 1 << 16},
        "os": {"type": "string", "maxLength": 64}, "arch": {"type": "string", "maxLength": 64},
        "libraries": {"type": "object", "maxProperties": 16, "additionalProperties": False,
                      "patternProperties": {"^[A-Za-z0-9_.-]{1,64}$": {"type": "string", "maxLength": 64}}},
        "source": {"type": "string", "maxLength": 64},
    },
    "additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": 200},  # no nesting
}
ARTIFACT_SCHEMA = {
    "type": "object",
    "required": ["file", "format", "precision", "width", "resolution", "resolutions", "input", "output",
                 "value_range", "normalization", "params", "gmacs", "size_bytes", "sha256", "fidelity"],
    "properties": {
        "file": {"type": "string", "minLength": 1},
        "format": {"enum": list(FORMAT_NAMES)},
        "precision": {"enum": list(PRECISIONS)},
        "width": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1},
        "resolution": _RESOLUTION,
        "resolutions": {"type": "array", "items": _RESOLUTION, "minItems": 1, "maxItems": 64},
        "input": _TENSOR,
        "output": _TENSOR,
        "value_range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "normalization": {"type": "string"},
        "params": {"type": "integer", "minimum": 1},
        "gmacs": {"type": "number", "minimum": 0},
        "size_bytes": {"type": "integer", "minimum": 1, "maximum": 1 << 34},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "fidelity": _FIDELITY,
        "fidelity_note": {"type": "string"},
        "quality": {"type": "object", "required": ["psnr_db"], "properties": {"psnr_db": {"type": "number"}}},
        "quantization": {"type": "object"},
        "verified_on": _VERIFIED,
    },
}
MANIFEST_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["schema_version", "artifacts", "model", "tools", "recommended_precision"],
    "properties": {
        "schema_version": {"enum": [SCHEMA_VERSION]},
        "artifacts": {"type": "array", "items": ARTIFACT_SCHEMA, "minItems": 1},
        "model": {"type": "object", "required": ["sha256"]},
        "tools": {"type": "object", "additionalProperties": {"type": "string"}},
        "recommended_precision": {"type": "object", "additionalProperties": {"enum": list(PRECISIONS)}},
        "recommended_precision_by_width": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {"enum": list(PRECISIONS)}}},
        "speed": {"type": "object", "properties": {"p50_ms": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}}}},
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        "machine": _MACHINE,
    },
}
_validate = fastjsonschema.compile(MANIFEST_SCHEMA)


def package_versions(names) -> dict:
    """Installed versions of the named distributions (absent ones left out), plus Python's."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found | {"python": platform.python_version()}


def sha256_path(path) -> str:
    """sha256 of a file, or of a folder as described in the module docstring."""
    path = Path(path)
    if path.is_dir():
        lines = "".join(f"{sha256_path(f)}  {f.relative_to(path).as_posix()}\n" for f in sorted(_regular_files(path)))
        return hashlib.sha256(lines.encode()).hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def size_bytes(path) -> int:
    path = Path(path)
    return sum(f.lstat().st_size for f in _regular_files(path))


def _non_finite(value, where="manifest", depth=0):
    """Where the first NaN or infinity in a JSON value sits, or None; a UserError past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise UserError(f"invalid manifest: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((found for key, v in items if (found := _non_finite(v, f"{where}.{key}", depth + 1))), None)


def _check_quantization(artifact: dict):
    file = one_line(artifact["file"])
    for side in ("input", "output"):
        tensor = artifact[side]
        q, (low, high) = tensor.get("quantization"), ZERO_POINT_RANGE.get(tensor["dtype"], (None, None))
        if low is None:
            if q:
                raise UserError(f"invalid manifest: {file}: {tensor['dtype']} {side} has quantization")
        elif not q:
            raise UserError(f"invalid manifest: {file}: {tensor['dtype']} {side} has no quantization")
        elif not low <= q["zero_point"] <= high:
            raise UserError(f"invalid manifest: {file}: {side} zero point {q['zero_point']} is outside "
                            f"{tensor['dtype']}'s range {low}..{high}")


def validate(manifest: dict) -> dict:
    if (where := _non_finite(manifest)) is not None:
        raise UserError(f"invalid manifest: {one_line(where)} is not a finite number")
    try:
        manifest = _validate(manifest)
    except fastjsonschema.JsonSchemaException as e:  # the message names keys of the file
        raise UserError(f"invalid manifest: {one_line(e.message)}") from None
    for artifact in manifest["artifacts"]:
        _check_quantization(artifact)
    return manifest


@contextmanager
def os_errors(path):
    """An OSError on the way (a name too long, no permission) as a one-line UserError."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{exc.filename or path}: cannot be read ({exc.strerror or exc})") from None


def load_manifest(bundle) -> dict:
    with os_errors(bundle):
        return _load_manifest(Path(bundle) / MANIFEST, bundle)


def _load_manifest(path: Path, bundle) -> dict:
    if path.is_symlink():
        raise UserError(f"{path}: is a symbolic link; a bundle may only hold its own files")
    if not path.exists():
        raise UserError(f"{bundle}: not a bundle (no {MANIFEST}); make one with `animeedge export`")
    if not path.is_file():
        raise UserError(f"{path}: is a folder or a special file, not the manifest; re-export the bundle")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise UserError(f"{path}: {path.stat().st_size} bytes, over the {MAX_MANIFEST_BYTES >> 20} MB a manifest may have")
    try:
        manifest = json.loads(path.read_bytes().decode())  # NaN and Infinity parse; validate() names where
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: not a manifest (a JSON object is expected)")
    return validate(manifest)


def artifact_path(bundle, name: str) -> Path:
    """The bundle's own file (or Core ML folder) that a manifest names. Refused before
    anything is read: absolute paths, '..', backslashes, links anywhere on the way, and
    anything that is not a regular file or a folder of regular files."""
    bundle = Path(bundle)
    pure = PurePosixPath(name)
    if "\\" in name or pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise UserError(f"{name!r}: the manifest names a path outside the bundle; refused")
    path = bundle
    for part in pure.parts:
        path = path / part
        if path.is_symlink():
            raise UserError(f"{one_line(str(path))}: is a symbolic link; a bundle may only hold its own files")
    if not path.exists():
        raise UserError(f"{one_line(str(path))}: listed in the manifest but missing")
    if not path.resolve().is_relative_to(bundle.resolve()):
        raise UserError(f"{name!r}: resolves outside the bundle; refused")
    _regular_files(path)
    return path


def _regular_files(path: Path) -> list[Path]:
    """The regular files of an artifact: itself, or every file under a Core ML folder. A
    link or a special file anywhere is refused (lstat only: nothing is opened)."""
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode):
        return [path]
    if not stat.S_ISDIR(mode):
        raise UserError(f"{path}: not a regular file")
    files = []
    for root, dirs, names in os.walk(path):
        for name in dirs + names:
            entry = Path(root, name)
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise UserError(f"{entry}: is a symbolic link; a bundle may only hold its own files")
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UserError(f"{entry}: not a regular file")
            if stat.S_ISREG(mode):
                files.append(entry)
    return files


def verify_artifact(bundle, artifact: dict) -> Path:
    """The artifact's path, after checking that it is the bundle's own, that its size
    matches (no read yet) and then its sha256."""
    with os_errors(artifact["file"]):
        return _verified(bundle, artifact)


def _verified(bundle, artifact: dict) -> Path:
    path = artifact_path(bundle, artifact["file"])
    if size_bytes(path) != artifact["size_bytes"]:
        raise UserError(f"{path}: {size_bytes(path)} bytes, the manifest says {artifact['size_bytes']} "
                        "(modified or corrupted); re-export the bundle")
    if sha256_path(path) != artifact["sha256"]:
        raise UserError(f"{path}: sha256 does not match the manifest (modified or corrupted); re-export the bundle")
    return path


def format_manifest(manifest: dict) -> str:
    head = f"{'file':<34} {'format':<7} {'prec':<5} {'width':>5} {'res':>5} {'KB':>7} {'PSNR dB':>8} {'max err':>8} {'quality':>8}"
    rows = [head]
    for a in manifest["artifacts"]:
        fid = a["fidelity"] or {}
        rows.append(f"{a['file']:<34} {a['format']:<7} {a['precision']:<5} {a['width']:>5} {a['resolution']:>5} "
                    f"{a['size_bytes'] / 1024:>7.0f} {fid.get('psnr_db', '-'):>8} {fid.get('max_abs_error', '-'):>8} "
                    f"{a.get('quality', {}).get('psnr_db', '-'):>8}")
    speed = manifest.get("speed", {})
    rows.append(f"median latency at {speed.get('resolution')} px, width {speed.get('width')} (ms): "
                + json.dumps(speed.get("p50_ms", {})))
    rows.append("recommended precision: " + json.dumps(manifest["recommended_precision"])
                + ("; by width: " + json.dumps(manifest["recommended_precision_by_width"])
                   if "recommended_precision_by_width" in manifest else ""))
    return "\n".join(rows)
