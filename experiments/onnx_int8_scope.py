"""What NNCF's int8 PTQ of the teacher form's ONNX file (the LADE network, `export
--teacher-form`) must leave in float: the PSNR against fp32 on the 8 evaluation photos (mean
error, and per photo) with only LADE's arithmetic in float (`FLOAT_OPS`), with its
projections too, with its "+ mean(t)" Add too (the export's scope, `lade_nodes`), and with
the Add alone. Plain PTQ, no accuracy control, so the scope alone
decides (README, "Export").

    python experiments/onnx_int8_scope.py [--widths 0.25,0.75] [--resolution 256]
"""
import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from animeedge.calibration.data import CalibrationSet, shared_data
from animeedge.compress.export import quiet_converters
from animeedge.compress.export_onnx import FLOAT_OPS, INPUT, fp32_model, lade_nodes
from animeedge.compress.quality import psnr_signed
from animeedge.generator.checkpoint import TEACHER_FORM_MODEL, load_generator
from animeedge.generator.slicing import sliced_copy


def run(model, images):
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [session.run(None, {INPUT: x})[0] for x in images]


def scopes(model):
    """{label: node names kept in float besides FLOAT_OPS}"""
    everything = lade_nodes(model)
    op = {node.name: node.op_type for node in model.graph.node}
    convs = [name for name in everything if op[name] == "Conv"]
    adds = [name for name in everything if op[name] == "Add"]
    return {"arithmetic": [], "+ projections": convs, "+ projections + Add (export)": everything, "+ Add": adds}


def main():
    import nncf
    p = argparse.ArgumentParser()
    p.add_argument("--widths", type=lambda t: [float(w) for w in t.split(",")], default=[0.25, 0.75])
    p.add_argument("--resolution", type=int, default=256)
    args = p.parse_args()
    quiet_converters()
    nncf.set_log_level(logging.ERROR)
    photos = CalibrationSet(shared_data("photos/calib"))
    calib = [x.astype(np.float32) for x in photos.calib(args.resolution)]
    images = [x.astype(np.float32) for x in photos.eval(args.resolution)]
    print(f"{args.resolution} px: width, LADE in float, PSNR dB vs fp32 (mean error), per photo")
    for width in args.widths:
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = fp32_model(sliced_copy(load_generator(TEACHER_FORM_MODEL), width).eval(), Path(tmp) / "fp32.onnx")
        references = run(fp32, images)
        for label, names in scopes(fp32).items():
            q = nncf.quantize(fp32, nncf.Dataset(calib, lambda x: {INPUT: x}), subset_size=len(calib),
                              ignored_scope=nncf.IgnoredScope(names=names, types=FLOAT_OPS))
            errors = [float(np.mean((y - r) ** 2)) for y, r in zip(run(q, images), references)]
            per_photo = " ".join(f"{psnr_signed(e):.1f}" for e in errors)
            print(f"{width:5} {label:>30}: {psnr_signed(float(np.mean(errors))):6.2f}  [{per_photo}]", flush=True)


if __name__ == "__main__":
    main()
