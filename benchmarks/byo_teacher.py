"""Bring your own generator, measured: `compress --teacher` on two foreign teachers, the
embedded default exported to ONNX and a fixed-filter ONNX graph (fixed 256x256 NHWC input in
[0, 1]: the resize path), each distilled into a from-scratch deploy student for N steps.
Prints seconds per step and the PSNR, blurred PSNR and delta-E of each width against the
teacher on held-out photos (README, "Bring your own generator").

    python benchmarks/byo_teacher.py [--steps 300] [--photos DIR] [--calib DIR] [--json FILE]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_teacher import FixedFilter, _onnx  # noqa: E402  (the same fixed filter the tests use)

from calibration.data import shared_data  # noqa: E402
from compress.distill import Distiller  # noqa: E402
from compress.export_onnx import _fp32  # noqa: E402
from compress.quality import blurred_psnr_uint8, delta_e_uint8, psnr_uint8  # noqa: E402
from compress.teacher import load_teacher  # noqa: E402
from generator.checkpoint import DEFAULT_MODEL, load_generator  # noqa: E402
from generator.data import evenly_spaced, list_images, load_square, to_tensor  # noqa: E402
from generator.slicing import sliced_copy  # noqa: E402
from runtimes.atomic import write_text  # noqa: E402
from runtimes.processing import from_nchw  # noqa: E402

WIDTHS, RES = (0.25, 0.5, 0.75, 1.0), 256


@torch.no_grad()
def scores(student, teacher, photos) -> dict:
    x = torch.stack([to_tensor(load_square(f, RES)) for f in photos])
    target = [from_nchw(t[None].numpy()) for t in teacher(x)]
    out = {}
    for w in WIDTHS:
        ys = [from_nchw(y[None].numpy()) for y in student.set_width(w)(x)]
        out[str(w)] = {"psnr": round(float(np.mean([psnr_uint8(y, t) for y, t in zip(ys, target)])), 2),
                       "blur_psnr": round(float(np.mean([blurred_psnr_uint8(y, t) for y, t in zip(ys, target)])), 2),
                       "delta_e": round(float(np.mean([delta_e_uint8(y, t) for y, t in zip(ys, target)])), 2)}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--photos", default=None)
    p.add_argument("--calib", default=None)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(2)
    photos = args.photos or shared_data("photos/train")
    held_out = evenly_spaced(list_images(args.calib or shared_data("photos/calib")), 8)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _fp32(sliced_copy(load_generator(DEFAULT_MODEL), 1.0), tmp / "default.onnx")
        teachers = {"default as ONNX": load_teacher(tmp / "default.onnx"),
                    "fixed filter (ONNX, 256x256 NHWC, 0-1)": load_teacher(
                        _onnx(FixedFilter().eval(), tmp / "filter.onnx", (1, RES, RES, 3)), value_range="0,1")}
        for name, teacher in teachers.items():
            torch.manual_seed(0)
            d = Distiller(teacher, tmp / f"{len(results)}.safetensors", photos, WIDTHS, (128, 256), steps=args.steps,
                          progress=True)
            start = time.perf_counter()
            d.run()
            seconds = (time.perf_counter() - start) / args.steps
            results[name] = {"steps": args.steps, "seconds_per_step": round(seconds, 2),
                             "widths": scores(d.student.eval(), teacher, held_out)}
            print(name, json.dumps(results[name]), flush=True)
    if args.json:
        write_text(args.json, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
