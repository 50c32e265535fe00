"""How fast a generator fits the semantic target (generator/semantic.py): plain L1 to the
targets of a few training photos, on random crops, nothing else. A network that cannot
memorise a handful of pictures will not learn the target from thousands in a CPU budget.

    python experiments/semantic_fit.py [--init CKPT | --config '{"base_channels": 64}'] [--photos 8]
        [--steps 300] [--size 128] [--lr 6e-4] [--beta1 0.5] [--loss l1|blurred]

Prints the mean L1 ([-1, 1] units) of each 50 steps, plain and after a Gaussian blur of
sigma 1 px (a line one pixel aside costs little there); the identity's plain L1 against
the target is about 0.40. `--loss blurred` trains on the blurred L1 (shift-tolerant).
Targets come from (and go to) the training cache, .cache/superpixels.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


from animeedge.compress.quality import gaussian_blur_torch
from animeedge.generator.checkpoint import load_generator
from animeedge.generator.data import ImageStream, load_square, to_tensor
from animeedge.generator.guidance import SEMANTIC
from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig

ROOT = Path(__file__).resolve().parents[1]
LOAD = 288


def _generator(args):
    if args.init:
        g = load_generator(args.init)
    else:
        g = DoubleTailGenerator(GeneratorConfig(support_tail=False, **json.loads(args.config)))
    for name, p in g.named_parameters():  # per-width affines belong to `compress`
        p.requires_grad_(not name.endswith(("width_gain", "width_bias")))
    return g.train()


def _crops(pairs, rng, size, n=4):
    xs, ys = [], []
    for i in rng.integers(0, len(pairs), n):
        photo, target = pairs[i]
        y0, x0 = rng.integers(0, LOAD - size + 1, 2)
        xs.append(to_tensor(np.ascontiguousarray(photo[y0:y0 + size, x0:x0 + size])))
        ys.append(to_tensor(np.ascontiguousarray(target[y0:y0 + size, x0:x0 + size])))
    return torch.stack(xs), torch.stack(ys)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--init", help="start from this checkpoint (default: a fresh network of --config)")
    p.add_argument("--config", default="{}", help="generator config overrides, JSON")
    p.add_argument("--photos", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--loss", choices=["l1", "blurred"], default="l1")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "photos" / "train"))
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    stream = ImageStream(args.data, args.size, 0, ROOT / ".cache" / "superpixels", LOAD)
    stream.guide_style = SEMANTIC
    photos = [load_square(f, LOAD) for f in stream.files[:args.photos]]
    pairs = [(rgb, stream.guide(f, rgb)) for f, rgb in zip(stream.files, photos)]
    g = _generator(args)
    opt = torch.optim.Adam([q for q in g.parameters() if q.requires_grad], args.lr, betas=(args.beta1, 0.999))
    blur = lambda t: gaussian_blur_torch(t, 7, 1.0)
    rng, start, window = np.random.default_rng(0), time.time(), []
    for step in range(1, args.steps + 1):
        x, y = _crops(pairs, rng, args.size)
        out = g(x)
        plain, blurred = F.l1_loss(out, y), F.l1_loss(blur(out), blur(y))
        opt.zero_grad()
        (plain if args.loss == "l1" else blurred).backward()
        opt.step()
        window.append((plain.item(), blurred.item()))
        if step % 50 == 0 or step == args.steps:
            mean = np.mean(window, axis=0)
            print(f"steps {step - len(window) + 1}-{step}: mean L1 {mean[0]:.3f}, blurred {mean[1]:.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)
            window = []


if __name__ == "__main__":
    main()
