"""Channel sorting (Anycost GAN): reorder every slimmable layer's channels by importance so
that "the first k channels" keeps the most useful ones.

Channels that must move together form a group: the convs that produce them, the norms and
depthwise convs that act on them one by one, and the convs that read them. The residual
stream of the tail (the encoder's last conv plus every inverted residual block's output)
is one group. Permuting a whole group leaves the full-width function unchanged.
"""
from dataclasses import dataclass, field

import torch

from animeedge.generator.network import DoubleTailGenerator, InvertedResidual, SeparableConv
from animeedge.generator.norm import LADE, SlimInstanceNorm


@dataclass
class ChannelGroup:
    producers: list = field(default_factory=list)   # convs: output channels
    norms: list = field(default_factory=list)       # LADE / instance norm on these channels
    depthwise: list = field(default_factory=list)   # depthwise convs on these channels
    consumers: list = field(default_factory=list)   # convs: input channels

    def importance(self) -> torch.Tensor:
        """L1 norm of each channel's filters, each producer scaled to mean 1 so layers weigh alike."""
        score = 0
        for conv in self.producers:
            norms = conv.weight.detach().abs().flatten(1).sum(1)
            score = score + norms / norms.mean().clamp_min(1e-12)
        return score

    @torch.no_grad()
    def permute(self, perm: torch.Tensor):
        for conv in self.producers + self.depthwise:
            conv.weight.copy_(conv.weight[perm])
            if conv.bias is not None:
                conv.bias.copy_(conv.bias[perm])
        for conv in self.consumers:
            conv.weight.copy_(conv.weight[:, perm])
        for norm in self.norms:
            if isinstance(norm, LADE):
                norm.proj.weight.copy_(norm.proj.weight[perm][:, perm])
                norm.proj.bias.copy_(norm.proj.bias[perm])
                norm.width_gain.copy_(norm.width_gain[:, perm])
                norm.width_bias.copy_(norm.width_bias[:, perm])
            elif isinstance(norm, SlimInstanceNorm):
                norm.weight.copy_(norm.weight[perm])
                norm.bias.copy_(norm.bias[perm])


def channel_groups(model: DoubleTailGenerator) -> list[ChannelGroup]:
    """The groups of the inference path (encoder + main tail)."""
    enc = list(model.encoder)
    groups = [ChannelGroup([a[0]], [a[1]], [], [b[0]]) for a, b in zip(enc[:-1], enc[1:])]
    tail = list(model.main_tail)
    blocks = [m for m in tail if isinstance(m, InvertedResidual)]
    seps = [m for m in tail if isinstance(m, SeparableConv)]
    rgb = tail[-2]
    groups.append(ChannelGroup(
        producers=[enc[-1][0]] + [b.body[2] for b in blocks], norms=[enc[-1][1]] + [b.body[3] for b in blocks],
        depthwise=[seps[0][0][0]], consumers=[b.body[0][0] for b in blocks] + [seps[0][1][0]]))
    groups += [ChannelGroup([b.body[0][0]], [], [b.body[1][0]], [b.body[2]]) for b in blocks]
    for sep, nxt in zip(seps, seps[1:] + [None]):
        pointwise, norm = sep[1][0], sep[1][1]
        if nxt is None:
            detail = [model.detail.context] if model.detail is not None else []
            groups.append(ChannelGroup([pointwise], [norm], [], [rgb] + detail))
        else:
            groups.append(ChannelGroup([pointwise], [norm], [nxt[0][0]], [nxt[1][0]]))
    return groups


def sort_channels(model: DoubleTailGenerator) -> DoubleTailGenerator:
    """Sort in place, most important channels first; returns the model."""
    for group in channel_groups(model):
        group.permute(torch.argsort(group.importance(), descending=True, stable=True))
    return model
