"""The project's vocabulary, defined once: channel widths, precisions, resolutions and file
formats. Torch-free (the ground floor): every other module, the manifest schema and the
command line take these names from here.

- A width is a channel ratio in (0, 1]; `width_key` is its one spelling in manifests, file
  names and tables ("0.25", "1.0").
- A precision: fp32 and fp16 compute; int8, int8 weights and activations (static, calibrated)
  in every format; int8w, int8 weights with fp16 compute, Core ML only (for Neural Engines
  without int8 x int8: before A17 Pro / M4).
- A resolution is a frame's longer side in px, within RESOLUTION_RANGE.
- A format is a file type with its suffix, tensor layout, the systems that run it, its
  exporter module and the packages the exporter needs.
"""
import platform
from dataclasses import dataclass

WIDTHS = (0.25, 0.5, 0.75, 1.0)  # what the default is distilled, exported and reported at
PRECISIONS = ("fp32", "fp16", "int8", "int8w")
RESOLUTIONS = (128, 256, 512)  # the default training and export resolutions
RESOLUTION_RANGE = (16, 4096)  # what an artifact may declare, and what runs accept
REFERENCE_RESOLUTION = 256  # where fidelity, speed and int8 calibration are measured


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    layout: str  # the input tensor's layout
    systems: tuple  # platform.system() values that run it
    exporter: str  # the module that writes it
    packages: tuple  # what that exporter needs
    precisions: tuple = PRECISIONS[:3]  # what it makes


_EXPORTERS = "animeedge.compress.export_"
FORMATS = {f.name: f for f in (
    Format("onnx", ".onnx", "NCHW", ("Linux", "Darwin", "Windows"), _EXPORTERS + "onnx",
           ("onnx", "onnxslim", "nncf", "onnxruntime")),
    Format("tflite", ".tflite", "NHWC", ("Linux", "Darwin", "Windows"), _EXPORTERS + "tflite",
           ("litert_torch", "nncf", "ai_edge_litert")),
    Format("coreml", ".mlpackage", "NCHW", ("Darwin",), _EXPORTERS + "coreml", ("coremltools", "litert_torch"),
           PRECISIONS),  # litert_torch: its PT2E quantizer calibrates the int8 file
)}
FORMAT_NAMES = tuple(FORMATS)
SUFFIXES = {f.suffix: f.name for f in FORMATS.values()}


def runs_here(fmt: str) -> bool:
    """Whether this system can run files of `fmt` (Core ML predicts on macOS only)."""
    return platform.system() in FORMATS[fmt].systems


def width_key(width) -> str:
    """The one spelling of a width: in manifests ("0.25", "1.0") and file stems ("w0.25")."""
    return str(round(float(width), 4))


def is_width(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


def reference_resolution(resolutions) -> int:
    """REFERENCE_RESOLUTION if among `resolutions`, else the one nearest to it (the smaller on a tie)."""
    return min(resolutions, key=lambda r: (abs(r - REFERENCE_RESOLUTION), r))
