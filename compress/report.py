"""The Anycost consistency report: per width and resolution, cost and agreement.

- params, GMACs: the inference path at that width (generator/profile.py);
- psnr/ssim: the output against the same model's width-1.0 output at the same resolution;
- blur_psnr, delta_e: the comparison made for line art: PSNR at 256 px
  after a Gaussian blur of 1 px, and mean CIELAB delta-E of 8x-pooled outputs;
- xres_psnr: the output against the same width's output at the highest resolution,
  area-downsampled to this resolution (does a cheap preview look like the final render?);
- teacher_psnr, teacher_blur_psnr, teacher_delta_e (every width): the output against the
  teacher's at the same resolution.
Photos are resized (area down, cubic up) to each resolution, square.
"""
import json

import numpy as np
from PIL import Image, ImageDraw

from animeedge.generator.data import evenly_spaced, list_images, load_square
from animeedge.generator.inference import TorchStylizer
from animeedge.generator.profile import COST_RESOLUTIONS, profile
from animeedge.runtimes.atomic import atomic_path, write_text
from animeedge.runtimes.formats import REFERENCE_RESOLUTION, WIDTHS
from animeedge.runtimes.processing import resize

from .quality import blurred_psnr_uint8, delta_e_uint8, psnr_uint8, ssim_uint8




def _outputs(model, photo, widths, resolutions):
    stylizers = {w: TorchStylizer(model, w) for w in widths}
    return {w: {r: stylizers[w](resize(photo, r, r)) for r in resolutions} for w in widths}


def consistency_report(model, photos_dir, n: int = 16, teacher_model=None,
                       widths=WIDTHS, resolutions=COST_RESOLUTIONS, progress=None) -> dict:
    files = evenly_spaced(list_images(photos_dir), n)
    top = max(resolutions)
    acc = {(w, r): {"psnr": [], "ssim": [], "xres_psnr": [], "blur_psnr": [], "delta_e": []}
           for w in widths for r in resolutions}
    teacher = ({(w, r): {"psnr": [], "blur_psnr": [], "delta_e": []} for w in widths for r in resolutions}
               if teacher_model is not None else None)
    for f in files:
        photo = load_square(f, REFERENCE_RESOLUTION)
        outs = _outputs(model, photo, widths, resolutions)
        ref = _outputs(teacher_model, photo, [1.0], resolutions)[1.0] if teacher is not None else None
        for w in widths:
            for r in resolutions:
                o, full = outs[w][r], outs[1.0][r]
                acc[w, r]["psnr"].append(psnr_uint8(o, full))
                acc[w, r]["ssim"].append(ssim_uint8(o, full))
                acc[w, r]["xres_psnr"].append(psnr_uint8(o, resize(outs[w][top], r, r)))
                acc[w, r]["blur_psnr"].append(blurred_psnr_uint8(o, full))
                acc[w, r]["delta_e"].append(delta_e_uint8(o, full))
        for (w, r), m in (teacher or {}).items():
            m["psnr"].append(psnr_uint8(outs[w][r], ref[r]))
            m["blur_psnr"].append(blurred_psnr_uint8(outs[w][r], ref[r]))
            m["delta_e"].append(delta_e_uint8(outs[w][r], ref[r]))
        if progress:
            progress()
    cost = profile(model, widths, resolutions)["widths"]
    rows = []
    for (w, r), m in acc.items():
        row = {"width": w, "resolution": r, "params": cost[str(float(w))]["params"],
               "gmacs": cost[str(float(w))]["gmacs"][str(r)],
               "psnr": _mean(m["psnr"]), "ssim": _mean(m["ssim"]), "blur_psnr": _mean(m["blur_psnr"]),
               "delta_e": _mean(m["delta_e"]), "xres_psnr": None if r == top else _mean(m["xres_psnr"])}
        if teacher is not None:
            row |= {f"teacher_{k}": _mean(v) for k, v in teacher[w, r].items()}
        rows.append(row)
    return {"photos": len(files), "photos_dir": str(photos_dir), "rows": rows}


def _mean(values):
    finite = [v for v in values if np.isfinite(v)]
    return round(float(np.mean(finite)), 2) if finite else None


def format_report(report: dict) -> str:
    head = (f"{'width':>5} {'res':>5} {'params':>8} {'GMAC':>7} {'PSNR':>6} {'blur':>6} {'dE':>6} {'SSIM':>6} "
            f"{'xres':>6} {'teacher':>7} {'t-blur':>6} {'t-dE':>6}")
    fmt = lambda v: "  -   " if v is None else f"{v:6.2f}"
    lines = [head]
    for r in report["rows"]:
        lines.append(f"{r['width']:>5} {r['resolution']:>5} {r['params']:>8,} {r['gmacs']:>7.3f} "
                     f"{fmt(r['psnr'])} {fmt(r.get('blur_psnr'))} {fmt(r.get('delta_e'))} {fmt(r['ssim'])} "
                     f"{fmt(r['xres_psnr'])} {fmt(r.get('teacher_psnr')):>7} {fmt(r.get('teacher_blur_psnr'))} "
                     f"{fmt(r.get('teacher_delta_e'))}")
    return "\n".join(lines)


def write_report(report: dict, path):
    write_text(path, json.dumps(report, indent=2) + "\n")


def grid_png(model, photo: np.ndarray, path, widths=WIDTHS, resolutions=COST_RESOLUTIONS, cell: int = 192):
    """One portrait across widths (rows) x resolutions (columns), each cell shown at `cell` px."""
    outs = _outputs(model, photo, widths, resolutions)
    sheet = Image.new("RGB", (cell * len(resolutions), cell * len(widths)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, w in enumerate(sorted(widths, reverse=True)):
        for j, r in enumerate(resolutions):
            sheet.paste(Image.fromarray(outs[w][r]).resize((cell, cell), Image.LANCZOS), (j * cell, i * cell))
            label = f"w{w} {r}px"
            draw.rectangle([j * cell, i * cell, j * cell + 7 * len(label) + 6, i * cell + 14], fill=(0, 0, 0))
            draw.text((j * cell + 3, i * cell + 2), label, fill=(255, 255, 255))
    with atomic_path(path) as tmp:
        sheet.save(tmp)
