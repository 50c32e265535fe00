"""Bring your own generator, measured: `compress --teacher` on two foreign teachers, the
embedded default exported to ONNX and a fixed-filter ONNX graph (compress/fixed_filter.py:
fixed 256x256 NHWC input in [0, 1], the resize path), each distilled for its number of steps
from the student `--student-init` names. Prints seconds per step, the PSNR, blurred PSNR
and delta-E of each width against the teacher on 8 held-out photos at 256 px, and the step
and wall time at which each width first reached its goal (docs/research/byo-teacher.md).

    python benchmarks/byo_teacher.py [--student-init default|scratch] [--filter-steps 200]
        [--default-steps 600] [--threads 2] [--photos DIR] [--calib DIR] [--json FILE]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from animeedge.calibration.data import shared_data
from animeedge.compress.distill import Distiller
from animeedge.compress.export_onnx import fp32_model
from animeedge.compress.fixed_filter import FixedFilter, onnx_file
from animeedge.compress.held_out import width_scores
from animeedge.compress.quality import blurred_psnr_uint8, delta_e_uint8, psnr_uint8
from animeedge.compress.teacher import load_teacher
from animeedge.generator.checkpoint import DEFAULT_MODEL, load_generator
from animeedge.generator.slicing import sliced_copy
from animeedge.runtimes.atomic import write_text

WIDTHS, RES = (0.25, 0.5, 0.75, 1.0), 256
METRICS = {"psnr": psnr_uint8, "blur_psnr": blurred_psnr_uint8, "delta_e": delta_e_uint8}
FILTER, DEFAULT = "fixed filter (ONNX, 256x256 NHWC, 0-1)", "default as ONNX"
GOALS = {FILTER: dict(zip(WIDTHS, (22, 24, 25, 26))), DEFAULT: dict(zip(WIDTHS, (22, 24, 26, 28)))}


def teachers(tmp: Path) -> dict:
    fp32_model(sliced_copy(load_generator(DEFAULT_MODEL), 1.0), tmp / "default.onnx")
    return {FILTER: load_teacher(onnx_file(FixedFilter().eval(), tmp / "filter.onnx", (1, RES, RES, 3)),
                                 value_range="0,1"),
            DEFAULT: load_teacher(tmp / "default.onnx")}


def measure(name, teacher, steps, args, out) -> dict:
    torch.manual_seed(0)
    d = Distiller(teacher, out, args.photos, WIDTHS, (128, 256), steps=steps, lr=args.lr,
                  student_init=args.student_init, held_out=args.calib, progress=True)
    start = time.perf_counter()
    d.run()
    wall = time.perf_counter() - start
    watch = d.held_out
    watch.goals = GOALS[name]  # when each width first reached the goal, read from the whole history
    return {"steps": steps, "student_init": args.student_init, "lr": d.lr, "wall_seconds": round(wall),
            "seconds_per_step": round(wall / max(steps, 1), 2),
            "widths": width_scores(d.student.eval(), watch.x, watch.targets, WIDTHS, METRICS),
            "goals": watch.report()["until_db"], "history": watch.history}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student-init", choices=["default", "scratch"], default="default")
    p.add_argument("--filter-steps", type=int, default=200)
    p.add_argument("--default-steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default 2e-4, compress's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--photos", default=None)
    p.add_argument("--calib", default=None)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.photos = args.photos or shared_data("photos/train")
    args.calib = args.calib or shared_data("photos/calib")
    results = {"threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        steps = {FILTER: args.filter_steps, DEFAULT: args.default_steps}
        for i, (name, teacher) in enumerate(teachers(tmp).items()):
            results[name] = measure(name, teacher, steps[name], args, tmp / f"{i}.safetensors")
            print(name, json.dumps({k: v for k, v in results[name].items() if k != "history"}), flush=True)
            if args.json:  # after each teacher: a long run keeps what it measured
                write_text(args.json, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
