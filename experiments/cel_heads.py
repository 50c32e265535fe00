"""Which head learns the clean cel target: the ink head, or the ink head with a gate to the photo.

    python experiments/cel_heads.py [--heads ink,gated|""] [--steps 200] [--photos 800] [--scored 16]
        [--model CKPT ...]

Each head trains `compress --teacher cel`'s InkDistiller from the embedded default for --steps
(batch 8, Adam 4e-4 on the learning-rate schedule of a 6000-step run, 128 and 256 px, 2
threads) on --photos training photos (those with cached targets first). It is scored at 256
px on --scored held-out portraits of photos/calib (every 6th), at widths 1.0 and 0.25: the
line F-score, the delta-E to the target per region, and the skin-and-hair texture against
the target's (generator/cel_fit.py).
The photo itself is scored first, and each --model checkpoint beside the heads.
docs/research/cel-default.md's tables were made when the embedded default was the GAN's rgb student
(`git show bcd696d:generator/default/generator.safetensors`); from the cel default, each head
starts from its weights instead.

`gated`: the last conv gets a fifth channel, a gate g (a sigmoid, starting at 0.12), and the
fill is `photo + g * (paint - photo)`: where g is 0 the photo's own detail shows, which the
network's 1/4-scale features cannot paint.

`skip`: the ink head with `photo_skip` (generator/network.py's PhotoLowPass): the fill is the
photo's 4x4 low-pass plus what the network paints, so the photo's colours come for free and
its texture does not.
"""
import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from animeedge.calibration.data import shared_data
from animeedge.compress.ink import CelTeacher, InkDistiller
from animeedge.generator.cel_fit import REGION_NAMES, CelFit, mean_scores
from animeedge.generator.checkpoint import load_generator
from animeedge.generator.data import list_images, load_square, to_tensor
from animeedge.generator.faces import FaceFinder
from animeedge.generator.network import DoubleTailGenerator
from animeedge.generator.slimmable import SlimConv2d
from animeedge.runtimes.processing import from_nchw

GATE_START = -2.0
SCHEDULE = 6000


class GatedStudent(nn.Module):
    """An ink-head student whose last conv has a gate channel (see the docstring)."""

    def __init__(self, ink: DoubleTailGenerator):
        super().__init__()
        self.net = ink
        last = ink.main_tail[-2]
        gated = SlimConv2d(last.in_channels, 5, 3, slim_out=False, padding_mode=last.padding_mode)
        with torch.no_grad():
            gated.weight.copy_(torch.cat([last.weight, torch.zeros_like(last.weight[:1])]))
            gated.bias.copy_(torch.cat([last.bias, torch.tensor([GATE_START])]))
        ink.main_tail[-2] = gated

    def set_width(self, width):
        self.net.set_width(width)
        return self

    def forward(self, x, parts=False):
        net, (h, w) = self.net, x.shape[-2:]
        left, _, top, _ = net.input_pad.amounts(h, w)
        raw = net.main_tail[:-1](net.encoder(net.input_pad(x)))[..., top:top + h, left:left + w]
        head = net.main_tail[-1]
        paint, logit = head.parts(raw[:, :4])
        fill = x + torch.sigmoid(raw[:, 4:5]) * (paint - x)
        return (fill, logit) if parts else fill + torch.sigmoid(logit) * (head.ink - fill)


def distiller(head: str):
    class Distiller(InkDistiller):
        def _for_teacher(self, teacher, base, student_init):
            super()._for_teacher(teacher, base, student_init)
            if head == "gated":
                self.student = GatedStudent(self.student)
    Distiller.photo_skip = head == "skip"
    return Distiller


def train(head, teacher, photos, steps, out):
    d = distiller(head)(teacher, out, photos, resolutions=[128, 256], steps=SCHEDULE, batch=8, lr=4e-4,
                        student_init="default", progress=False)
    while d.step < steps:
        d.train_step()
        d.step += 1
    return d.student.eval()


def scores(model, fits, width) -> dict:
    with torch.no_grad():
        outs = [from_nchw(model.set_width(width)(to_tensor(f.photo)[None]).numpy()) for f in fits]
    return mean_scores([f.score(o) for f, o in zip(fits, outs)])


def line(name, s) -> str:
    regions = " / ".join(f"{s[k]:.1f}" for k in REGION_NAMES)
    return f"| {name} | {s['f']:.2f} ({s['p']:.2f} / {s['r']:.2f}) | {regions} | {s['texture']:.2f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", default="ink,gated")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--photos", type=int, default=800, help="training photos of photos/train")
    parser.add_argument("--scored", type=int, default=16)
    parser.add_argument("--cache", default=".cache/cel-targets")
    parser.add_argument("--model", nargs="*", default=[])
    args = parser.parse_args()
    torch.set_num_threads(2)
    finder = FaceFinder()
    held_out = list_images(shared_data("photos/calib"))[::6][:args.scored]
    fits = [CelFit(load_square(f, 256), finder) for f in held_out]
    teacher = CelTeacher(args.cache)
    train_dir = Path(tempfile.mkdtemp())
    files = list_images(shared_data("photos/train"))
    cached = [f for f in files if teacher.cache_file(f, 256).is_file()]  # targets take half a second each
    have = set(cached)
    for f in (cached + [f for f in files if f not in have])[:args.photos]:
        (train_dir / f.name).symlink_to(f.resolve())
    print("| picture | line F (P / R) | delta-E " + " / ".join(REGION_NAMES) + " | texture |\n| --- | --- | --- | ---: |")
    print(line("the photo", mean_scores([f.score(f.photo) for f in fits])), flush=True)
    models = {Path(m).name: load_generator(m).eval() for m in args.model}
    for head in [h for h in args.heads.split(",") if h]:
        models[f"{head}, {args.steps} steps"] = train(head, teacher, train_dir, args.steps, train_dir / head / "s.safetensors")
    for name, model in models.items():
        for width in (1.0, 0.25):
            print(line(f"{name}, width {width}", scores(model, fits, width)), flush=True)


if __name__ == "__main__":
    main()
