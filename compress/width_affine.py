"""Fit LADE's per-width affine so that a narrow network keeps the signal's scale.

For each width below 1.0, one forward pass on a few training photos: as each LADE runs, the
per-channel mean and std (over batch and space) of its projection t = W x + b are matched
to those the same channels have at full width. Layers run in order, so each sees its
fitted predecessors.
Distillation starts from here instead of from a collapsed, near-constant output.
"""
import torch

from animeedge.generator.norm import LADE


def _moments(t):
    return t.mean(dim=(0, 2, 3)), t.std(dim=(0, 2, 3)).clamp_min(1e-6)


@torch.no_grad()
def fit_width_affine(model, x, widths) -> dict:
    """Sets the affines in place; returns {width: mean gain} for the log."""
    lades = [m for m in model.modules() if isinstance(m, LADE)]
    full = {}
    hooks = [m.register_forward_pre_hook(lambda m, args: full.__setitem__(m, _moments(m.proj(args[0]))))
             for m in lades]
    model.set_width(1.0)(x)
    for h in hooks:
        h.remove()

    def match(lade, out, log):
        i = lade.width_index(out.shape[1])
        if i is None:
            return
        c = out.shape[1]
        (mean_full, std_full), (mean, std) = full[lade], _moments(out)
        gain = std_full[:c] / std
        lade.width_gain[i, :c] = gain
        lade.width_bias[i, :c] = mean_full[:c] - gain * mean
        log.append(gain.mean().item())

    gains = {}
    for width in sorted(w for w in widths if w < 1.0):
        log = []
        # LADE never forms t (generator/norm.py), so each hook projects the layer's input itself
        hooks = [m.register_forward_pre_hook(lambda m, args: match(m, m.proj(args[0]), log)) for m in lades]
        model.set_width(width)(x)
        for h in hooks:
            h.remove()
        gains[width] = sum(log) / len(log) if log else 1.0
    model.set_width(1.0)
    return gains
