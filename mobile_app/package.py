"""Stage the phone build: `python -m mobile_app.package --bundle B --out build/phone`.

Copies what runs on the phone (runtimes/, calibration/, mobile_app/, animeedge/cli.py; no
torch, no exporters), the bundle's TFLite files with a manifest listing only them (hashes
unchanged, so the app still verifies every file), buildozer.spec, and a main.py that starts
`animeedge app` on that bundle. The staged folder runs on a desktop too
(`python main.py --source synthetic --frames 30`), which is how it is checked here; the
phone build itself is `cd build/phone && buildozer android debug` (README, "Phones").
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

from runtimes.atomic import atomic_dir
from runtimes.errors import UserError
from runtimes.manifest import MANIFEST, load_manifest, validate, verify_artifact

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtimes", "calibration", "mobile_app")
DATA = ("*.py", "*.json", "*.tflite", "*.onnx", "*.spec")
MAIN = '''import sys
from pathlib import Path

from animeedge.cli import main

sys.exit(main(["app", "--bundle", str(Path(__file__).parent / "bundle"), *sys.argv[1:]]))
'''


def _copy_package(name: str, dest: Path):
    for pattern in DATA:
        for f in (ROOT / name).glob(pattern):
            (dest / name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / name / f.name)


def stage(bundle, out, formats=("tflite",)) -> Path:
    manifest = load_manifest(bundle)
    kept = [a for a in manifest["artifacts"] if a["format"] in formats]
    if not kept:
        raise UserError(f"{bundle}: no {'/'.join(formats)} artifacts to package")
    sources = {a["file"]: verify_artifact(bundle, a) for a in kept}  # the bundle's own files, unmodified
    with atomic_dir(out) as tmp:
        for name in PACKAGES:
            _copy_package(name, tmp)
        (tmp / "animeedge").mkdir()
        for f in ("__init__.py", "cli.py"):
            shutil.copy2(ROOT / "animeedge" / f, tmp / "animeedge" / f)
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
        shutil.move(tmp / "mobile_app" / "buildozer.spec", tmp / "buildozer.spec")
    return Path(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mobile_app.package", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--out", default="build/phone")
    p.add_argument("--formats", default="tflite", help="comma-separated formats to ship (default tflite)")
    args = p.parse_args(argv)
    try:
        out = stage(args.bundle, args.out, tuple(args.formats.split(",")))
    except UserError as exc:
        print(f"animeedge: error: {exc}", file=sys.stderr)
        return 2
    print(f"staged: {out} (then: cd {out} && buildozer android debug)")


if __name__ == "__main__":
    sys.exit(main())
