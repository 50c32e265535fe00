"""Core ML export (coremltools): one mlprogram .mlpackage per width and precision, with
enumerated input shapes for the bundle's resolutions, float32 NCHW tensors in and out.

- fp32 / fp16: the compute precisions (traced with TorchScript; iOS 16).
- int8 (W8A8), as in the ONNX and TFLite int8 files: int8 per-channel symmetric weights
  (constexpr_affine_dequantize) and int8 activations (quantize / dequantize ops; iOS 17),
  by export_tflite.pt2e_int8 (PT2E, litert-torch's quantizer, LADE layers in float)
  calibrated in torch on the calibration photos, then converted from torch.export with the
  side dynamic over the enumerated sizes. The Neural Engine computes int8 x int8 from A17
  Pro / M4 on; earlier devices dequantize and compute in fp16. coremltools' own torch routes
  fail on torch 2.13: LinearQuantizer traces with torch.fx, which the network's shape
  arithmetic defeats, and CoreMLQuantizer imports torch.ao.quantization.quantizer, which
  torch 2.13 no longer has (coremltools.optimize.coreml calibrates by running Core ML:
  macOS only).
- int8w: int8 weights, fp16 compute (iOS 16): for devices without int8 x int8.
Core ML cannot predict on Linux: `describe` validates the saved spec instead.
"""
import contextlib
import copy
import io
from collections import Counter

import numpy as np
import torch

from animeedge.generator.network import STRIDE, InputPad
from animeedge.runtimes.formats import reference_resolution

from .export_tflite import pt2e_int8

INPUT, OUTPUT = "image", "stylized"
INT8_WEIGHT_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}
DEBUG_MAPPING = "executorch_debug_handle_mapping.json"  # saved beside a torch.export conversion; no part of the model


def _static_copy(net):
    net = copy.deepcopy(net).eval()
    for pad in [m for m in net.modules() if isinstance(m, InputPad)]:
        pad.static = True
    return net


def _w8a8_program(net, resolutions, sample, photos):
    """int8 weights and activations (module docstring): an ExportedProgram whose square side
    is dynamic over the enumerated sizes (multiples of the stride)."""
    side = STRIDE * torch.export.Dim("side", min=resolutions[0] // STRIDE, max=resolutions[-1] // STRIDE)
    dynamic = {"x": {2: side, 3: side}}
    calib = [torch.from_numpy(x) for x in photos.calib(sample.shape[-1])]
    graph, _ = pt2e_int8(net, sample, calib, dynamic_shapes=dynamic, fold_quantize=True)  # folded: int8 constants
    return torch.export.export(graph, (sample,), dynamic_shapes=dynamic).run_decompositions({})


def _convert(net, resolutions, precision, photos):
    import coremltools as ct
    default = reference_resolution(resolutions)
    net, sample = _static_copy(net), torch.zeros(1, 3, default, default)
    if precision == "int8":
        model, target = _w8a8_program(net, resolutions, sample, photos), ct.target.iOS17
    else:
        model, target = torch.jit.trace(net, sample, check_trace=False), ct.target.iOS16
    shape = ct.EnumeratedShapes(shapes=[(1, 3, r, r) for r in resolutions], default=(1, 3, default, default))

    return ct.convert(
        model, convert_to="mlprogram", minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        inputs=[ct.TensorType(name=INPUT, shape=shape, dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)])


def _int8_weights(mlmodel):
    import coremltools.optimize as cto
    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", weight_threshold=0))  # the default threshold skips small convs
    return cto.coreml.linear_quantize_weights(mlmodel, config)


def describe(path) -> dict:
    """The saved spec, read without running it: I/O, shapes, op counts, weight storage."""
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    dtype_name = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name

    def feature(f):
        t = f.type.multiArrayType
        return {"name": f.name, "dtype": dtype_name(t.dataType),
                "shapes": [list(s.shape) for s in t.enumeratedShapes.shapes]}
    fn = spec.mlProgram.functions["main"]
    ops = Counter(op.type for op in fn.block_specializations[fn.opset].operations)
    return {"specification_version": spec.specificationVersion, "opset": fn.opset,
            "inputs": [feature(f) for f in spec.description.input],
            "outputs": [feature(f) for f in spec.description.output],
            "ops": dict(sorted(ops.items())), "int8_weights": bool(INT8_WEIGHT_OPS & set(ops)),
            "int8_activations": "quantize" in ops}


def _quantization(precision, photos, res) -> dict:
    weights = "int8 per-channel symmetric"
    if precision == "int8":
        return {"weights": weights, "activations": f"int8, calibrated on {len(photos.calib(res))} photos at {res} px",
                "method": "PT2E (litert-torch quantizer), LADE layers in float; quantize/dequantize ops (iOS 17)",
                "runs_int8_on": "Neural Engine of A17 Pro / M4 and later; earlier devices dequantize to fp16"}
    if precision == "int8w":
        return {"weights": weights, "activations": "fp16",
                "runs_int8_on": "none: int8 storage, fp16 compute (iOS 16); for Neural Engines before A17 Pro / M4"}
    return {}


def export(net, folder, stem, precisions, resolutions, photos) -> list[dict]:
    import coremltools as ct  # noqa: F401  (ImportError here: the bundle goes on without Core ML)
    folder.mkdir(parents=True, exist_ok=True)
    # enumerated shapes need two or more (a fixed shape trips coremltools 9.0 on numpy >= 2.4)
    resolutions = sorted({r for r in resolutions if r % 4 == 0} | ({2 * resolutions[0]} if len(resolutions) == 1 else set()))
    files = []
    for precision in precisions:
        with contextlib.redirect_stderr(io.StringIO()):  # coremltools prints a bar per MIL pipeline
            mlmodel = _convert(net, resolutions, precision, photos)
            if precision == "int8w":
                mlmodel = _int8_weights(mlmodel)
        path = folder / f"{stem}_{precision}.mlpackage"
        mlmodel.save(str(path.resolve()))
        (path / DEBUG_MAPPING).unlink(missing_ok=True)
        spec = describe(path)
        files.append({
            "path": path, "precision": precision, "resolutions": resolutions,
            "input": {"name": INPUT, "layout": "NCHW", "dtype": "float32", "shape": [1, 3, "H", "W"]},
            "output": {"name": OUTPUT, "layout": "NCHW", "dtype": "float32", "shape": [1, 3, "H", "W"]},
            "quantization": _quantization(precision, photos, reference_resolution(resolutions)),
            "coreml": spec,
        })
    return files
