"""Run ONNX and TFLite models on prepared inputs, one thread each, and save the outputs.

Standalone on purpose: it runs under the emulated aarch64 Python, which has only numpy,
onnxruntime and ai_edge_litert, and on the host with the venv's Python for the reference.

    python arm64_worker.py JOB.json

JOB.json is a list of {"path": model, "kind": "onnx"|"tflite", "inputs": [in.npy, ...],
"outputs": [out.npy, ...]}: each model is loaded once and run on each input. Inputs are fed as
they are (the caller picks dtype, layout and quantization). Prints {"onnxruntime": version,
"ai_edge_litert": version} as one JSON line.
"""
import json
import sys

import numpy as np


def load_onnx(path: str):
    """The model as a function of one input array."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def load_tflite(path: str):
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    source, result = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(x):
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return interpreter.get_tensor(result)
    return run


LOADERS = {"onnx": load_onnx, "tflite": load_tflite}


def run_job(job: dict) -> list[np.ndarray]:
    model = LOADERS[job["kind"]](job["path"])
    return [model(np.load(path)) for path in job["inputs"]]


def versions() -> dict:
    import ai_edge_litert
    import onnxruntime
    return {"onnxruntime": onnxruntime.__version__, "ai_edge_litert": ai_edge_litert.__version__}


def main(job_file: str):
    with open(job_file) as f:
        jobs = json.load(f)
    for job in jobs:
        for path, y in zip(job["outputs"], run_job(job)):
            np.save(path, y)
    print(json.dumps(versions()))


if __name__ == "__main__":
    main(*sys.argv[1:])
