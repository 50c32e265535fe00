"""The clean cel target's face measures (generator/face_measures.py), this checkout's target
against an earlier revision's and the classical cartoon filter, at full size and on the
app-scale set (each portrait made small, its face 32-80 px in a 256-px frame, the target made
at that size). The earlier target is read from git (`git show REV:generator/cel.py`).

    python experiments/face_target.py --against 35abd2e [--n 30]
"""
import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

from animeedge.calibration.data import shared_data
from animeedge.face_scores import FaceSet
from animeedge.generator import cel
from animeedge.generator.data import evenly_spaced, list_images, load_square
from animeedge.generator.faces import FaceFinder
from animeedge.generator.guidance import cartoon_filter

ROOT = Path(__file__).resolve().parents[1]


def earlier_target(rev: str, folder: Path):
    """generator/cel.py at `rev`, imported as a module of the package (its relative imports
    resolve against this checkout's other modules)."""
    source = subprocess.run(["git", "show", f"{rev}:generator/cel.py"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    path = folder / "cel_earlier.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("animeedge.generator.cel_earlier", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="35abd2e", help="the revision whose target is compared")
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    finder = FaceFinder()
    photos = [load_square(f, 256) for f in evenly_spaced(list_images(shared_data("photos/calib", "--photos")), args.n)]
    faces = FaceSet(photos, finder)
    with tempfile.TemporaryDirectory() as tmp:
        makers = {f"the target at {args.against}": earlier_target(args.against, Path(tmp)).cel_target,
                  "the target now": cel.cel_target}
        rows = {name: (faces.full([make(p, finder)[0] for p in photos]),
                       faces.app(make_small=lambda s, make=make: make(s, finder)[0])) for name, make in makers.items()}
    rows["the cartoon filter"] = (faces.full([cartoon_filter(p) for p in photos]), faces.app(cartoon_filter))
    print(f"{len(faces.items)} portraits with a face; full size | app scale")
    print("| picture | eyes: L* corr | near-black x | fold ink | upper-lip ink | teeth kept |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (f, a) in rows.items():
        cells = [f"{f['eye_corr']:.2f} / {a['eye_corr']:.2f}", f"{f['eye_black_ratio']:.2f} / {a['eye_black_ratio']:.2f}",
                 f"{f['fold_ink']:.1%} / {a['fold_ink']:.1%}", f"{f['lip_ink_mean']:.1%} / {a['lip_ink_mean']:.1%}",
                 f"{f['teeth_kept']:.2f} / {a['teeth_kept']:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"eyes scored: {rows['the target now'][0]['eyes']} (full), smiles {rows['the target now'][0]['smiles']}; "
          "faces 32-80 px wide at app scale")


if __name__ == "__main__":
    main()
