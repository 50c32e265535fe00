"""The deploy student: what `compress` distills and `export` ships by default.

It keeps the teacher's layers (Double-Tail encoder + main tail, channel-sorted) and drops
what phone runtimes cannot fuse:
- LADE's per-image statistics become a static per-channel affine (generator.norm.SlimAffine,
  private to each width), which `slicing` folds into the conv before it;
- the per-conv reflect pads become zero padding inside each conv, after one reflect pad of
  the input (generator.network.InputPad);
- the support tail is not built.
It starts from the teacher's weights, its affines calibrated so that each layer's output has
the per-channel mean and std of the teacher's LADE output at the same place; distillation
(compress/distill.py) then trains it toward the teacher's output at every width.
The choice of this form, and the alternatives measured, are in the README ("Compression").
"""
from dataclasses import replace

import torch

from generator.network import DoubleTailGenerator
from generator.norm import LADE, SlimAffine, SlimInstanceNorm

from .width_affine import _moments

DEPLOY = {"norm": "affine", "padding": "input", "upsample": "bilinear", "support_tail": False}


def deploy_student(teacher: DoubleTailGenerator, **overrides) -> DoubleTailGenerator:
    """A deploy-form network holding the teacher's conv weights (affines not yet calibrated)."""
    student = DoubleTailGenerator(replace(teacher.cfg, **(DEPLOY | overrides)))
    theirs = teacher.state_dict()
    mine = student.state_dict()
    shared = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    student.load_state_dict(shared, strict=False)
    return student


class _Stop(Exception):
    pass


def _layer_input_moments(model, layer, x):
    """Per-channel mean and std of what `layer` receives, without running the rest."""
    found = {}

    def grab(module, args):
        found["m"] = _moments(args[0])
        raise _Stop

    hook = layer.register_forward_pre_hook(grab)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        hook.remove()
    return found["m"]


@torch.no_grad()
def calibrate_affines(student, teacher, x, widths) -> None:
    """Each SlimAffine, width by width and layer by layer in order, maps its input's
    per-channel mean/std to those of the teacher's norm output (LADE or instance norm) at
    full width (its first channels: the sorted teacher's most important ones). A teacher
    without norms leaves the affines at the identity, which is already its function."""
    lades = [m for name, m in teacher.named_modules()
             if isinstance(m, (LADE, SlimInstanceNorm)) and not name.startswith("support_tail.")]
    affines = [m for m in student.modules() if isinstance(m, SlimAffine)]
    if not lades:
        return
    if len(lades) != len(affines):
        raise ValueError(f"the teacher has {len(lades)} norm layers, the student {len(affines)} affines")
    target = {}
    hooks = [m.register_forward_hook(lambda m, args, out: target.__setitem__(m, _moments(out))) for m in lades]
    teacher.set_width(1.0)(x)
    for h in hooks:
        h.remove()
    for width in sorted(widths):
        student.set_width(width)
        for lade, affine in zip(lades, affines):
            mean, std = _layer_input_moments(student, affine, x)
            c = mean.shape[0]
            i = affine.width_index(c)
            gain = target[lade][1][:c] / std
            affine.gain[i, :c] = gain
            affine.bias[i, :c] = target[lade][0][:c] - gain * mean
    student.set_width(1.0)
