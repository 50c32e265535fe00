"""Any photo-to-anime generator as the teacher of `compress` (bring your own generator).

A teacher is a callable on float NCHW [-1, 1] torch tensors that returns the same, at the
same size. Sources:
- this project's checkpoint (.safetensors or a run folder);
- an `.onnx` file, run with ONNX Runtime. Its layout (where the 3 channels sit), its fixed
  or dynamic size are read from the graph; the value range and the size multiple cannot be,
  so `range` (default -1,1) and `multiple` (default 1) say them. A fixed-size graph gets
  every photo resized to its size, and its output resized back ("resized" in `describe`);
- `package.module:callable`, returning a torch nn.Module (NCHW), with optional weights
  (safetensors, or a .pt read with weights_only=True).
Bad teachers are one-line UserErrors: not ONNX, two inputs, 4 channels, an output of
another size, NaN or infinite values; a callable that raises, exits, reads stdin, starts a
debugger, aborts or hangs (load_teacher tries it in a child process first).
"""
import bdb
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from animeedge.generator.checkpoint import finite_state, load_generator
from animeedge.runtimes.backends import first_line
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import regular_file
from animeedge.runtimes.manifest import sha256_path

RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "0,255": (0.0, 255.0)}
LAYOUTS = ("nchw", "nhwc")


class Teacher:
    """A frozen generator behind the project's convention (NCHW, [-1, 1], output size =
    input size). `describe` says what it is and how it was run."""

    def __init__(self, run, layout="nchw", value_range="-1,1", multiple=1, fixed=None, describe=None):
        if value_range not in RANGES:
            raise UserError(f"--teacher-range must be one of {', '.join(RANGES)}, got {value_range!r}")
        self.run, self.layout, self.multiple, self.fixed = run, layout, max(1, int(multiple)), fixed
        self.low, self.high = RANGES[value_range]
        self.describe = (describe or {}) | {"layout": layout, "range": value_range, "multiple": self.multiple,
                                            "input_size": "dynamic" if fixed is None else list(fixed),
                                            "at_other_sizes": "resized to its fixed size and back"
                                            if fixed is not None else "run at the photo's size (reflect-padded to "
                                            "its multiple)"}

    def set_width(self, _width):  # the report treats a teacher like a width-1.0 generator
        return self

    def eval(self):
        return self

    def _to_teacher(self, x):
        x = (x + 1) / 2 * (self.high - self.low) + self.low
        return x.permute(0, 2, 3, 1) if self.layout == "nhwc" else x

    def _from_teacher(self, y):
        y = y.permute(0, 3, 1, 2) if self.layout == "nhwc" else y
        return ((y - self.low) / (self.high - self.low) * 2 - 1).clamp(-1, 1)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.fixed is not None:
            inner = F.interpolate(x, size=self.fixed, mode="bilinear", align_corners=False, antialias=True)
        else:
            ph, pw = -h % self.multiple, -w % self.multiple
            inner = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        y = self._from_teacher(finite(self.run(self._to_teacher(inner)).float()))
        if y.shape[1] != 3 or y.shape[-2:] != inner.shape[-2:]:
            raise UserError(f"the teacher returned shape {list(y.shape)} for an input of {list(inner.shape)}; "
                            "it must return a 3-channel picture of its input's size")
        if self.fixed is not None:
            return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return y[..., :h, :w]


def _onnx_teacher(path: Path, layout, value_range, multiple) -> Teacher:
    import onnx
    import onnxruntime as ort
    try:
        onnx.checker.check_model(str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UserError(f"{path.name}: not an ONNX model ONNX Runtime can run ({first_line(exc)})") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"{path.name}: the graph has {len(inputs)} inputs and {len(outputs)} outputs; a teacher "
                        "takes one picture and returns one")
    shape = inputs[0].shape
    if len(shape) != 4:
        raise UserError(f"{path.name}: input shape {shape}; a teacher takes a 4-D picture batch")
    layout = layout or _layout(path, shape)
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "nchw" else (shape[3], shape[1], shape[2])
    if c != 3:
        raise UserError(f"{path.name}: its input has {c} channels where 3 (RGB) are expected")
    fixed = (h, w) if isinstance(h, int) and isinstance(w, int) else None
    name = inputs[0].name
    dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32

    one_at_a_time = shape[0] == 1  # a fixed batch of one: the photos go through singly

    def run(x):
        batches = x.split(1) if one_at_a_time else [x]
        return torch.cat([torch.from_numpy(session.run(None, {name: b.contiguous().numpy().astype(dtype)})[0])
                          for b in batches])
    return Teacher(run, layout, value_range, multiple, fixed,
                   {"kind": "onnx", "file": path.name, "sha256": sha256_path(path)})


def _layout(path, shape) -> str:
    if shape[1] in (3, 4) and shape[3] not in (3, 4):
        return "nchw"
    if shape[3] in (3, 4) and shape[1] not in (3, 4):
        return "nhwc"
    raise UserError(f"{path.name}: input shape {shape} does not say its layout; pass --teacher-layout nchw or nhwc")


def finite(y: torch.Tensor) -> torch.Tensor:
    """y, if every value is finite (a NaN teacher would teach NaN and score as a perfect match)."""
    if not torch.isfinite(y).all():
        raise UserError("the teacher returned NaN or infinite values")
    return y


def _refuse_debugger(*_args, **_kwargs):
    raise RuntimeError("it started a debugger (breakpoint())")


def _guarded(spec: str, what: str, call):
    """call() for the user's module code: stdin at end of file (input() and pdb get EOF, they
    do not wait), breakpoint() refused, and whatever it raises or exits with, SystemExit and
    KeyboardInterrupt included, one line."""
    stdin, hook, trace = sys.stdin, sys.breakpointhook, sys.gettrace()
    try:
        with open(os.devnull) as null:
            sys.stdin, sys.breakpointhook = null, _refuse_debugger
            return (lambda: call())()  # its own frame: pdb.set_trace() stops there and quits on EOF
    except BaseException as exc:
        raise UserError(f"{spec}: {what} {_reason(exc)}") from None
    finally:
        sys.stdin, sys.breakpointhook = stdin, hook
        sys.settrace(trace)  # not what a debugger it started left behind


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it exited (status {0 if exc.code is None else exc.code})"
    if isinstance(exc, bdb.BdbQuit):
        return "it started a debugger (pdb), which quit on the closed stdin"
    return first_line(exc)


def _module_teacher(spec: str, weights, value_range, multiple) -> Teacher:
    module_name, _, attr = spec.partition(":")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = _guarded(spec, "importing it:", lambda: importlib.import_module(module_name))
    finally:
        sys.path.pop(0)
    if not callable(factory := getattr(module, attr, None)):
        raise UserError(f"{spec}: {module_name} has no callable {attr!r}")
    net = _guarded(spec, "calling it:", factory)
    if not isinstance(net, torch.nn.Module):
        raise UserError(f"{spec}: returned {type(net).__name__}, not a torch nn.Module")
    describe = {"kind": "module", "callable": spec}
    if weights:
        try:
            net.load_state_dict(_state_dict(Path(weights)))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise UserError(f"{weights}: these weights do not fit {spec} ({first_line(exc)})") from None
        describe |= {"file": Path(weights).name, "sha256": sha256_path(weights)}
    net.eval().requires_grad_(False)
    return Teacher(net, "nchw", value_range, multiple, None, describe)


def _state_dict(path: Path) -> dict:
    regular_file(path, "weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return finite_state(load_file(str(path)), path.name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path.name}: not a weights file torch can read safely ({type(exc).__name__})") from None
    return finite_state(state, path.name) if isinstance(state, dict) else state


CHECK_SIZE = 72  # a size off every usual multiple but 8, tried once at load
PROBE_SECONDS = 30  # default limit for loading and one CHECK_SIZE picture, in the child process
PROBE_OK = "ok"


def load_teacher(source, layout=None, value_range="-1,1", multiple=1, weights=None, probe=True,
                 seconds=None) -> Teacher:
    """A Teacher from a checkpoint, an .onnx file or `package.module:callable`, run once on
    a blank picture so that a bad one fails here, in one line, not steps into a run.

    An ONNX or module teacher is the user's own code or graph: it is first loaded and run
    once in a child process (`probe`), so that one that aborts or crashes the process, or
    does not answer within `seconds` (default PROBE_SECONDS; an ONNX Loop of 2^62
    iterations), ends the child, not this run, and becomes one line. It costs the child's
    torch import, a few seconds."""
    if probe and _kind(str(source)) != "checkpoint":
        _probe(source, layout, value_range, multiple, weights, seconds or PROBE_SECONDS)
    teacher = _load(source, layout, value_range, multiple, weights)
    try:
        teacher(torch.zeros(1, 3, CHECK_SIZE, CHECK_SIZE))
    except UserError as exc:
        raise UserError(f"{source}: on a {CHECK_SIZE}x{CHECK_SIZE} picture, {exc}") from None
    except Exception as exc:
        raise UserError(f"{source}: the teacher fails on a {CHECK_SIZE}x{CHECK_SIZE} picture ({first_line(exc)}); "
                        "if it needs sizes of a multiple, pass --teacher-multiple") from None
    return teacher


def _kind(text: str) -> str:
    if text.endswith(".onnx"):
        return "onnx"
    return "module" if ":" in text and not Path(text).exists() else "checkpoint"


def _probe(source, layout, value_range, multiple, weights, seconds):
    """load_teacher in a child process, with stdin, stdout and stderr off the terminal;
    its UserError, its death or its time limit as one line here."""
    args = json.dumps([str(source), layout, value_range, multiple, weights and str(weights)])
    with tempfile.TemporaryDirectory(prefix="animeedge-teacher-") as tmp:
        result = Path(tmp) / "result.txt"
        code = "import sys; from animeedge.compress.teacher import _probe_child; _probe_child(*sys.argv[1:])"
        try:
            done = subprocess.run([sys.executable, "-c", code, args, str(result)], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=seconds)
        except subprocess.TimeoutExpired:
            raise UserError(f"{source}: the teacher has not answered: it did not load and stylize one "
                            f"{CHECK_SIZE}x{CHECK_SIZE} picture in {seconds:g} s (tried in a child process, now "
                            f"stopped); refused. A teacher that is only slow can have longer: --teacher-timeout "
                            f"{4 * seconds:g}") from None
        message = result.read_text() if result.is_file() else ""
    if done.returncode == 0 and message == PROBE_OK:
        return
    if message and message != PROBE_OK:
        raise UserError(message)
    if done.returncode < 0:
        killed = signal.strsignal(-done.returncode) or f"signal {-done.returncode}"
        raise UserError(f"{source}: loading the teacher killed its process ({killed}; tried in a child process)")
    last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:300]
    raise UserError(f"{source}: loading the teacher ended its process early (exit status {done.returncode}: {last}; "
                    "tried in a child process)")


def _probe_child(args: str, result: str):
    """The child's side of _probe: PROBE_OK or its UserError goes to the `result` file (an
    exit without either, os._exit(0) included, is a failure)."""
    try:
        load_teacher(*json.loads(args), probe=False)
    except UserError as exc:
        Path(result).write_text(str(exc))
        sys.exit(2)
    Path(result).write_text(PROBE_OK)


def _load(source, layout, value_range, multiple, weights) -> Teacher:
    text = str(source)
    if layout not in (None, *LAYOUTS):
        raise UserError(f"--teacher-layout must be nchw or nhwc, got {layout!r}")
    if _kind(text) == "onnx":
        return _onnx_teacher(regular_file(text, "ONNX file"), layout, value_range, multiple)
    if _kind(text) == "module":
        return _module_teacher(text, weights, value_range, multiple)
    net = load_generator(source).eval().requires_grad_(False).set_width(1.0)
    return Teacher(net, "nchw", "-1,1", 1, None, {"kind": "checkpoint", "file": Path(text).name,
                                                  "sha256": sha256_path(source)})
