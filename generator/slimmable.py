"""Slimmable layers (Anycost GAN): one set of weights serves every channel width.

A layer at width r uses the first ceil(r * C) output channels of its weight; its input
channels follow whatever the previous layer produced. At r = 1.0 the full weight tensor is
passed to the same functional call a plain nn.Conv2d makes, so the result is bit-identical.
"""
import math

import torch.nn as nn
import torch.nn.functional as F


def active_channels(channels: int, ratio: float) -> int:
    return max(1, min(channels, math.ceil(ratio * channels - 1e-9)))


class SlimConv2d(nn.Conv2d):
    """nn.Conv2d whose active output channels are the first ceil(width * out_channels).

    `slim_out=False` keeps all outputs (the RGB head). Depthwise convs (groups ==
    in_channels == out_channels) and `follow_input=True` convs (LADE's point-wise
    projection) produce as many channels as they receive.
    """

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, padding=None, groups=1,
                 bias=True, slim_out=True, follow_input=False, padding_mode="zeros"):
        if padding is None:
            padding = kernel_size // 2
        super().__init__(in_ch, out_ch, kernel_size, stride, padding, groups=groups,
                         bias=bias, padding_mode=padding_mode)
        self.slim_out = slim_out
        self.depthwise = groups > 1 and groups == in_ch == out_ch
        self.follow_input = follow_input or self.depthwise
        self.width = 1.0

    def active_out(self, in_ch: int) -> int:
        if self.follow_input:
            return in_ch
        return active_channels(self.out_channels, self.width) if self.slim_out else self.out_channels

    def forward(self, x):
        in_ch = x.shape[1]
        out_ch = self.active_out(in_ch)
        if in_ch == self.in_channels and out_ch == self.out_channels:
            return super().forward(x)
        if self.depthwise:
            weight, groups = self.weight[:out_ch], out_ch
        else:
            weight, groups = self.weight[:out_ch, :in_ch], 1
        bias = self.bias[:out_ch] if self.bias is not None else None
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)


def slim_convs(module: nn.Module):
    return [m for m in module.modules() if isinstance(m, SlimConv2d)]


def set_width(module: nn.Module, width):
    """Set one ratio for every slimmable conv, or a list with one ratio per conv (in
    module order) for per-layer ("flexible") widths."""
    convs = slim_convs(module)
    ratios = [float(width)] * len(convs) if isinstance(width, (int, float)) else list(width)
    if len(ratios) != len(convs):
        raise ValueError(f"width list has {len(ratios)} entries, the network has {len(convs)} slimmable convs")
    for conv, ratio in zip(convs, ratios):
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"width ratio must be in (0, 1], got {ratio}")
        conv.width = ratio
