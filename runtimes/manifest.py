"""The bundle manifest: what `animeedge export` writes and every consumer (runtimes, bench,
app) reads. Validated against MANIFEST_SCHEMA on load; each artifact's sha256 is checked
before the file is used.

A Core ML .mlpackage is a folder: its sha256 is that of the text made of one line
"<sha256 of file>  <path relative to the package, '/'-separated>\\n" per file, sorted by path.
"""
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

import fastjsonschema

from .errors import UserError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
FORMATS = ("onnx", "tflite", "coreml")
PRECISIONS = ("fp32", "fp16", "int8")

_TENSOR = {
    "type": "object",
    "required": ["name", "layout", "dtype"],
    "properties": {
        "name": {"type": "string"},
        "layout": {"enum": ["NCHW", "NHWC"]},
        "dtype": {"enum": ["float32", "float16", "int8", "uint8"]},
        "shape": {"type": "array", "items": {"type": ["integer", "string"]}},
        "quantization": {"type": "object", "properties": {"scale": {"type": "number"},
                                                          "zero_point": {"type": "integer"}}},
    },
}
_FIDELITY = {
    "type": ["object", "null"],
    "required": ["psnr_db", "max_abs_error", "photos"],
    "properties": {"psnr_db": {"type": "number"}, "max_abs_error": {"type": "number"},
                   "photos": {"type": "integer", "minimum": 1}},
}
ARTIFACT_SCHEMA = {
    "type": "object",
    "required": ["file", "format", "precision", "width", "resolution", "resolutions", "input", "output",
                 "value_range", "normalization", "params", "gmacs", "size_bytes", "sha256", "fidelity"],
    "properties": {
        "file": {"type": "string", "minLength": 1},
        "format": {"enum": list(FORMATS)},
        "precision": {"enum": list(PRECISIONS)},
        "width": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "resolution": {"type": "integer", "minimum": 8},
        "resolutions": {"type": "array", "items": {"type": "integer", "minimum": 8}, "minItems": 1},
        "input": _TENSOR,
        "output": _TENSOR,
        "value_range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "normalization": {"type": "string"},
        "params": {"type": "integer", "minimum": 1},
        "gmacs": {"type": "number", "minimum": 0},
        "size_bytes": {"type": "integer", "minimum": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "fidelity": _FIDELITY,
        "fidelity_note": {"type": "string"},
        "quality": {"type": "object", "required": ["psnr_db"], "properties": {"psnr_db": {"type": "number"}}},
        "quantization": {"type": "object"},
    },
}
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["schema_version", "artifacts", "model", "tools", "recommended_precision"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "artifacts": {"type": "array", "items": ARTIFACT_SCHEMA, "minItems": 1},
        "model": {"type": "object", "required": ["sha256"]},
        "tools": {"type": "object", "additionalProperties": {"type": "string"}},
        "recommended_precision": {"type": "object", "additionalProperties": {"enum": list(PRECISIONS)}},
        "speed": {"type": "object"},
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
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
        lines = "".join(f"{sha256_path(f)}  {f.relative_to(path).as_posix()}\n"
                        for f in sorted(p for p in path.rglob("*") if p.is_file()))
        return hashlib.sha256(lines.encode()).hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def size_bytes(path) -> int:
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def validate(manifest: dict) -> dict:
    try:
        return _validate(manifest)
    except fastjsonschema.JsonSchemaException as e:
        raise UserError(f"invalid manifest: {e.message}") from None


def load_manifest(bundle) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise UserError(f"{bundle}: not a bundle (no {MANIFEST}); make one with `animeedge export`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    return validate(manifest)


def verify_artifact(bundle, artifact: dict) -> Path:
    """The artifact's path, after checking it exists and matches its sha256."""
    path = Path(bundle) / artifact["file"]
    if not path.exists():
        raise UserError(f"{path}: listed in the manifest but missing")
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
    rows.append("recommended precision: " + json.dumps(manifest["recommended_precision"]))
    return "\n".join(rows)
