"""The clean cel target (generator/cel.py): its public contact sheet, and the
memorisation probe that asks whether a small convolutional network can learn it.

    python experiments/cel_target.py sheet docs/cel_target.jpg
    python experiments/cel_target.py figures [--photos ../shared/data/photos/calib] [--n 48]
    python experiments/cel_target.py fit [--target cel|semantic] [--head rgb|ink] [--photos 64]
        [--steps 300] [--evals 3] [--size 96] [--scored 16] [--data ../shared/data/photos/train] [--json FILE]

`sheet` draws, on pictures the project may publish (animeedge.quality's public_pictures,
and the astronaut's face with a glasses frame drawn on it here): photo | classical cartoon
filter | cel guide | the clean cel target.

`figures` scores the target itself against the photo, beside the classical filters and the
semantic target, on --n portraits: the skin figures, the hair and clothes hue
change, the share of inked pixels, the strokes per picture and the seconds per target.

`fit` trains a fresh generator of the default's config (no support tail) on the targets of
the first --photos training photos, at 256 px, on random --size crops, batch 4, Adam 6e-4
(beta1 0.5), 2 threads, and scores it --evals times at 256 px on --scored of those same photos
(memorisation), evenly spaced:
- the line F-score against the target's line mask, 2 px tolerance. A pixel of the output is
  ink where its L* is at least halfway from the target's local fill to the target's ink;
  both masks are scored only where that fill is over 15 L* lighter than the ink (a line on
  black hair is invisible in any picture);
- the mean CIELAB delta-E (CIE76) to the target in skin, hair, clothes and background (face
  models' regions; the target's lines, widened by 1 px, left out).
Step 0 scores the photo itself. `--head rgb` fits the output with L1; `--head ink` gives the
network an ink matte: its last conv has a fourth channel `a` (a sigmoid) and the output is
`fill * (1 - a) + INK * a`; the fill learns L1 off the target's lines, the matte a
class-balanced BCE against the line mask.
"""
import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


from animeedge.calibration.data import shared_root
from animeedge.generator import cel, semantic
from animeedge.generator.data import evenly_spaced, list_images, load_square, to_tensor
from animeedge.generator.cel_fit import REGION_NAMES, CelFit, mean_scores
from animeedge.generator.faces import FaceFinder
from animeedge.generator.guidance import anime_guide, cartoon_filter
from animeedge.generator.metrics import region_hue_change, skin_figures
from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
from animeedge.quality import contact_sheet, hair_and_clothes, public_pictures
from animeedge.runtimes.atomic import atomic_path

SHARED = shared_root()

SIDE = 256


def with_glasses(rgb, finder):
    """A picture made here: a dark glasses frame drawn over the eyes the face mesh finds."""
    out = rgb.copy()
    face = finder.find(rgb)
    boxes = [np.concatenate([face.points[e].min(0) - 6, face.points[e].max(0) + 6]).round().astype(int)
             for e in semantic.EYES]
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(out, (x0, y0), (x1, y1), (28, 24, 24), 3)
    (_, _, left, _), (right, _, _, _) = sorted(boxes, key=lambda b: b[0])
    y = int(np.mean([(b[1] + b[3]) / 2 for b in boxes]))
    cv2.line(out, (left, y), (right, y), (28, 24, 24), 3)
    return out


def write_sheet(path):
    finder, photos = FaceFinder(), public_pictures(SIDE)
    photos.insert(2, with_glasses(photos[1], finder))
    columns = [photos, [cartoon_filter(p) for p in photos], [anime_guide(p, "cel") for p in photos],
               [cel.cel_target(p, finder)[0] for p in photos]]
    with atomic_path(Path(path)) as tmp:
        contact_sheet(columns, tmp, side=SIDE, groups=1)


def _strokes(lines) -> int:
    return cv2.connectedComponents(lines.astype(np.uint8), connectivity=8)[0] - 1


def _semantic_with_lines(rgb, finder):
    target, parts = semantic.semantic_target(rgb, finder)
    return target, parts.lines


def figures(args):
    finder = FaceFinder()
    photos = [load_square(f, SIDE) for f in evenly_spaced(list_images(args.photos), args.n)]
    masks = [hair_and_clothes(p, finder) for p in photos]
    makers = {"the clean cel target": lambda p: cel.cel_target(p, finder),
              "the cel target without face models": cel.cel_target,
              "the semantic target": lambda p: _semantic_with_lines(p, finder),
              "the cel guide": lambda p: (anime_guide(p, "cel"), None),
              "the cartoon filter": lambda p: (cartoon_filter(p), None)}
    print(f"{len(photos)} portraits of {args.photos}")
    print("| | skin: L* rank / hue change / chroma ratio | hair and clothes hue change | inked | strokes "
          "| s per picture |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, make in makers.items():
        start = time.time()
        made = [make(p) for p in photos]
        seconds = (time.time() - start) / len(photos)
        outs = [t for t, _ in made]
        s = skin_figures(photos, outs)
        ink = "- | -"
        if made[0][1] is not None:
            ink = f"{np.mean([m.mean() for _, m in made]):.1%} | {np.mean([_strokes(m) for _, m in made]):.0f}"
        print(f"| {name} | {s['lightness_rank_corr']:.2f} / {s['hue_change_deg']:.1f} deg / {s['chroma_ratio']:.2f} "
              f"| {region_hue_change(photos, outs, masks):.1f} deg | {ink} | {seconds:.2f} |", flush=True)


def example(photo, finder, target_name) -> CelFit:
    """A training photo, its target and line mask, and its regions."""
    if target_name == "cel":
        return CelFit(photo, finder)
    target, parts = semantic.semantic_target(photo, finder)
    return CelFit(photo, finder, target, parts.lines, semantic.INK.astype(np.uint8))


class InkHead(nn.Module):
    """The network's last conv with a fourth channel: the ink matte (the ink head's composite)."""

    def __init__(self, g: DoubleTailGenerator, ink):
        super().__init__()
        c = g.main_tail[-2].in_channels
        g.main_tail[-2] = nn.Conv2d(c, 4, 3, padding=1, padding_mode="reflect")
        g.main_tail[-1] = nn.Identity()
        self.g = g
        self.register_buffer("ink", torch.tensor(ink / 127.5 - 1, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x):
        y = self.g(x)
        fill, logit = torch.tanh(y[:, :3]), y[:, 3:]
        a = torch.sigmoid(logit)
        return fill * (1 - a) + self.ink * a, fill, logit


def _batch(examples, rng, size, n=4):
    xs, ys, ms = [], [], []
    for i in rng.integers(0, len(examples), n):
        e = examples[i]
        y0, x0 = rng.integers(0, SIDE - size + 1, 2)
        crop = (slice(y0, y0 + size), slice(x0, x0 + size))
        xs.append(to_tensor(np.ascontiguousarray(e.photo[crop])))
        ys.append(to_tensor(np.ascontiguousarray(e.target[crop])))
        ms.append(torch.from_numpy(e.lines[crop].astype(np.float32))[None])
    return torch.stack(xs), torch.stack(ys), torch.stack(ms)


def _loss(model, head, x, y, m):
    if head == "rgb":
        return F.l1_loss(model(x), y)
    _, fill, logit = model(x)
    off = 1 - m
    fill_l1 = ((fill - y).abs() * off).sum() / (3 * off.sum()).clamp(min=1)
    balance = (off.sum() / m.sum().clamp(min=1)).clamp(max=50)  # lines are a few % of the pixels
    bce = F.binary_cross_entropy_with_logits(logit, m, pos_weight=balance)
    return fill_l1 + 0.2 * bce


@torch.no_grad()
def _outputs(model, head, examples) -> list:
    model.eval()
    outs = []
    for e in examples:
        y = model(to_tensor(e.photo)[None])
        y = y if head == "rgb" else y[0]
        outs.append(((y[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8))
    model.train()
    return outs


def _summary(step, scores, l1=None) -> dict:
    return {"step": step, "l1": l1} | mean_scores(scores)


def _print(row, seconds):
    l1 = "    -" if row["l1"] is None else f"{row['l1']:.3f}"
    print(f"| {row['step']} | {l1} | {row['f']:.2f} ({row['p']:.2f} / {row['r']:.2f}) | "
          + " / ".join(f"{row[k]:.1f}" for k in REGION_NAMES) + f" | {seconds:.0f} s |", flush=True)


def fit(args):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    finder = FaceFinder()
    files = list_images(args.data)[:args.photos]
    start = time.time()
    examples = [example(load_square(f, SIDE), finder, args.target) for f in files]
    print(f"{len(examples)} photos of {args.data}, target {args.target}, head {args.head}; targets made in "
          f"{time.time() - start:.0f} s")
    print("| step | L1 (train crops) | line F (precision / recall) | delta-E skin / hair / clothes / background "
          "| time |")
    print("| ---: | ---: | --- | --- | ---: |")
    scored = [examples[i] for i in np.linspace(0, len(examples) - 1, min(args.scored, len(examples))).astype(int)]
    rows = [_summary(0, [e.score(e.photo) for e in scored])]
    _print(rows[-1], time.time() - start)
    g = DoubleTailGenerator(GeneratorConfig(support_tail=False))
    model = g.train() if args.head == "rgb" else InkHead(g, np.asarray(examples[0].ink, np.float32)).train()
    opt = torch.optim.Adam(model.parameters(), args.lr, betas=(0.5, 0.999))
    rng, window, start = np.random.default_rng(0), [], time.time()
    every = max(1, args.steps // args.evals)
    for step in range(1, args.steps + 1):
        x, y, m = _batch(examples, rng, args.size)
        loss = _loss(model, args.head, x, y, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            out = model(x) if args.head == "rgb" else model(x)[0]
            window.append(F.l1_loss(out, y).item())
        if step % every == 0 or step == args.steps:
            outs = _outputs(model, args.head, scored)
            rows.append(_summary(step, [e.score(o) for e, o in zip(scored, outs)], float(np.mean(window))))
            window = []
            _print(rows[-1], time.time() - start)
    if args.json:
        with atomic_path(Path(args.json)) as tmp:
            tmp.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sheet", help="the public contact sheet")
    s.add_argument("path")
    q = sub.add_parser("figures", help="the target against the photo, beside the filters")
    q.add_argument("--photos", default=str(SHARED / "photos" / "calib"))
    q.add_argument("--n", type=int, default=48)
    f = sub.add_parser("fit", help="the memorisation probe")
    f.add_argument("--target", choices=["cel", "semantic"], default="cel")
    f.add_argument("--head", choices=["rgb", "ink"], default="rgb")
    f.add_argument("--photos", type=int, default=64)
    f.add_argument("--steps", type=int, default=300)
    f.add_argument("--evals", type=int, default=3)
    f.add_argument("--size", type=int, default=96)
    f.add_argument("--scored", type=int, default=16, help="photos scored (of --photos)")
    f.add_argument("--lr", type=float, default=6e-4)
    f.add_argument("--data", default=str(SHARED / "photos" / "train"))
    f.add_argument("--json")
    args = p.parse_args()
    {"sheet": lambda a: write_sheet(a.path), "figures": figures, "fit": fit}[args.command](args)


if __name__ == "__main__":
    main()
