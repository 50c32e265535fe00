"""One session type per format: float32 [-1, 1] in and out, in the file's own layout
(`run_native`, what a frame takes) or always NCHW (`run`, what comparisons with torch take).

Before a runtime is handed a file, its operators are checked (runtimes/opset.py). Layout
and int8 input/output quantization come from the manifest entry, which a session checks
against what the runtime reports of the file at load: a disagreement, or a file the runtime
cannot load, is a one-line UserError. No torch here.
"""
import importlib.util
import math
import os
from pathlib import Path

import numpy as np

from .errors import UserError
from .formats import runs_here
from .opset import LABELS, check_ops


def quantize(x, q):
    if not q:
        return x
    y = np.divide(x, q["scale"])  # the one temporary, rounded and clipped in place
    np.rint(y, out=y)
    y += q["zero_point"]
    return np.clip(y, -128, 127, out=y).astype(np.int8)


def dequantize(y, q):
    return y if not q else (y.astype(np.float32) - q["zero_point"]) * q["scale"]


def first_line(exc: Exception) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _loaded(fmt, path, make):
    """The runtime's object for a file whose operators pass `check_ops`, or a one-line
    UserError if they do not or the runtime refuses the file."""
    check_ops(path, fmt)
    try:
        return make()
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{Path(path).name}: not a valid {LABELS[fmt]} model ({first_line(exc)})") from None


def _same_quantization(declared, actual) -> bool:
    if not declared or not actual:
        return not declared and not actual
    return (declared["zero_point"] == actual["zero_point"]
            and math.isclose(declared["scale"], actual["scale"], rel_tol=1e-6))


def _fits(declared: list, shape: list) -> bool:
    """Every size the file fixes is declared as that size (where the file is dynamic, a
    fixed declaration is only narrower)."""
    return len(declared) == len(shape) and all(f == "dynamic" or d == f for d, f in zip(declared, shape))


def check_io(path, artifact: dict, actual: dict):
    """The manifest's input and output against the file's (`actual`, as `_tensor` builds
    them): dtype, layout (where the channel axis holds 3), fixed sizes and quantization."""
    for side in ("input", "output"):
        declared, found = artifact[side], actual[side]
        shape = found["shape"]
        channel = 3 if declared["layout"] == "NHWC" else 1
        problems = []
        if declared["dtype"] != found["dtype"]:
            problems.append(("dtype", declared["dtype"], found["dtype"]))
        if len(shape) != 4 or shape[channel] != 3:
            problems.append(("layout", f"{declared['layout']}", f"shape {shape}"))
        elif "shape" in declared and not _fits(declared["shape"], shape):
            problems.append(("shape", declared["shape"], shape))
        if not _same_quantization(declared.get("quantization"), found.get("quantization")):
            problems.append(("quantization", declared.get("quantization"), found.get("quantization")))
        if problems:
            what, said, is_ = problems[0]
            raise UserError(f"{Path(path).name}: the manifest says {side} {what} {said}, the file has {is_}")


class Session:
    def __init__(self, path, artifact: dict, threads: int | None):
        self.artifact = artifact
        self.nhwc = artifact["input"]["layout"] == "NHWC"
        self.q_in, self.q_out = artifact["input"].get("quantization"), artifact["output"].get("quantization")
        self.threads = threads or min(4, os.cpu_count() or 1)

    def native(self, x: np.ndarray) -> np.ndarray:
        """float32 [-1, 1] -> the file's input type (int8 inputs quantized); elementwise, so
        a Stylizer may tabulate it per byte value (processing.byte_table)."""
        return quantize(x, self.q_in)

    def prepare(self, x: np.ndarray):
        """float32 [-1, 1] in the file's layout -> what `invoke` takes."""
        return self.feed(self.native(x))

    def feed(self, x: np.ndarray):
        """An input already in the file's type and layout -> what `invoke` takes (the array
        itself; LiteRT copies it into the interpreter here)."""
        return x

    def finish(self, y: np.ndarray) -> np.ndarray:
        return dequantize(y, self.q_out)

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
        self.session = _loaded("onnx", path, lambda: ort.InferenceSession(str(path), opts,
                                                                         providers=["CPUExecutionProvider"]))
        check_io(path, artifact, _onnx_io(path, self.session))
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
    _fed = None  # the Fed whose array the interpreter's input holds

    def __init__(self, path, artifact, threads=None):
        super().__init__(path, artifact, threads)
        interpreter = litert_interpreter()
        self.interpreter = _loaded("tflite", path, lambda: _allocated(interpreter(model_path=str(path),
                                                                                  num_threads=self.threads)))
        check_io(path, artifact, _tflite_io(path, self.interpreter))
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def feed(self, x: np.ndarray) -> "Fed":
        """Copies the input into the interpreter now, so that `invoke` is the model alone; the
        returned Fed keeps the array in case another input is fed before it runs again."""
        self.interpreter.set_tensor(self.input, x)
        self._fed = Fed(x)
        return self._fed

    def invoke(self, x):
        fed = isinstance(x, Fed)
        if not (fed and x is self._fed):  # a plain array, or fed before another one
            self.interpreter.set_tensor(self.input, x.array if fed else x)
            self._fed = x if fed else None
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)


class Fed:
    """An input a session has copied into its runtime (TFLiteSession.feed)."""
    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


class CoreMLSession(Session):
    def __init__(self, path, artifact, threads=None):
        super().__init__(path, artifact, threads)
        if not runs_here("coreml"):
            raise UserError("Core ML models run on macOS/iOS only; on this system use backend='onnx' or 'tflite'")
        if importlib.util.find_spec("coremltools") is None:
            raise UserError("running Core ML needs coremltools: pip install coremltools")
        import coremltools as ct
        self.model = _loaded("coreml", path, lambda: ct.models.MLModel(str(path)))
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


def _allocated(interpreter):
    interpreter.allocate_tensors()
    return interpreter


def _one_each(path, inputs, outputs):
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"{Path(path).name}: has {len(inputs)} inputs and {len(outputs)} outputs; one of each "
                        "(an RGB image) is expected")


ONNX_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8",
               "tensor(uint8)": "uint8"}


def _onnx_io(path, session) -> dict:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    _one_each(path, inputs, outputs)
    return {side: _tensor(t.name, t.shape, ONNX_DTYPES.get(t.type, t.type), "NCHW")
            for side, t in (("input", inputs[0]), ("output", outputs[0]))}


def _tflite_io(path, interpreter) -> dict:
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    _one_each(path, inputs, outputs)
    return {side: _tensor(d["name"], [int(v) for v in d.get("shape_signature", d["shape"])],
                          np.dtype(d["dtype"]).name, "NHWC", d["quantization"])
            for side, d in (("input", inputs[0]), ("output", outputs[0]))}


def describe_file(path, fmt: str) -> dict:
    """A manifest-like entry for an exported file outside any bundle, read from the file."""
    if fmt == "onnx":
        import onnxruntime as ort
        session = _loaded("onnx", path, lambda: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
        found = _onnx_io(path, session)
    elif fmt == "tflite":
        interpreter = litert_interpreter()
        found = _tflite_io(path, _loaded("tflite", path, lambda: interpreter(model_path=str(path))))
    else:
        raise UserError(f"{path}: a Core ML package is loaded from its bundle (it has no manifest here)")
    io = [found["input"], found["output"]]
    shape = io[0]["shape"]
    size = shape[1] if io[0]["layout"] == "NHWC" else shape[2]
    precision = "int8" if io[0]["dtype"] == "int8" else "fp32"
    return {"file": Path(path).name, "format": fmt, "precision": precision, "width": 1.0,
            "resolution": size if isinstance(size, int) else None, "input": io[0], "output": io[1]}
