"""One session type per format: float32 [-1, 1] in and out, in the file's own layout
(`run_native`, what a frame takes) or always NCHW (`run`, what comparisons with torch take).

Layout and int8 input/output quantization come from the manifest entry. No torch here.
"""
import os
import platform
from pathlib import Path

import numpy as np

from .errors import UserError


def _quantize(x, q):
    if not q:
        return x
    return np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)


def _dequantize(y, q):
    return y if not q else (y.astype(np.float32) - q["zero_point"]) * q["scale"]


class Session:
    def __init__(self, path, artifact: dict, threads: int | None):
        self.artifact = artifact
        self.nhwc = artifact["input"]["layout"] == "NHWC"
        self.q_in, self.q_out = artifact["input"].get("quantization"), artifact["output"].get("quantization")
        self.threads = threads or min(4, os.cpu_count() or 1)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """float32 [-1, 1] in the file's layout -> what the file takes (int8 inputs quantized)."""
        return _quantize(x, self.q_in)

    def finish(self, y: np.ndarray) -> np.ndarray:
        return _dequantize(y, self.q_out)

    def run_native(self, x: np.ndarray) -> np.ndarray:
        return self.finish(self.invoke(self.prepare(x)))

    def run(self, x: np.ndarray) -> np.ndarray:
        if not self.nhwc:
            return self.run_native(x)
        return self.run_native(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)


class OnnxSession(Session):
    def __init__(self, path, artifact, threads=None):
        super().__init__(path, artifact, threads)
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def invoke(self, x):
        return self.session.run(None, {self.input: x})[0]


def litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise UserError("running .tflite needs ai-edge-litert (or tflite-runtime): pip install ai-edge-litert") from None
    return Interpreter


class TFLiteSession(Session):
    def __init__(self, path, artifact, threads=None):
        super().__init__(path, artifact, threads)
        self.interpreter = litert_interpreter()(model_path=str(path), num_threads=self.threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def invoke(self, x):
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)


class CoreMLSession(Session):
    def __init__(self, path, artifact, threads=None):
        super().__init__(path, artifact, threads)
        if platform.system() != "Darwin":
            raise UserError("Core ML models run on macOS/iOS only; on this system use --backend onnx or tflite")
        import coremltools as ct
        self.model = ct.models.MLModel(str(path))
        self.input, self.output = artifact["input"]["name"], artifact["output"]["name"]

    def invoke(self, x):
        return np.asarray(self.model.predict({self.input: x})[self.output], dtype=np.float32)


SESSIONS = {"onnx": OnnxSession, "tflite": TFLiteSession, "coreml": CoreMLSession}


def _tensor(name, shape, dtype, layout, quantization=None) -> dict:
    fixed = [d if isinstance(d, int) and d > 0 else "dynamic" for d in shape]
    tensor = {"name": name, "layout": layout, "dtype": dtype, "shape": fixed}
    if quantization and quantization[0]:
        tensor["quantization"] = {"scale": float(quantization[0]), "zero_point": int(quantization[1])}
    return tensor


def describe_file(path, fmt: str) -> dict:
    """A manifest-like entry for an exported file outside any bundle, read from the file."""
    if fmt == "onnx":
        import onnxruntime as ort
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        dtype = {"tensor(float)": "float32", "tensor(float16)": "float16"}
        (i,), (o,) = s.get_inputs(), s.get_outputs()
        io = [_tensor(t.name, t.shape, dtype.get(t.type, t.type), "NCHW") for t in (i, o)]
    elif fmt == "tflite":
        interpreter = litert_interpreter()(model_path=str(path))
        io = [_tensor(d["name"], [int(v) for v in d["shape"]], np.dtype(d["dtype"]).name, "NHWC", d["quantization"])
              for d in (interpreter.get_input_details()[0], interpreter.get_output_details()[0])]
    else:
        raise UserError(f"{path}: a Core ML package is loaded from its bundle (it has no manifest here)")
    shape = io[0]["shape"]
    size = shape[1] if io[0]["layout"] == "NHWC" else shape[2]
    precision = "int8" if io[0]["dtype"] == "int8" else "fp32"
    return {"file": Path(path).name, "format": fmt, "precision": precision, "width": 1.0,
            "resolution": size if isinstance(size, int) else None, "input": io[0], "output": io[1]}
