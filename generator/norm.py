"""Normalization layers that work at every channel width.

LADE (AnimeGANv3): normalize x with its own per-channel spatial statistics, then give it
the mean/std of a learned point-wise linear transform t = W x + b of itself. Its cost on a
phone is one extra 1x1 conv plus two spatial mean/variance reductions per layer; "instance"
keeps the reductions and drops the conv; "none" has neither (the conv bias remains).
The choice is measured in the README ("Normalization") and switchable in the config.

LADE passes the scale of its input through (t is linear in x), so a network cut to fewer
channels loses signal layer after layer. Like the private batch norms of Slimmable Networks
(Yu et al., 2019), each LADE keeps a per-width affine (gain, bias) on t for the widths below
1.0; `compress` calibrates and distills it, and `slicing` folds it into the projection.

The arithmetic runs folded (`Denormalize`): x * scale + shift with per-channel scale and
shift, the same values as the centred (x - mean) / std * std_t + mean_t with two
full-resolution passes fewer. It is a module of its own so that int8 export can keep it in
float (README, "Benchmark": 10-15% faster at width 0.25 in int8 TFLite, and closer to fp32).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .slimmable import WIDTHS, SlimConv2d, active_channels

EPS = 1e-5


def _moments(x):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = (x - mean).square().mean(dim=(2, 3), keepdim=True)
    return mean, var


class Denormalize(nn.Module):
    """x with the per-channel spatial mean and variance of t (no parameters)."""

    def forward(self, x, t):
        t_mean, t_var = _moments(t)
        x_mean, x_var = _moments(x)
        scale = torch.rsqrt(x_var + EPS) * torch.sqrt(t_var + EPS)
        return x * scale + (t_mean - x_mean * scale)


class LADE(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.proj = SlimConv2d(channels, channels, 1, follow_input=True)
        # start as the identity (x re-scaled to its own statistics): with a random init the
        # projection shrinks the signal layer after layer and the first outputs are flat
        nn.init.eye_(self.proj.weight[:, :, 0, 0])
        nn.init.zeros_(self.proj.bias)
        slim = WIDTHS[:-1]
        self.width_active = [active_channels(channels, w) for w in slim]
        self.width_gain = nn.Parameter(torch.ones(len(slim), channels))
        self.width_bias = nn.Parameter(torch.zeros(len(slim), channels))
        self.denormalize = Denormalize()

    def width_index(self, active: int):
        """Which per-width affine serves `active` channels: None at full width (or once folded)."""
        if active >= self.channels or self.width_gain is None:
            return None
        # per-layer ("flexible") widths fall between the trained ones: take the next wider
        return next((i for i, k in enumerate(self.width_active) if active <= k), len(self.width_active) - 1)

    def width_affine(self, t):
        i = self.width_index(t.shape[1])
        if i is None:
            return t
        c = t.shape[1]
        return t * self.width_gain[i, :c, None, None] + self.width_bias[i, :c, None, None]

    def forward(self, x):
        return self.denormalize(x, self.width_affine(self.proj(x)))


class SlimInstanceNorm(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        c = x.shape[1]
        return F.instance_norm(x, weight=self.weight[:c], bias=self.bias[:c], eps=EPS)


NORMS = {"lade": LADE, "instance": SlimInstanceNorm, "none": lambda channels: nn.Identity()}


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose from {', '.join(NORMS)}")
    return NORMS[kind](channels)
