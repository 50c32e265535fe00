"""What NNCF's int8 PTQ of the teacher form's ONNX file (the LADE network, `export
--teacher-form`) must leave in float: the PSNR against fp32 on the 8 evaluation photos (mean
error, and per photo) with only LADE's arithmetic in float (`FLOAT_OPS`), with its
projections too, with its "+ mean(t)" Add too (the export's scope, `lade_nodes`), and with
the Add alone. Plain PTQ, no accuracy control, so the scope alone
decides (README, "Export").

--isa: the export's own int8 file of the default model (accuracy control and all), with NNCF's
default overflow fix (7-bit weights in the first conv only) and with the export's (every conv
but depthwise): the PSNR against fp32 on this machine, and how far the same file's output moves
on an x86 without AVX-512 or VNNI (qemu-x86_64-static -cpu EPYC-Milan: AVX2, whose u8 x s8
products sum pairs into a saturating int16) and on an emulated cortex-a76 (`make arm64`;
skipped without it), on the first --photos evaluation photos (compress/export_onnx.py).

    python experiments/onnx_int8_scope.py [--widths 0.25,0.75] [--resolution 256]
    python experiments/onnx_int8_scope.py --isa [--widths 0.25,1.0] [--photos 4]
"""
import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from animeedge.calibration.data import CalibrationSet, shared_data
from animeedge.compress.export import quiet_converters
from animeedge.compress.export_onnx import FLOAT_OPS, INPUT, fp32_model, int8_model, lade_nodes, saturating_weights
from animeedge.compress.quality import psnr_signed
from animeedge.generator.checkpoint import DEFAULT_MODEL, TEACHER_FORM_MODEL, load_generator
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


NO_VNNI = ["qemu-x86_64-static", "-cpu", "EPYC-Milan"]  # Zen 3: AVX2; qemu's TCG has no AVX-512 nor VNNI
RUN = ("import sys, numpy as np, onnxruntime as ort; s = ort.InferenceSession(sys.argv[1], "
       "providers=['CPUExecutionProvider']); np.save(sys.argv[3], np.stack([s.run(None, {'image': x})[0] "
       "for x in np.load(sys.argv[2])]))")


def run_no_vnni(path, inputs: Path):
    """The outputs of this venv's onnxruntime on the emulated AVX2-only x86."""
    out = inputs.with_name(path.stem + "_avx2.npy")
    subprocess.run([*NO_VNNI, sys.executable, "-c", RUN, str(path), str(inputs), str(out)], check=True,
                   capture_output=True)
    return list(np.load(out))


def run_arm(path, inputs: Path, cpu="cortex-a76"):
    """The outputs of the aarch64 onnxruntime on an emulated `cpu`, or None without `make arm64`."""
    from animeedge.arm64 import WORKER, EmulationUnavailable, run_emulated
    frames = []
    for k, x in enumerate(np.load(inputs)):
        frames.append(inputs.with_name(f"frame_{k}.npy"))
        np.save(frames[-1], x)
    outputs = [inputs.with_name(f"{path.stem}_{cpu}_{k}.npy") for k in range(len(frames))]
    job = inputs.with_name(f"{path.stem}_{cpu}.json")
    job.write_text(json.dumps([{"path": str(path), "kind": "onnx", "inputs": list(map(str, frames)),
                                "outputs": list(map(str, outputs))}]))
    try:
        done = run_emulated(cpu, [WORKER, job])
    except EmulationUnavailable:
        return None
    if done.returncode:
        raise RuntimeError(done.stderr[-500:])
    return [np.load(o) for o in outputs]


def db(ys, refs) -> float:
    """PSNR of the mean error; 999: identical."""
    mse = float(np.mean([np.mean((y - r) ** 2) for y, r in zip(ys, refs)]))
    return min(999.0, psnr_signed(mse)) if mse else 999.0


def compare(ys, refs) -> str:
    """PSNR of the mean error and the max abs error."""
    if ys is None:
        return f"{'(no make arm64)':>17}"
    return f"{db(ys, refs):6.1f} dB {max(float(np.abs(y - r).max()) for y, r in zip(ys, refs)):8.3g}"


def isa(args, photos):
    """The --isa table (module docstring)."""
    images = [x.astype(np.float32) for x in photos.eval(args.resolution)][:args.photos]
    print(f"{args.resolution} px, {len(images)} evaluation photos; dB: PSNR of the mean error, then max abs error")
    print(f"{'width':>5} {'overflow fix':>16} {'8-bit convs':>11} {'vs fp32':>8} {'AVX2 vs fp32':>12}"
          f" {'AVX2 vs here':>17} {'cortex-a76 vs here':>19} {'AVX2 vs a76':>17}")
    for width in args.widths:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            fp32 = fp32_model(sliced_copy(load_generator(DEFAULT_MODEL), width).eval(), tmp / "fp32.onnx")
            references = run(fp32, images)
            np.save(tmp / "inputs.npy", np.stack(images))
            for fix in ("first_layer_only", "enable"):
                q = int8_model(fp32, photos, args.resolution, overflow_fix=fix)
                path = tmp / f"w{width}_{fix}.onnx"
                path.write_bytes(q.SerializeToString())
                here, avx2, arm = run(q, images), run_no_vnni(path, tmp / "inputs.npy"), run_arm(path, tmp / "inputs.npy")
                print(f"{width:5} {fix:>16} {len(saturating_weights(q)):11} {db(here, references):8.2f}"
                      f" {db(avx2, references):12.2f} {compare(avx2, here)} {compare(arm, here):>19}"
                      f" {compare(arm, avx2) if arm is not None else '':>17}", flush=True)


def main():
    import nncf
    p = argparse.ArgumentParser()
    p.add_argument("--widths", type=lambda t: [float(w) for w in t.split(",")], default=None)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--isa", action="store_true", help="the overflow fix on x86 with and without VNNI, and on ARM")
    p.add_argument("--photos", type=int, default=4, help="--isa: evaluation photos run under emulation")
    args = p.parse_args()
    quiet_converters()
    nncf.set_log_level(logging.ERROR)
    photos = CalibrationSet(shared_data("photos/calib"))
    if args.isa:
        args.widths = args.widths or [0.25, 1.0]
        return isa(args, photos)
    args.widths = args.widths or [0.25, 0.75]
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
