"""Scores classical guide parameters (generator/guidance.py) the way `animeedge quality` scores models:
anime-ness by development judges, structure, temporal and flicker. The sweep behind the
guide styles and the anime-ness vs temporal trade-off in the README.

    python experiments/guide_sweep.py [--base bold] '{"p": 60}' '{"line_smoothing": 1}' ...

Each argument is a JSON dict of parameters overriding the base style. Judges as quality.py's
development judge by default (training folders, three classifiers; a variant counts by its
worst), so the held-out folders stay out of the choice.
"""
import argparse
import json

import torch

from animeedge.calibration.data import shared_root
from animeedge.generator.guidance import STYLES, anime_guide
from animeedge.quality import Judge

SHARED = shared_root()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("variants", nargs="*", help="JSON dicts of guide parameters")
    p.add_argument("--base", default="sketch", choices=sorted(STYLES))
    p.add_argument("--photos", default=str(SHARED / "photos" / "train"))
    p.add_argument("--anime", default=str(SHARED / "anime" / "train"))
    p.add_argument("--judges", type=int, default=3)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--videos", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(2)
    judge = Judge(args.photos, args.anime, args.n, args.videos, args.judges)
    for text in args.variants or ["{}"]:
        style = STYLES[args.base] | json.loads(text)
        r = judge.evaluate(text, stylize=lambda rgb, style=style: anime_guide(rgb, style))
        print(f"{args.base} + {text}: anime {r['anime_fraction_stylized']:.2f} {r['anime_fraction_per_judge']}, "
              f"structure {r['structure_corr']:.3f}, temporal {r['temporal_ratio']:.2f}, "
              f"flicker {r['flicker_ratio']:.2f}", flush=True)


if __name__ == "__main__":
    main()
