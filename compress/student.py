"""The deploy student: what `compress` distills and `export` ships by default.

It keeps the teacher's layers (Double-Tail encoder + main tail, channel-sorted) and drops
what phone runtimes cannot fuse:
- LADE's per-image statistics become a static per-channel affine (generator.norm.SlimAffine,
  private to each width), which `slicing` folds into the conv before it;
- the per-conv reflect pads become zero padding inside each conv, after one reflect pad of
  the input (generator.network.InputPad);
- the support tail is not built.
It starts from the teacher's weights, its affines fitted so that each layer's output has
the per-channel mean and std of the teacher's LADE output at the same place; distillation
(compress/distill.py) then trains it toward the teacher's output at every width.
The choice of this form, and the alternatives measured, are in the README ("Compression").
"""
from dataclasses import replace

import torch

from animeedge.generator.network import DoubleTailGenerator
from animeedge.generator.norm import LADE, SlimAffine, SlimInstanceNorm

from .width_affine import _moments

DEPLOY = {"norm": "affine", "padding": "input", "upsample": "bilinear", "support_tail": False}


def deploy_student(teacher: DoubleTailGenerator, **overrides) -> DoubleTailGenerator:
    """A deploy-form network holding the teacher's conv weights (affines not yet fitted)."""
    student = DoubleTailGenerator(replace(teacher.cfg, **(DEPLOY | overrides)))
    theirs = teacher.state_dict()
    mine = student.state_dict()
    shared = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    student.load_state_dict(shared, strict=False)
    return student


@torch.no_grad()
def match_affines(student, teacher, x, widths) -> None:
    """Each SlimAffine maps its input to the per-channel mean/std of the teacher's norm output
    (LADE or instance norm) at full width (its first channels: the sorted teacher's most
    important ones). A teacher without norms leaves the affines at the identity, which is
    already its function."""
    lades = [m for name, m in teacher.named_modules()
             if isinstance(m, (LADE, SlimInstanceNorm)) and not name.startswith("support_tail.")]
    if not lades:
        return
    target = {}
    hooks = [m.register_forward_hook(lambda m, args, out: target.__setitem__(m, _moments(out))) for m in lades]
    teacher.set_width(1.0)(x)
    for h in hooks:
        h.remove()
    _fit_affines(student, x, widths, [target[m] for m in lades])


@torch.no_grad()
def standardize_affines(student, x, widths) -> None:
    """A from-scratch student's affines, fitted so that every layer's output has zero mean and
    unit std per channel at every width (data-dependent init, as LSUV). With the identity
    affines of a fresh network the signal shrinks 2-4x per layer, more at narrow widths,
    and width 0.25 starts as a flat picture with ~1e-6 gradients in its encoder
    (docs/compression.md, "Bring your own generator")."""
    affines = [m for m in student.modules() if isinstance(m, SlimAffine)]
    _fit_affines(student, x, widths, [(torch.zeros(m.channels), torch.ones(m.channels)) for m in affines])


@torch.no_grad()
def _fit_affines(student, x, widths, targets) -> None:
    """Width by width, one forward pass each: as each SlimAffine runs, it is set to map its
    input's per-channel mean/std to `targets` (one (mean, std) per affine), so each layer
    sees its fitted predecessors."""
    affines = [m for m in student.modules() if isinstance(m, SlimAffine)]
    if len(targets) != len(affines):
        raise ValueError(f"{len(targets)} norm targets for the student's {len(affines)} affines")

    def fit(affine, args, target):
        (mean, std), (target_mean, target_std) = _moments(args[0]), target
        c = mean.shape[0]
        i = affine.width_index(c)
        gain = target_std[:c] / std
        affine.gain[i, :c] = gain
        affine.bias[i, :c] = target_mean[:c] - gain * mean

    hooks = [m.register_forward_pre_hook(lambda m, args, t=t: fit(m, args, t)) for m, t in zip(affines, targets)]
    try:
        for width in sorted(widths):
            student.set_width(width)(x)
    finally:
        for h in hooks:
            h.remove()
        student.set_width(1.0)
