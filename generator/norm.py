"""Normalization layers that work at every channel width.

LADE (AnimeGANv3): normalize x with its own per-channel spatial statistics, then give it
the mean/std of a learned point-wise linear transform t = W x + b of itself. Its cost on a
phone is one extra 1x1 conv plus two spatial mean/variance reductions per layer; "instance"
keeps the reductions and drops the conv; "none" has neither (the conv bias remains).
The choice is measured in the README ("Normalization") and switchable in the config.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .slimmable import SlimConv2d

EPS = 1e-5


def _moments(x):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = (x - mean).square().mean(dim=(2, 3), keepdim=True)
    return mean, var


class LADE(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.proj = SlimConv2d(channels, channels, 1, follow_input=True)
        # start as the identity (x re-scaled to its own statistics): with a random init the
        # projection shrinks the signal layer after layer and the first outputs are flat
        nn.init.eye_(self.proj.weight[:, :, 0, 0])
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        t_mean, t_var = _moments(self.proj(x))
        x_mean, x_var = _moments(x)
        return (x - x_mean) * torch.rsqrt(x_var + EPS) * torch.sqrt(t_var + EPS) + t_mean


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
