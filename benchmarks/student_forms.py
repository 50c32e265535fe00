"""The student's inference form, measured: per form and width, ONNX Runtime and LiteRT fp32
latency at 256 px (2 threads, the best of 3 medians of 40 runs) and ONNX Runtime's per-op
profile (share of node time by op type). Why compress distills the form it does (README,
"Compression").

    python benchmarks/student_forms.py [--widths 0.25,1.0] [--json benchmarks/student_forms.json]

Forms, all with the default teacher's channel-sorted weights (latency does not depend on
their values): "teacher" (Double-Tail + LADE, a reflect pad per conv, bilinear upsampling:
the seeds' design), "deploy" (static normalization folded into the convs, zero-padded convs
after one reflect pad of the input, bilinear), "deploy nearest" (the same with nearest
upsampling), "deploy no pad" (no input pad at all: the floor the border costs).
"""
import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from animeedge.runtimes.probe import cpu_model
from animeedge.compress import export_onnx, export_tflite
from animeedge.compress.export import quiet_converters
from animeedge.compress.sorting import sort_channels
from animeedge.compress.student import deploy_student
from animeedge.generator.checkpoint import UNCOMPRESSED_MODEL, load_generator
from animeedge.generator.network import INPUT_BORDER
from animeedge.generator.slicing import sliced_copy
from animeedge.runtimes.atomic import write_text
from animeedge.runtimes.backends import OnnxSession, TFLiteSession, describe_file
from animeedge.runtimes.bench import best_median_ms

RES, THREADS = 256, 2


def forms(teacher) -> dict:
    no_pad = deploy_student(teacher)
    no_pad.input_pad.border = 0
    return {"teacher": teacher, "deploy": deploy_student(teacher),
            "deploy nearest": deploy_student(teacher, upsample="nearest"), "deploy no pad": no_pad}


def onnx_op_shares(path, res=RES, runs=30) -> dict:
    """ONNX Runtime's profile: percent of node time per op type."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.enable_profiling, opts.intra_op_num_threads, opts.inter_op_num_threads = True, THREADS, 1
    opts.profile_file_prefix = str(Path(tempfile.gettempdir()) / "animeedge_profile")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, res, res), np.float32)
    for _ in range(runs):
        session.run(None, {session.get_inputs()[0].name: x})
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    time_by_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            time_by_op[e["args"]["op_name"]] += e["dur"]
    total = sum(time_by_op.values())
    return {op: round(100 * t / total, 1) for op, t in time_by_op.most_common()}


def latency_ms(session, x) -> float:
    return best_median_ms(lambda: session.invoke(x), repeats=3, warmup=5, runs=40, min_seconds=0.5)


def measure(net, folder: Path) -> dict:
    onnx_path, tflite_path = folder / "m.onnx", folder / "m.tflite"
    export_onnx.fp32_model(net, onnx_path)
    export_tflite.convert(export_tflite.without_mirror_pad(net), RES, "fp32", None).export(str(tflite_path))
    row = {}
    for name, path, session_type, shape in (("onnx", onnx_path, OnnxSession, (1, 3, RES, RES)),
                                            ("tflite", tflite_path, TFLiteSession, (1, RES, RES, 3))):
        session = session_type(path, describe_file(path, name), THREADS)
        row[f"{name}_ms"] = round(latency_ms(session, np.zeros(shape, np.float32)), 2)
    row["onnx_ops"] = onnx_op_shares(onnx_path)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="0.25,1.0")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    quiet_converters()
    torch.set_num_threads(THREADS)
    teacher = sort_channels(load_generator(UNCOMPRESSED_MODEL).eval())
    results = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for name, net in forms(teacher).items():
            for width in [float(w) for w in args.widths.split(",")]:
                row = {"form": name, "width": width} | measure(sliced_copy(net, width), Path(tmp))
                results.append(row)
                top = ", ".join(f"{op} {share}%" for op, share in list(row["onnx_ops"].items())[:5])
                print(f"{name:<15} w{width:<5} onnx {row['onnx_ms']:6.2f} ms  tflite {row['tflite_ms']:6.2f} ms  {top}",
                      flush=True)
    if args.json:
        write_text(args.json, json.dumps({"resolution": RES, "threads": THREADS, "input_border": INPUT_BORDER,
                                          "cpu": cpu_model(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
