"""Parameters and MACs of the inference path (encoder + main tail) per width and resolution.

MACs come from torch's FlopCounterMode (convolutions and matmuls; 1 MAC = 2 FLOPs) on the
meta device, so no arithmetic runs. Parameters are those the active channels use."""
import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

from .norm import SlimInstanceNorm
from .slimmable import WIDTHS, SlimConv2d

RESOLUTIONS = (128, 256, 512, 1024)


def _active_params(model, res: int = 64) -> int:
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        cin, cout = inp[0].shape[1], out.shape[1]
        per_group_in = 1 if m.depthwise else cin
        total += cout * per_group_in * m.kernel_size[0] * m.kernel_size[1] + (cout if m.bias is not None else 0)

    def norm_hook(m, inp, out):
        nonlocal total
        total += 2 * inp[0].shape[1]

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, SlimConv2d)]
    hooks += [m.register_forward_hook(norm_hook) for m in model.modules() if isinstance(m, SlimInstanceNorm)]
    with torch.no_grad():
        model(torch.zeros(1, 3, res, res, device="meta"))
    for h in hooks:
        h.remove()
    return total


def _macs(model, res: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, res, res, device="meta"))
    return counter.get_total_flops() // 2


def profile(model, widths=WIDTHS, resolutions=RESOLUTIONS) -> dict:
    """{"widths": {"1.0": {"params": int, "gmacs": {"256": float, ...}}, ...}}"""
    meta = copy.deepcopy(model).to("meta").eval()
    meta.support_tail = None
    report = {}
    for r in widths:
        meta.set_width(r)
        report[str(float(r))] = {
            "params": _active_params(meta),
            "gmacs": {str(res): round(_macs(meta, res) / 1e9, 4) for res in resolutions},
        }
    return {"widths": report}


def format_table(report: dict) -> str:
    widths = report["widths"]
    resolutions = list(next(iter(widths.values()))["gmacs"])
    head = f"{'width':>6} {'params':>10} " + " ".join(f"{'GMAC@' + r:>10}" for r in resolutions)
    rows = [f"{w:>6} {v['params']:>10,} " + " ".join(f"{v['gmacs'][r]:>10.3f}" for r in resolutions)
            for w, v in widths.items()]
    return "\n".join([head, *rows])
