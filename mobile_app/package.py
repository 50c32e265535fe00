"""Stage the phone build: `animeedge package --bundle B --out build/phone`.

Copies what runs on the phone (animeedge's cli and the runtimes, calibration and mobile_app
packages; no torch, no exporters), the bundle's TFLite files with a manifest listing only them (hashes
unchanged, so the app still verifies every file), buildozer.spec, and a main.py that starts
`animeedge app` on that bundle. The staged folder runs on a desktop too
(`python main.py --source synthetic --frames 30`), which is how it is checked here; the
phone build itself is `cd build/phone && buildozer android debug` (README, "Phones").
"""
import importlib
import json
import shutil
from pathlib import Path

from animeedge.runtimes.atomic import atomic_dir
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.manifest import MANIFEST, load_manifest, validate, verify_artifact

PACKAGES = ("animeedge.runtimes", "animeedge.calibration", "animeedge.mobile_app")
CLI_FILES = ("__init__.py", "cli.py", "arguments.py")  # animeedge's own modules the app's CLI imports
DATA = ("*.py", "*.json", "*.tflite", "*.onnx", "*.spec")
MAIN = '''import sys
from pathlib import Path

from animeedge.cli import main

sys.exit(main(["app", "--bundle", str(Path(__file__).parent / "bundle"), *sys.argv[1:]]))
'''


def _copy_package(name: str, dest: Path):
    """The package's files (found by import: the repo's folder, or site-packages) under dest,
    at the path of its import name."""
    source = Path(importlib.import_module(name).__file__).parent
    target = dest.joinpath(*name.split("."))
    target.mkdir(parents=True, exist_ok=True)
    for pattern in DATA:
        for f in source.glob(pattern):
            shutil.copy2(f, target / f.name)


def stage(bundle, out, formats=("tflite",)) -> Path:
    manifest = load_manifest(bundle)
    kept = [a for a in manifest["artifacts"] if a["format"] in formats]
    if not kept:
        raise UserError(f"{bundle}: no {'/'.join(formats)} artifacts to package")
    sources = {a["file"]: verify_artifact(bundle, a) for a in kept}  # the bundle's own files, unmodified
    with atomic_dir(out) as tmp:
        for name in PACKAGES:
            _copy_package(name, tmp)
        top = Path(importlib.import_module("animeedge").__file__).parent
        for f in CLI_FILES:
            shutil.copy2(top / f, tmp / "animeedge" / f)
        for name, source in sources.items():
            (tmp / "bundle" / name).parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, tmp / "bundle" / name)
        subset = validate(dict(manifest, artifacts=kept,
                               recommended_precision={f: p for f, p in manifest["recommended_precision"].items()
                                                      if f in formats},
                               recommended_precision_by_width={
                                   f: by for f, by in manifest.get("recommended_precision_by_width", {}).items()
                                   if f in formats}))
        (tmp / "bundle" / MANIFEST).write_text(json.dumps(subset, indent=2) + "\n")
        (tmp / "main.py").write_text(MAIN)
        shutil.move(tmp / "animeedge" / "mobile_app" / "buildozer.spec", tmp / "buildozer.spec")
    return Path(out)

