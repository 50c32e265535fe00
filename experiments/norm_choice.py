"""Measure the generator's normalization options for phones: MACs, export to ONNX and
TFLite (litert-torch), and latency in ONNX Runtime and LiteRT at 256x256, width 1.0.

    python experiments/norm_choice.py [--runs 30] [--json FILE]

Random weights: latency and export-ability do not depend on training."""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from animeedge.runtimes.probe import cpu_model
from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
from animeedge.generator.profile import profile
from animeedge.generator.slicing import sliced_copy

NORMS = ("lade", "instance", "none")


def _time(fn, runs):
    fn()
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(times)), 2)


def onnx_latency(model, x, runs, folder):
    import onnxruntime as ort
    path = Path(folder) / "g.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["anime"],
                      opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy()}
    err = float(np.abs(sess.run(None, feed)[0] - model(x).detach().numpy()).max())
    return _time(lambda: sess.run(None, feed), runs), err


def tflite_latency(model, x, runs, folder):
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter
    path = Path(folder) / "g.tflite"
    litert_torch.convert(model, (x,)).export(str(path))
    interp = Interpreter(model_path=str(path), num_threads=2)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run():
        interp.set_tensor(inp["index"], x.numpy())
        interp.invoke()
        return interp.get_tensor(out["index"])
    err = float(np.abs(run() - model(x).detach().numpy()).max())
    return _time(run, runs), err


def measure(norm, runs, res=256):
    torch.manual_seed(0)
    model = sliced_copy(DoubleTailGenerator(GeneratorConfig(norm=norm)), 1.0)
    x = torch.rand(1, 3, res, res) * 2 - 1
    row = {"norm": norm, "gmacs": profile(model_with_norm(norm), resolutions=(res,))["widths"]["1.0"]["gmacs"][str(res)]}
    with torch.no_grad():
        row["torch_ms"] = _time(lambda: model(x), runs)
        for name, fn in (("onnx", onnx_latency), ("tflite", tflite_latency)):
            with tempfile.TemporaryDirectory() as folder:
                try:
                    row[f"{name}_ms"], row[f"{name}_max_err"] = fn(model, x, runs, folder)
                except Exception as exc:  # export-ability is what is measured here
                    row[f"{name}_ms"], row[f"{name}_error"] = None, f"{exc.__class__.__name__}: {str(exc)[:200]}"
    return row


def model_with_norm(norm):
    return DoubleTailGenerator(GeneratorConfig(norm=norm))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(2)
    rows = [measure(n, args.runs) for n in NORMS]
    print(f"{'norm':<9}{'GMAC':>7}{'torch ms':>10}{'onnx ms':>9}{'tflite ms':>11}")
    for r in rows:
        print(f"{r['norm']:<9}{r['gmacs']:>7.2f}{r['torch_ms']:>10}{str(r['onnx_ms']):>9}{str(r['tflite_ms']):>11}")
    result = {"machine": cpu_model(), "threads": 2, "resolution": 256, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    else:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
