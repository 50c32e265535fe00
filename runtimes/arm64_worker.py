"""Run ONNX and TFLite models on prepared inputs, one thread each, and save the outputs.

Standalone on purpose: it runs under the emulated aarch64 Python, which has only numpy,
onnxruntime and ai_edge_litert, and on the host with the venv's Python for the reference.

    python arm64_worker.py JOB.json

JOB.json is a list of {"path": model, "kind": "onnx"|"tflite", "inputs": in.npy,
"output": out.npy}. Inputs are fed as they are (the caller picks dtype, layout and
quantization). Prints {"onnxruntime": version, "ai_edge_litert": version} as one JSON line.
"""
import json
import sys

import numpy as np


def run_onnx(path: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def run_tflite(path: str, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


RUNNERS = {"onnx": run_onnx, "tflite": run_tflite}


def versions() -> dict:
    import ai_edge_litert
    import onnxruntime
    return {"onnxruntime": onnxruntime.__version__, "ai_edge_litert": ai_edge_litert.__version__}


def main(job_file: str):
    with open(job_file) as f:
        jobs = json.load(f)
    for job in jobs:
        np.save(job["output"], RUNNERS[job["kind"]](job["path"], np.load(job["inputs"])))
    print(json.dumps(versions()))


if __name__ == "__main__":
    main(*sys.argv[1:])
