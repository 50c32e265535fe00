"""Where a generator misses the semantic target (generator/semantic.py): the mean L1 between
its output and the target, region by region, on portraits its training never saw, with the
photo itself (no stylization) and the embedded default beside it. A region the model cannot
do better on than the photo does is one whose target it cannot predict from the pixels.

    python experiments/semantic_residual.py --model CKPT [CKPT ...] [--photos ../shared/data/photos/calib] [--n 48]

L1 in [0, 1] units over RGB, at 256 px. Regions: skin, hair, the rest of the person (clothes),
the background, the face's features (eyes, brows, lips) and the inked lines.
"""
import argparse

import numpy as np


from animeedge.calibration.data import shared_root
from animeedge.generator.checkpoint import DEFAULT_MODEL
from animeedge.generator.data import evenly_spaced, list_images, load_square
from animeedge.generator.faces import FaceFinder
from animeedge.generator.inference import TorchStylizer
from animeedge.generator.semantic import semantic_target

SHARED = shared_root()

REGIONS = ("skin", "hair", "clothes", "background", "features", "lines", "all")


def region_masks(parts) -> dict:
    features = parts.lips | np.any(parts.eyes + parts.brows, axis=0)
    lines = parts.lines
    return {"skin": parts.skin & ~lines, "hair": parts.hair & ~lines,
            "clothes": parts.person & ~(parts.skin | parts.hair | parts.face | lines),
            "background": ~parts.person & ~parts.face & ~lines, "features": features & ~lines, "lines": lines,
            "all": np.ones_like(lines)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", nargs="+", required=True)
    p.add_argument("--photos", default=str(SHARED / "photos" / "calib"))
    p.add_argument("--n", type=int, default=48)
    args = p.parse_args()
    finder = FaceFinder()
    photos = [load_square(f, 256) for f in evenly_spaced(list_images(args.photos), args.n)]
    targets = [semantic_target(p, finder) for p in photos]
    kept = [(p, t, region_masks(parts)) for p, (t, parts) in zip(photos, targets) if parts.face is not None]
    stylizers = {"the photo itself": lambda rgb: rgb, "the embedded default": TorchStylizer(DEFAULT_MODEL)}
    stylizers |= {m: TorchStylizer(m) for m in args.model}
    print(f"{len(kept)} portraits with a face of {args.photos}; mean L1 to the target, [0, 1] units")
    print("| | " + " | ".join(REGIONS) + " |")
    print("| --- |" + " ---: |" * len(REGIONS))
    for name, stylize in stylizers.items():
        errors = {r: [] for r in REGIONS}
        for photo, target, masks in kept:
            diff = np.abs(stylize(photo).astype(np.float32) - target.astype(np.float32)).mean(-1) / 255
            for r in REGIONS:
                if masks[r].any():
                    errors[r].append(diff[masks[r]].mean())
        print(f"| {name} | " + " | ".join(f"{np.mean(errors[r]):.3f}" for r in REGIONS) + " |", flush=True)


if __name__ == "__main__":
    main()
