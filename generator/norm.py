"""Normalization layers that work at every channel width.

LADE (AnimeGANv3): normalize x with its own per-channel spatial statistics, then give it
the mean/std of a learned point-wise linear transform t = W x + b of itself. Its cost on a
phone is one extra 1x1 conv plus two spatial mean/variance reductions per layer; "instance"
keeps the reductions and drops the conv; "none" has neither (the conv bias remains).
The choice is measured in the README ("Normalization") and switchable in the config.

LADE passes the scale of its input through (t is linear in x), so a network cut to fewer
channels loses signal layer after layer. Like the private batch norms of Slimmable Networks
(Yu et al., 2019), each LADE keeps a per-width affine (gain, bias) on t for the widths below
1.0; `compress` fits and distills it, and `slicing` folds it into the projection.

t is affine in x, so LADE never forms it: t - mean(t) = W'(x - mean(x)) and mean(t) =
W' mean(x) + b'. The projection runs (without its bias) on the centred input, which the
output reuses, and on the 1x1 mean for mean(t): the same values as the textbook form with
fewer full-resolution passes. int8 export keeps the whole layer in float (README,
"Benchmark": the fastest exact form at width 0.25 in int8 TFLite, and the closest to fp32).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from animeedge.runtimes.formats import WIDTHS

from .slimmable import SlimConv2d, active_channels

EPS = 1e-5


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

    def centred_weight(self, c: int) -> torch.Tensor:
        """W' of t = W'x + b' at `c` channels (the projection with its width's gain), no bias."""
        # the whole weight is the projection's own tensor, so an export stores it once
        weight = self.proj.weight if c == self.proj.weight.shape[0] else self.proj.weight[:c, :c]
        i = self.width_index(c)
        return weight if i is None else weight * self.width_gain[i, :c, None, None, None]

    def forward(self, x):
        x_mean = x.mean(dim=(2, 3), keepdim=True)
        centred = x - x_mean
        x_var = centred.square().mean(dim=(2, 3), keepdim=True)
        t_var = F.conv2d(centred, self.centred_weight(x.shape[1])).square().mean(dim=(2, 3), keepdim=True)
        t_mean = self.width_affine(self.proj(x_mean))
        return centred * (torch.rsqrt(x_var + EPS) * torch.sqrt(t_var + EPS)) + t_mean


class SlimInstanceNorm(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        c = x.shape[1]
        return F.instance_norm(x, weight=self.weight[:c], bias=self.bias[:c], eps=EPS)


class SlimAffine(nn.Module):
    """Static normalization for the deploy student: a per-channel gain and bias, private to
    each trained width (as Slimmable Networks' batch norms are), with no per-image statistics.
    `slicing` folds it into the conv before it, so an exported width has no trace of it."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.width_active = [active_channels(channels, w) for w in WIDTHS]
        self.gain = nn.Parameter(torch.ones(len(WIDTHS), channels))
        self.bias = nn.Parameter(torch.zeros(len(WIDTHS), channels))

    def width_index(self, active: int) -> int:
        """The row of the narrowest trained width with at least `active` channels."""
        return next((i for i, k in enumerate(self.width_active) if active <= k), len(WIDTHS) - 1)

    def forward(self, x):
        c = x.shape[1]
        i = self.width_index(c)
        return x * self.gain[i, :c, None, None] + self.bias[i, :c, None, None]


NORMS = {"lade": LADE, "instance": SlimInstanceNorm, "affine": SlimAffine, "none": lambda channels: nn.Identity()}


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; choose from {', '.join(NORMS)}")
    return NORMS[kind](channels)
