"""Core ML export (coremltools): one mlprogram .mlpackage per width and precision, with
enumerated input shapes for the bundle's resolutions, float32 NCHW tensors in and out.

fp32 / fp16 are the compute precisions; int8 is fp16 compute with int8 (per-channel,
symmetric) weights. W8A8 through coremltools.optimize.coreml needs Core ML to run the model
for activation statistics, which only macOS can, so it is not produced here.
Core ML cannot predict on Linux: `describe` validates the saved spec instead.
"""
import contextlib
import copy
import io
from collections import Counter

import numpy as np
import torch

from animeedge.generator.network import InputPad
from animeedge.runtimes.formats import reference_resolution

INPUT, OUTPUT = "image", "stylized"
INT8_WEIGHT_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}


def _convert(net, resolutions, precision):
    import coremltools as ct
    default = reference_resolution(resolutions)
    net = copy.deepcopy(net)
    for pad in [m for m in net.modules() if isinstance(m, InputPad)]:
        pad.static = True
    traced = torch.jit.trace(net, torch.zeros(1, 3, default, default), check_trace=False)
    shape = ct.EnumeratedShapes(shapes=[(1, 3, r, r) for r in resolutions], default=(1, 3, default, default))

    return ct.convert(
        traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
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
            "ops": dict(sorted(ops.items())), "int8_weights": bool(INT8_WEIGHT_OPS & set(ops))}


def export(net, folder, stem, precisions, resolutions, photos) -> list[dict]:
    import coremltools as ct  # noqa: F401  (ImportError here: the bundle goes on without Core ML)
    folder.mkdir(parents=True, exist_ok=True)
    # enumerated shapes need two or more (a fixed shape trips coremltools 9.0 on numpy >= 2.4)
    resolutions = sorted({r for r in resolutions if r % 4 == 0} | ({2 * resolutions[0]} if len(resolutions) == 1 else set()))
    files = []
    for precision in precisions:
        with contextlib.redirect_stderr(io.StringIO()):  # coremltools prints a bar per MIL pipeline
            mlmodel = _convert(net, resolutions, precision)
            if precision == "int8":
                mlmodel = _int8_weights(mlmodel)
        path = folder / f"{stem}_{precision}.mlpackage"
        mlmodel.save(str(path.resolve()))
        spec = describe(path)
        files.append({
            "path": path, "precision": precision, "resolutions": resolutions,
            "input": {"name": INPUT, "layout": "NCHW", "dtype": "float32", "shape": [1, 3, "H", "W"]},
            "output": {"name": OUTPUT, "layout": "NCHW", "dtype": "float32", "shape": [1, 3, "H", "W"]},
            "quantization": {"weights": "int8 per-channel symmetric", "activations": "fp16"}
            if precision == "int8" else {},
            "coreml": spec,
        })
    return files
