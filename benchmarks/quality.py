"""Quality of a generator on portraits its training never saw: anime-ness, structure,
temporal stability, and a before/after contact sheet (kept out of git: research images).

    python benchmarks/quality.py [--model CKPT] [--photos ../shared/data/photos/calib]
        [--anime ../shared/data/anime/eval] [--n 100] [--sheet FILE.png] [--json FILE]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from generator.data import evenly_spaced, list_images, load_square
from generator.inference import TorchStylizer
from generator.metrics import (anime_probability, pan_zoom_frames, structure_correlation,
                               temporal_ratio, train_classifier)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def contact_sheet(pairs, path, cols: int = 6, side: int = 128):
    rows = -(-len(pairs) // cols)
    sheet = Image.new("RGB", (cols * side, rows * 2 * side))
    for i, (src, out) in enumerate(pairs):
        x, y = (i % cols) * side, (i // cols) * 2 * side
        sheet.paste(Image.fromarray(src).resize((side, side)), (x, y))
        sheet.paste(Image.fromarray(out).resize((side, side)), (x, y + side))
    sheet.save(path)


def evaluate(model, photos_dir, anime_dir, n: int, width: float = 1.0, sheet=None) -> dict:
    classifier, accuracy = train_classifier(photos_dir, anime_dir)
    stylize = TorchStylizer(model, width)
    files = evenly_spaced(list_images(photos_dir), n)
    photos = [load_square(f, 256) for f in files]
    outs = [stylize(p) for p in photos]
    frames = pan_zoom_frames(load_square(files[0], 512))
    result = {
        "model": str(model), "width": width, "portraits": len(files), "classifier_heldout_accuracy": accuracy,
        "anime_fraction_stylized": float(np.mean(anime_probability(classifier, outs) > 0.5)),
        "anime_fraction_photos": float(np.mean(anime_probability(classifier, photos) > 0.5)),
        "structure_corr": float(np.mean([structure_correlation(p, o) for p, o in zip(photos, outs)])),
        "temporal_ratio": temporal_ratio(stylize, frames),
    }
    if sheet:
        contact_sheet(list(zip(photos, outs))[:24], sheet)
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model")
    p.add_argument("--photos", default=str(SHARED / "photos" / "calib"))
    p.add_argument("--anime", default=str(SHARED / "anime" / "eval"))
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--sheet")
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(2)
    result = evaluate(args.model, args.photos, args.anime, args.n, args.width, args.sheet)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
