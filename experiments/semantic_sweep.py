"""Which semantic targets read as anime: variants of generator/semantic.py's target (its
TargetStyle), and the classical guides for reference, scored by the anime classifiers of
animeedge quality with the skin figures beside them. The target is what a network trained
toward it can at best become, so a variant that misses the anime goal here misses it after
training too.

    python experiments/semantic_sweep.py [--photos ../shared/data/photos/train]
        [--anime ../shared/data/anime/train] [--n 48] [--judges 3] [--json FILE]
        [--public-sheet FILE.jpg]

By default it scores training portraits with the development judges (three classifiers on
draws of the training folders that leave the scored portraits out), so the held-out set
stays unseen; `--photos ../shared/data/photos/calib --anime ../shared/data/anime/eval`
scores the held-out set. A variant counts by its worst judge. `--public-sheet` draws, on
pictures the project may publish, the photo | the cartoon filter | the target | the target
with texture lines everywhere, the rest lifted | the cel guide, and stops.
"""
import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path


from animeedge.calibration.data import shared_root
from animeedge.generator.faces import FaceFinder
from animeedge.generator.guidance import anime_guide, cartoon_filter
from animeedge.generator.semantic import TargetStyle, semantic_target
from animeedge.quality import ANIME_GOAL, Judge, contact_sheet, public_pictures

SHARED = shared_root()

T = TargetStyle()
VARIANTS = {
    "the target": T,
    "eyes x1.4": replace(T, eye_scale=1.4),
    "eyes x1.8": replace(T, eye_scale=1.8),
    "lines 3 px": replace(T, line_scale=96),
    "lines 1 px": replace(T, line_scale=256),
    "skin lifted (gamma 0.7)": replace(T, skin_gamma=0.7),
    "rest lifted more (gamma 0.3)": replace(T, lightness_gamma=0.3),
    "texture lines in hair": replace(T, texture_lines="hair"),
    "texture lines outside skin": replace(T, texture_lines="outside_skin"),
    "texture lines outside skin, rest lifted (gamma 0.3)": replace(T, texture_lines="outside_skin",
                                                                  lightness_gamma=0.3),
    "texture lines everywhere": replace(T, texture_lines="everywhere"),
    "texture lines everywhere, rest lifted (gamma 0.3)": replace(T, texture_lines="everywhere",
                                                                lightness_gamma=0.3),
}


SHEET = ("the target", "texture lines everywhere, rest lifted (gamma 0.3)")


def write_public_sheet(path):
    finder, photos = FaceFinder(), public_pictures()
    columns = [photos, [cartoon_filter(p) for p in photos]]
    columns += [[semantic_target(p, finder, VARIANTS[name])[0] for p in photos] for name in SHEET]
    columns.append([anime_guide(p, "cel") for p in photos])
    contact_sheet(columns, path, side=256, groups=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--photos", default=str(SHARED / "photos" / "train"))
    p.add_argument("--anime", default=str(SHARED / "anime" / "train"))
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--judges", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--public-sheet", help="write the comparison on publishable pictures to this file, then stop")
    args = p.parse_args()
    if args.public_sheet:
        write_public_sheet(args.public_sheet)
        return
    judge = Judge(args.photos, args.anime, args.n, videos=0, judges=args.judges)
    finder = FaceFinder()
    stylizers = {name: (lambda rgb, s=style: semantic_target(rgb, finder, s)[0]) for name, style in VARIANTS.items()}
    stylizers |= {"bold guide": lambda rgb: anime_guide(rgb, "bold"), "cel guide": lambda rgb: anime_guide(rgb, "cel"),
                  "cartoon filter": cartoon_filter}
    print(f"{args.n} portraits of {args.photos}, {args.judges} judges; goal: anime >= {ANIME_GOAL}")
    print("| variant | anime (worst judge) | per judge | structure "
          "| skin: lightness rank / hue change / chroma ratio |")
    print("| --- | ---: | --- | ---: | --- |")
    rows = []
    for name, stylize in stylizers.items():
        r = judge.evaluate(name, stylize=stylize)
        s = r["skin"]
        print(f"| {name} | {r['anime_fraction_stylized']:.2f} | "
              + " / ".join(f"{f:.2f}" for f in r["anime_fraction_per_judge"])
              + f" | {r['structure_corr']:.2f} | {s['lightness_rank_corr']:.2f} / {s['hue_change_deg']:.1f} deg"
              f" / {s['chroma_ratio']:.2f} |", flush=True)
        style = VARIANTS.get(name)
        rows.append({k: r[k] for k in ("model", "anime_fraction_stylized", "anime_fraction_per_judge",
                                       "structure_corr", "skin")} | {"style": asdict(style) if style else None})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
