"""Parameters and MACs of the inference path (encoder + main tail) per width and resolution.

MACs come from torch's FlopCounterMode (convolutions and matmuls; 1 MAC = 2 FLOPs) on the
meta device, so no arithmetic runs. Parameters are those of the width cut into a plain
network (generator/slicing.py)."""
import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

from animeedge.runtimes.formats import RESOLUTIONS, WIDTHS

from .slicing import sliced_copy

COST_RESOLUTIONS = (*RESOLUTIONS, 1024)  # the cost table's, with one past the defaults


def _macs(model, res: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, res, res, device="meta"))
    return counter.get_total_flops() // 2


def profile(model, widths=WIDTHS, resolutions=COST_RESOLUTIONS) -> dict:
    """{"widths": {"1.0": {"params": int, "gmacs": {"256": float, ...}}, ...}}"""
    meta = copy.deepcopy(model).to("meta").eval()
    meta.support_tail = None
    report = {}
    for r in widths:
        meta.set_width(r)
        report[str(float(r))] = {
            "params": sum(p.numel() for p in sliced_copy(model, r).parameters()),
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
