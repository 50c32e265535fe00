"""Cut a slimmable generator at one width into a plain, physically smaller network.

Every SlimConv2d becomes an nn.Conv2d holding only its active channels, every
SlimInstanceNorm an nn.InstanceNorm2d, and every SlimAffine is folded into the conv before
it (the deploy student's static normalization costs nothing), so an exported width-r file is small and fast rather
than a masked full network. The support tail is dropped (inference path only)."""
import copy

import torch
import torch.nn as nn

from .network import MATTE_THRESHOLD, rescale_matte_logit
from .norm import LADE, SlimAffine, SlimInstanceNorm
from .slimmable import SlimConv2d


def _active_shapes(model, res: int = 16) -> dict:
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(m, (i[0].shape[1], o.shape[1])))
             for m in model.modules() if isinstance(m, (SlimConv2d, SlimInstanceNorm))]
    with torch.no_grad():
        model(torch.zeros(1, 3, res, res))
    for h in hooks:
        h.remove()
    return shapes


def _plain_conv(m: SlimConv2d, cin: int, cout: int) -> nn.Conv2d:
    groups = cout if m.depthwise else 1
    conv = nn.Conv2d(cin, cout, m.kernel_size, m.stride, m.padding, groups=groups,
                     bias=m.bias is not None, padding_mode=m.padding_mode)
    conv.weight.data.copy_(m.weight[:cout, :cin // groups])
    if m.bias is not None:
        conv.bias.data.copy_(m.bias[:cout])
    return conv


def _plain_norm(m: SlimInstanceNorm, c: int) -> nn.InstanceNorm2d:
    norm = nn.InstanceNorm2d(c, eps=1e-5, affine=True)
    norm.weight.data.copy_(m.weight[:c])
    norm.bias.data.copy_(m.bias[:c])
    return norm


@torch.no_grad()
def _fold_width_affine(lade: LADE):
    """Fold the per-width affine into the (already plain) projection; drop the tables."""
    c = lade.proj.out_channels
    i = lade.width_index(c)
    if i is not None:
        gain, bias = lade.width_gain[i, :c], lade.width_bias[i, :c]
        lade.proj.weight.mul_(gain[:, None, None, None])
        lade.proj.bias.mul_(gain).add_(bias)
    lade.width_gain = lade.width_bias = None


@torch.no_grad()
def _fold_affines(model):
    """conv -> SlimAffine pairs (adjacent in a Sequential) become one conv."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        children = list(seq.named_children())
        for (_, conv), (name, affine) in zip(children, children[1:]):
            if isinstance(affine, SlimAffine) and isinstance(conv, nn.Conv2d):
                c = conv.out_channels
                i = affine.width_index(c)
                gain, bias = affine.gain[i, :c], affine.bias[i, :c]
                conv.weight.mul_(gain[:, None, None, None])
                conv.bias.copy_(conv.bias * gain + bias)
                setattr(seq, name, nn.Identity())


def _fold_matte(model):
    """An ink head's composite reads its matte logit z as z - MATTE_THRESHOLD: folded into the
    conv that makes z, the exported graph keeps a plain sigmoid there, with no op to run or quantize."""
    rescale_matte_logit(model, 1.0, -MATTE_THRESHOLD)
    model.main_tail[-1].folded = True


def sliced_copy(model, width) -> nn.Module:
    """A plain-layer copy of `model` at `width` (a ratio or a per-conv list), eval mode."""
    model = copy.deepcopy(model).eval()
    model.support_tail = None
    model.set_width(width)
    shapes = _active_shapes(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, SlimConv2d):
                setattr(parent, name, _plain_conv(child, *shapes[child]))
            elif isinstance(child, SlimInstanceNorm):
                setattr(parent, name, _plain_norm(child, shapes[child][0]))
    for lade in [m for m in model.modules() if isinstance(m, LADE)]:
        _fold_width_affine(lade)
    _fold_affines(model)
    if model.cfg.head == "ink":
        _fold_matte(model)
    return model
