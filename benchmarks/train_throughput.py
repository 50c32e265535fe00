"""Training throughput of the default preset on this machine (seconds per GAN step).

    python benchmarks/train_throughput.py [--size 256 --batch 4] [--steps 6] [--threads 2]

Uses synthetic images (no data needed); the first GAN step is excluded as warm-up."""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animeedge.generator.train import Trainer, load_config


def _folder(path: Path, seed: int, side: int, n: int = 8):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        Image.fromarray(img).resize((side, side), Image.BICUBIC).save(path / f"{i}.png")
    return path


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config("default")
    side = args.size + args.size // 8
    cfg["train"] |= {"size": args.size, "batch": args.batch, "load_size": side, "init_steps": 0,
                     "ckpt_every": 10**9}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trainer = Trainer(cfg, _folder(tmp / "p", 0, side), _folder(tmp / "a", 1, side), tmp / "run",
                          cache_dir=tmp / "cache", progress=False)
        trainer.run(2)  # warm-up, fills the superpixel cache
        start = time.perf_counter()
        trainer.run(2 + args.steps)
        sec = (time.perf_counter() - start) / args.steps
    print(json.dumps({"size": args.size, "batch": args.batch, "threads": args.threads,
                      "s_per_step": round(sec, 2), "steps_per_s": round(1 / sec, 3),
                      "images_per_s": round(args.batch / sec, 2)}))


if __name__ == "__main__":
    main()
