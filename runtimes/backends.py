"""One session type per format: float32 [-1, 1] in and out, in the file's own layout
(`run_native`, what a frame takes) or always NCHW (`run`, what comparisons with torch take).

Layout and int8 input/output quantization come from the manifest entry. No torch here.
"""
import os
import platform

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

    def run_native(self, x: np.ndarray) -> np.ndarray:
        return _dequantize(self._run(_quantize(x, self.q_in)), self.q_out)

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

    def _run(self, x):
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

    def _run(self, x):
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

    def _run(self, x):
        return np.asarray(self.model.predict({self.input: x})[self.output], dtype=np.float32)


SESSIONS = {"onnx": OnnxSession, "tflite": TFLiteSession, "coreml": CoreMLSession}
