"""The Double-Tail generator (AnimeGANv3's DTGAN), slimmable at every layer.

A shared encoder (a 5x5 conv and 3x3 convs at full, 1/2 and 1/4 resolution with two stride-2 downsamples)
feeds two tails of the same shape: the support tail produces a rough anime image and only
trains; the main tail refines it and is the only one that runs at inference. Each tail is a
stack of inverted residual blocks at 1/4 resolution and two bilinear x2 upsamples with
depthwise-separable convs, ending in a 3x3 RGB conv and tanh.
"""
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norm import make_norm
from .slimmable import SlimConv2d, set_width

STRIDE = 4  # two stride-2 downsamples
MIN_SIZE = 2 * STRIDE  # 3x3 reflect padding needs feature maps of at least 2x2 at 1/4 scale


@dataclass
class GeneratorConfig:
    base_channels: int = 32
    encoder_blocks: int = 1
    tail_blocks: int = 3
    expansion: int = 2
    norm: str = "lade"
    support_tail: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown generator config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNormAct(nn.Sequential):
    def __init__(self, cin, cout, k, norm, stride=1, groups=1):
        super().__init__(SlimConv2d(cin, cout, k, stride, groups=groups, padding_mode="reflect" if k > 1 else "zeros"),
                         make_norm(norm, cout), nn.LeakyReLU(0.2))


# Normalization sits only after convs that produce a stage's channels: after depthwise and
# expansion convs it would cost most of LADE's MACs (its 1x1 projection at 2C channels) for
# little benefit.
class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then point-wise 1x1 with norm."""

    def __init__(self, cin, cout, norm):
        super().__init__(ConvNormAct(cin, cin, 3, "none", groups=cin), ConvNormAct(cin, cout, 1, norm))


class InvertedResidual(nn.Module):
    def __init__(self, channels, expansion, norm):
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            ConvNormAct(channels, hidden, 1, "none"),
            ConvNormAct(hidden, hidden, 3, "none", groups=hidden),
            SlimConv2d(hidden, channels, 1),
            make_norm(norm, channels),
        )

    def forward(self, x):
        return x + self.body(x)


class Upsample(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def make_tail(c, cfg: GeneratorConfig) -> nn.Sequential:
    return nn.Sequential(
        *[InvertedResidual(4 * c, cfg.expansion, cfg.norm) for _ in range(cfg.tail_blocks)],
        Upsample(), SeparableConv(4 * c, 2 * c, cfg.norm),
        Upsample(), SeparableConv(2 * c, c, cfg.norm),
        SlimConv2d(c, 3, 3, slim_out=False, padding_mode="reflect"), nn.Tanh(),
    )


class DoubleTailGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GeneratorConfig()
        c, n = cfg.base_channels, cfg.norm
        layers = [ConvNormAct(3, c, 5, n), ConvNormAct(c, 2 * c, 3, n, stride=2)]
        layers += [ConvNormAct(2 * c, 2 * c, 3, n) for _ in range(cfg.encoder_blocks)]
        layers += [ConvNormAct(2 * c, 4 * c, 3, n, stride=2)]
        layers += [ConvNormAct(4 * c, 4 * c, 3, n) for _ in range(cfg.encoder_blocks)]
        self.encoder = nn.Sequential(*layers)
        self.main_tail = make_tail(c, cfg)
        self.support_tail = make_tail(c, cfg) if cfg.support_tail else None

    def set_width(self, width):
        """Width ratio for every slimmable conv (one float or a per-conv list); r=1.0 is the full network."""
        set_width(self, width)
        return self

    def forward(self, x, with_support: bool = False):
        """x: float NCHW in [-1, 1], any size. Returns the main tail's image, or
        (main, support) when with_support is True (training)."""
        h, w = x.shape[-2:]
        x = pad_to_stride(x)
        feats = self.encoder(x)
        main = self.main_tail(feats)[..., :h, :w]
        if not with_support:
            return main
        if self.support_tail is None:
            raise RuntimeError("this generator was built without its support tail (inference-only weights)")
        return main, self.support_tail(feats)[..., :h, :w]


def pad_to_stride(x, stride: int = STRIDE):
    """Reflect-pad bottom/right to a multiple of the stride and at least MIN_SIZE
    (replicate where the image is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = max(-h % stride, MIN_SIZE - h), max(-w % stride, MIN_SIZE - w)
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def inference_state_dict(model: DoubleTailGenerator) -> dict:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("support_tail.")}


@torch.no_grad()
def count_params(model: nn.Module, inference_only: bool = True) -> int:
    return sum(p.numel() for name, p in model.named_parameters()
               if not (inference_only and name.startswith("support_tail.")))
