"""The Double-Tail generator (AnimeGANv3's DTGAN), slimmable at every layer.

A shared encoder (a 5x5 conv and 3x3 convs at full, 1/2 and 1/4 resolution with two stride-2 downsamples)
feeds two tails of the same shape: the support tail produces a rough anime image and only
trains; the main tail refines it and is the only one that runs at inference. Each tail is a
stack of inverted residual blocks at 1/4 resolution and two bilinear x2 upsamples with
depthwise-separable convs, ending in a 3x3 RGB conv and tanh. With `head="ink"` the main tail's last conv gives four
channels instead: a fill picture (tanh) and an ink matte (a sigmoid), composited by the
network's last elementwise ops, `fill * (1 - a) + INK * a`. Thin dark lines are then a
per-pixel classification that trains with its own loss (compress/ink.py), not an L1 median
that drops them, and the composite is in every exported graph.
"""
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norm import make_norm
from .slimmable import SlimConv2d, set_width

HEADS = ("rgb", "ink")
STRIDE = 4  # two stride-2 downsamples
MIN_SIZE = 2 * STRIDE  # 3x3 reflect padding needs feature maps of at least 2x2 at 1/4 scale
INPUT_BORDER = 8  # the deploy student's reflect border: 2 px at 1/4 scale, where zero padding acts


@dataclass
class GeneratorConfig:
    base_channels: int = 32
    encoder_blocks: int = 1
    tail_blocks: int = 3
    expansion: int = 2
    norm: str = "lade"
    support_tail: bool = True
    # "reflect": every k>1 conv reflect-pads its own input (the seeds' design); "input": one
    # reflect pad of the input by INPUT_BORDER (and to the stride), zero-padded convs (the
    # deploy student: phone runtimes fold zero padding into the conv)
    padding: str = "reflect"
    upsample: str = "bilinear"  # or "nearest"
    head: str = "rgb"  # or "ink": the main tail predicts a fill and an ink matte (InkComposite)
    photo_skip: bool = False  # an ink head's fill adds the photo's low-pass (PhotoLowPass)
    photo_detail: int = 0  # channels of an ink head's full-resolution path from the photo (PhotoDetail); 0: none

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown generator config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def conv_padding(padding: str, k: int) -> str:
    return "reflect" if padding == "reflect" and k > 1 else "zeros"


class ConvNormAct(nn.Sequential):
    def __init__(self, cin, cout, k, norm, stride=1, groups=1, padding="reflect"):
        super().__init__(SlimConv2d(cin, cout, k, stride, groups=groups, padding_mode=conv_padding(padding, k)),
                         make_norm(norm, cout), nn.LeakyReLU(0.2))


# Normalization sits only after convs that produce a stage's channels: after depthwise and
# expansion convs it would cost most of LADE's MACs (its 1x1 projection at 2C channels) for
# little benefit.
class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then point-wise 1x1 with norm."""

    def __init__(self, cin, cout, norm, padding="reflect"):
        super().__init__(ConvNormAct(cin, cin, 3, "none", groups=cin, padding=padding), ConvNormAct(cin, cout, 1, norm))


class InvertedResidual(nn.Module):
    def __init__(self, channels, expansion, norm, padding="reflect"):
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            ConvNormAct(channels, hidden, 1, "none"),
            ConvNormAct(hidden, hidden, 3, "none", groups=hidden, padding=padding),
            SlimConv2d(hidden, channels, 1),
            make_norm(norm, channels),
        )

    def forward(self, x):
        return x + self.body(x)


class Upsample(nn.Module):
    def __init__(self, mode="bilinear"):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


# the ink colour (generator/cel.py's INK, RGB 62 40 32) in [-1, 1]
INK = (62 / 127.5 - 1, 40 / 127.5 - 1, 32 / 127.5 - 1)
MATTE_START = -6.0  # the matte logit's bias when a fill-only head gains its matte: no ink
# The matte's logit trains with ink pixels weighed up to MATTE_BALANCE times (compress/ink.py), which
# raises its odds of ink by that factor: a pixel that is ink one time in ten scores 0.5. The composite
# takes the odds back (MATTE_THRESHOLD): ink where it is more likely than not. Else a line the network
# cannot place on a small face becomes a grey smear.
MATTE_BALANCE = 10.0
MATTE_THRESHOLD = math.log(MATTE_BALANCE)


class InkComposite(nn.Module):
    """The ink head's last ops: `fill * (1 - a) + INK * a`, with fill = tanh of the first three
    channels and a = `matte` of the fourth (written `fill + a * (INK - fill)`)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ink", torch.tensor(INK).view(1, 3, 1, 1), persistent=False)
        self.folded = False  # the export copy folds `matte`'s shift into the conv before it

    @staticmethod
    def parts(x, low=None):
        """(fill, matte logit): what training scores apart. The fill is in [-1, 1], or with a
        photo skip, the photo's low-pass `low` plus that."""
        fill = torch.tanh(x[:, :3])
        return fill if low is None else fill + low, x[:, 3:]

    @staticmethod
    def matte(logit):
        """The ink's coverage from the matte's logit (see MATTE_THRESHOLD)."""
        return torch.sigmoid(logit - MATTE_THRESHOLD)

    def forward(self, x, low=None):
        fill, logit = self.parts(x, low)
        return fill + (torch.sigmoid(logit) if self.folded else self.matte(logit)) * (self.ink - fill)


class PhotoLowPass(nn.Module):
    """The photo averaged over STRIDE x STRIDE blocks and upsampled back as the tail upsamples:
    its colours without its texture. With `photo_skip` the ink head's fill adds it, so the
    network paints only where the target's colours differ from the photo's: a colour cast a
    normalized network would otherwise have to unlearn costs nothing here. A fixed conv and two
    resizes: ops every exported graph already has."""

    def __init__(self, upsample: str):
        super().__init__()
        self.register_buffer("weight", torch.full((3, 1, STRIDE, STRIDE), 1 / STRIDE ** 2), persistent=False)
        self.up = Upsample(upsample)

    def forward(self, x):
        return self.up(self.up(F.conv2d(x, self.weight, stride=STRIDE, groups=3)))


class PhotoDetail(nn.Module):
    """A narrow full-resolution path from the photo into the ink head. The tail works at 1/4
    resolution and upsamples, so alone it cannot place a 1-px lash line or keep a 3-px iris
    on a 40-px face. A 3x3 conv on the photo and a 1x1 conv on the tail's last features (the
    context: where an eye or a cheek is) meet in a LeakyReLU, and a 1x1 conv adds the result
    to the head's four channels (fill and matte logit). Its channels are the same at every
    width, so every width pays its MACs. The last conv starts at zero: a network that gains
    the path keeps its output."""

    def __init__(self, channels: int, tail_channels: int):
        super().__init__()
        self.photo = nn.Conv2d(3, channels, 3, padding=1)
        self.context = SlimConv2d(tail_channels, channels, 1, bias=False, slim_out=False)
        self.act = nn.LeakyReLU(0.2)
        self.out = nn.Conv2d(channels, 4, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, photo, tail):
        return self.out(self.act(self.photo(photo) + self.context(tail)))


def make_tail(c, cfg: GeneratorConfig, head: str = "rgb") -> nn.Sequential:
    pad = cfg.padding
    ink = head == "ink"
    return nn.Sequential(
        *[InvertedResidual(4 * c, cfg.expansion, cfg.norm, pad) for _ in range(cfg.tail_blocks)],
        Upsample(cfg.upsample), SeparableConv(4 * c, 2 * c, cfg.norm, pad),
        Upsample(cfg.upsample), SeparableConv(2 * c, c, cfg.norm, pad),
        SlimConv2d(c, 4 if ink else 3, 3, slim_out=False, padding_mode=conv_padding(pad, 3)),
        InkComposite() if ink else nn.Tanh(),
    )


def _reflect_along(x, dim, before, after):
    n = x.shape[dim]
    first = [x.narrow(dim, i, 1) for i in range(before, 0, -1)]
    last = [x.narrow(dim, n - 1 - i, 1) for i in range(1, after + 1)]
    return torch.cat(first + [x] + last, dim)


def reflect_by_slices(x, left, right, top, bottom):
    """Reflect padding from slices and one concatenation per axis: the same values as
    F.pad(mode="reflect"), in ops that LiteRT's XNNPACK delegate runs (MIRROR_PAD is not one)."""
    return _reflect_along(_reflect_along(x, 2, top, bottom), 3, left, right)


class InputPad(nn.Module):
    """The deploy student's one reflect pad: `border` px on every side, plus bottom/right up
    to a multiple of the stride (replicate where the frame is too small to reflect).
    `slices=True` builds the reflection from slices (LiteRT: see export_tflite.SlicePad);
    `static=True` pads the border only, with constants (Core ML cannot pad by amounts computed
    from the shape; its enumerated sizes are multiples of the stride)."""

    def __init__(self, border: int):
        super().__init__()
        self.border, self.slices, self.static = border, False, False

    def amounts(self, h: int, w: int) -> tuple[int, int, int, int]:
        b = self.border
        if self.static:
            return b, b, b, b
        return b, b + (-(w + 2 * b) % STRIDE), b, b + (-(h + 2 * b) % STRIDE)

    def forward(self, x):
        left, right, top, bottom = self.amounts(*x.shape[-2:])
        if self.slices:
            return reflect_by_slices(x, left, right, top, bottom)
        mode = "reflect" if self.static or max(right, bottom) < min(x.shape[-2:]) else "replicate"
        return F.pad(x, (left, right, top, bottom), mode=mode)


class DoubleTailGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GeneratorConfig()
        c, n, p = cfg.base_channels, cfg.norm, cfg.padding
        if p not in ("reflect", "input") or cfg.upsample not in ("bilinear", "nearest") or cfg.head not in HEADS:
            raise ValueError(f"unknown padding {p!r}, upsample {cfg.upsample!r} or head {cfg.head!r}")
        if (cfg.photo_skip or cfg.photo_detail) and cfg.head != "ink":
            raise ValueError("photo_skip and photo_detail need an ink head")
        layers = [ConvNormAct(3, c, 5, n, padding=p), ConvNormAct(c, 2 * c, 3, n, stride=2, padding=p)]
        layers += [ConvNormAct(2 * c, 2 * c, 3, n, padding=p) for _ in range(cfg.encoder_blocks)]
        layers += [ConvNormAct(2 * c, 4 * c, 3, n, stride=2, padding=p)]
        layers += [ConvNormAct(4 * c, 4 * c, 3, n, padding=p) for _ in range(cfg.encoder_blocks)]
        self.input_pad = InputPad(INPUT_BORDER) if p == "input" else None
        self.encoder = nn.Sequential(*layers)
        self.main_tail = make_tail(c, cfg, cfg.head)
        self.support_tail = make_tail(c, cfg) if cfg.support_tail else None
        self.low_pass = PhotoLowPass(cfg.upsample) if cfg.photo_skip else None
        self.detail = PhotoDetail(cfg.photo_detail, c) if cfg.photo_detail else None

    def set_width(self, width):
        """Width ratio for every slimmable conv (one float or a per-conv list); r=1.0 is the full network."""
        set_width(self, width)
        return self

    def forward(self, x, with_support: bool = False, parts: bool = False):
        """x: float NCHW in [-1, 1], any size. Returns the main tail's image, or
        (main, support) when with_support is True (training). With `parts` (an ink head,
        training) the main tail's image is InkComposite.parts: (fill, matte logit)."""
        h, w = x.shape[-2:]
        top = left = 0
        if self.input_pad is None:
            x = pad_to_stride(x)
        else:
            left, _, top, _ = self.input_pad.amounts(h, w)
            x = self.input_pad(x)
        feats = self.encoder(x)
        if parts and self.cfg.head != "ink":
            raise RuntimeError("parts=True needs an ink head")
        crop = lambda t: t[..., top:top + h, left:left + w]  # noqa: E731
        if self.cfg.head == "ink":
            low = crop(self.low_pass(x)) if self.low_pass is not None else None
            main = (InkComposite.parts if parts else self.main_tail[-1])(crop(self._ink_channels(x, feats)), low)
        else:
            main = crop(self.main_tail(feats))
        if not with_support:
            return main
        if self.support_tail is None:
            raise RuntimeError("this generator was built without its support tail (inference-only weights)")
        return main, self.support_tail(feats)[..., top:top + h, left:left + w]

    def _ink_channels(self, x, feats):
        """The ink head's four channels before the composite, at the padded input's size."""
        hidden = self.main_tail[:-2](feats)
        out = self.main_tail[-2](hidden)
        return out if self.detail is None else out + self.detail(x, hidden)


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


@torch.no_grad()
def rescale_matte_logit(model: DoubleTailGenerator, scale: float, shift: float) -> DoubleTailGenerator:
    """An ink head's matte logit z (the fourth channel of the conv before the composite, plus the
    photo path's) becomes scale * z + shift, in place."""
    conv = model.main_tail[-2]
    conv.weight[3] *= scale
    conv.bias[3] = scale * conv.bias[3] + shift
    if model.detail is not None:
        model.detail.out.weight[3] *= scale
        model.detail.out.bias[3] *= scale
    return model


@torch.no_grad()
def with_ink_head(model: DoubleTailGenerator, state: dict) -> DoubleTailGenerator:
    """Loads another network's weights into `model` (an ink head). An rgb head's conv becomes
    the fill, so the output starts as the rgb network's, and the matte starts almost empty;
    with a photo skip the fill conv starts at zero instead, so the output starts as the photo's
    low-pass. An ink head's weights load as they are (with or without the skip). A photo detail
    path the weights lack keeps its fresh start (its output conv at zero)."""
    last = f"main_tail.{len(model.main_tail) - 2}"
    state = {k: v for k, v in model.state_dict().items() if k.startswith("detail.")} | dict(state)
    weight, bias = state[f"{last}.weight"], state[f"{last}.bias"]
    if weight.shape[0] == 3:
        if model.cfg.photo_skip:
            weight, bias = torch.zeros_like(weight), torch.zeros_like(bias)
        state[f"{last}.weight"] = torch.cat([weight, torch.zeros_like(weight[:1])])
        state[f"{last}.bias"] = torch.cat([bias, torch.full_like(bias[:1], MATTE_START)])
    model.load_state_dict(state)
    return model
