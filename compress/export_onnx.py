"""ONNX export: one file per width and precision, dynamic height and width, opset 17,
simplified with onnxslim. NCHW float32 in and out for every precision.

- fp32: the TorchScript exporter traced at a size that is not a multiple of the stride, so
  the reflect padding to the stride stays a computed (dynamic) step in the graph.
- fp16: weights and activations in fp16, float32 at the edges (ORT's float16 converter).
- int8: NNCF post-training quantization (QDQ, per-channel weights) on calibration photos,
  with LADE layers kept in float: their arithmetic (ReduceMean, Sqrt, Div, ...; quantized, a
  quiet channel's variance rounds to 0 and 1/sqrt(0) = inf), their projections and their
  output's "+ mean(t)" (PTQ alone at width 0.25: 21.1 dB against fp32 with only the
  arithmetic in float, 37.4 dB with the whole layer; README, "Export"), and NNCF's accuracy
  control returning the most sensitive layers to float until the output PSNR against fp32, on a
  validation split of the calibration photos, reaches TARGET_PSNR_DB. The MIXED preset and
  float first/last convs measured worse (README, "Export").
  Weights of every conv that is not depthwise are 7-bit (NNCF's overflow fix, OverflowFix.ENABLE:
  half the int8 range, |q| <= 64). x86 without VNNI (SSE, AVX2, AVX-512 without VNNI) multiplies
  u8 activations by s8 weights with pmaddubsw, which sums each pair into a saturating int16:
  2 * 255 * 127 overflows it, 2 * 255 * 64 cannot. With NNCF's default (the first conv only),
  the same file's output on AVX2 alone moved up to 0.35 (width 0.25) and 0.17 (1.0) off its
  output with VNNI and 0.22 / 0.10 off emulated ARM (which matched VNNI within 0.02), and
  `animeedge verify` failed on an AVX2 host. 7-bit, AVX2 and VNNI give the same bits, and the
  PSNR against fp32 moved by under 0.2 dB (256 px; experiments/onnx_int8_scope.py --isa).
  MLAS's depthwise kernels widen to 16 bits and multiply word by word (no pair sum), so depthwise
  convs, which NNCF's fix leaves alone, keep 8 bits.
"""
import logging

import numpy as np
import torch

from animeedge.runtimes.formats import reference_resolution

from .quality import psnr_signed

INPUT, OUTPUT = "image", "stylized"
TRACE_SIZE = (1, 3, 254, 250)  # not a multiple of 4: keeps the padding computed, not folded
OPSET = 17
FLOAT_OPS = ["ReduceMean", "Sqrt", "Sub", "Div", "Mul"]
TARGET_PSNR_DB, PSNR_CAP = 36.0, 60.0  # identical outputs score the cap, so max_drop = cap - target
WEIGHT_LEVELS_NO_VNNI = 64  # |int8 weight| at most this: u8 x s8 pairs fit int16 (2 * 255 * 64 <= 32767)
OVERFLOW_FIX = "enable"  # nncf.OverflowFix: 7-bit weights in every conv NNCF fixes (all but depthwise)
GEMM_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def fp32_model(net, path):
    import onnx
    import onnxslim
    torch.onnx.export(net, (torch.zeros(TRACE_SIZE),), str(path), input_names=[INPUT], output_names=[OUTPUT],
                      opset_version=OPSET, dynamo=False,
                      dynamic_axes={INPUT: {2: "height", 3: "width"}, OUTPUT: {2: "height", 3: "width"}})
    model = onnxslim.slim(onnx.load(str(path)))
    onnx.save(model, str(path))
    return model


def _fp16(model):
    from onnxruntime.transformers.float16 import convert_float_to_float16
    return convert_float_to_float16(model, keep_io_types=True)


def _psnr_metric(fp32_model, images):
    """NNCF validation_fn: mean PSNR (capped; NaN/inf outputs score 0) against the fp32 model."""
    import onnxruntime as ort

    def run(model):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return [session.run(None, {INPUT: x})[0] for x in images]

    references = run(fp32_model)

    def psnr(mse):
        return min(PSNR_CAP, psnr_signed(mse)) if np.isfinite(mse) else 0.0

    def validate(model, _dataset):
        # PSNR of the mean squared error, as the bundle's fidelity is measured: a mean of
        # per-photo PSNRs hides the few photos that int8 ruins
        errors = [float(np.mean((y - ref) ** 2)) for y, ref in zip(run(model), references)]
        return psnr(float(np.mean(errors))), [psnr(e) for e in errors]
    return validate


def lade_nodes(model) -> list[str]:
    """LADE's projections (the convs fed by its centring, a Sub, or its mean, a ReduceMean)
    and the Add that gives its output the projection's mean."""
    nodes = model.graph.node
    producer = {out: node for node in nodes for out in node.output}

    def sources(node):
        return [producer[i] for i in node.input if i in producer]

    convs = {n.name for n in nodes
             if n.op_type == "Conv" and any(p.op_type in ("Sub", "ReduceMean") for p in sources(n))}
    adds = {n.name for n in nodes if n.op_type == "Add" and any(p.name in convs for p in sources(n))}
    return sorted(convs | adds)


def int8_model(model, photos, res, overflow_fix=OVERFLOW_FIX):
    """`overflow_fix`: an nncf.OverflowFix value; other than the default for experiments only
    (experiments/onnx_int8_scope.py --isa)."""
    import nncf
    from nncf.quantization.advanced_parameters import (AdvancedAccuracyRestorerParameters,
                                                       AdvancedQuantizationParameters, OverflowFix)
    nncf.set_log_level(logging.WARNING)  # NNCF logs every ignored node at INFO
    images = [x.astype(np.float32) for x in photos.calib(res)]
    validation = images  # all of them: a small split missed the photos int8 ruins
    return nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(images, lambda x: {INPUT: x}), nncf.Dataset(validation, lambda x: {INPUT: x}),
        _psnr_metric(model, validation), max_drop=PSNR_CAP - TARGET_PSNR_DB, drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(images), ignored_scope=nncf.IgnoredScope(names=lade_nodes(model), types=FLOAT_OPS, validate=False),
        # 7-bit weights: the same picture with or without VNNI (module docstring)
        advanced_quantization_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix)),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            ranking_subset_size=min(16, len(validation))))


def int8_weights(model) -> dict:
    """{node name: int8 weight array} for every Conv, ConvTranspose, MatMul and Gemm whose
    weight is quantized: a DequantizeLinear of an int8 initializer (NNCF's form), or of a
    QuantizeLinear of a float one (rounded here as ORT folds it)."""
    from onnx import TensorProto, numpy_helper
    initializers = {t.name: t for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}

    def array(name):
        return numpy_helper.to_array(initializers[name]) if name in initializers else None

    def quantized(name):
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        if dq.input[0] in initializers:
            t = initializers[dq.input[0]]
            return numpy_helper.to_array(t) if t.data_type == TensorProto.INT8 else None
        q = producer.get(dq.input[0])
        w = array(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        zero = array(q.input[2]) if w is not None and len(q.input) > 2 else None
        if w is None or zero is None or zero.dtype != np.int8:
            return None
        scale = array(q.input[1])
        axis = next((a.i for a in q.attribute if a.name == "axis"), 1)
        shape = [-1 if d == axis % w.ndim and scale.ndim else 1 for d in range(w.ndim)]
        return np.clip(np.rint(w / scale.reshape(shape)) + zero.reshape(shape), -128, 127).astype(np.int8)

    found = {}
    for node in model.graph.node:
        if node.op_type in GEMM_OPS:
            for name in node.input[:2]:
                q = quantized(name)
                if q is not None:
                    found[node.name] = q
    return found


def saturating_weights(model) -> list[str]:
    """The nodes whose int8 weights can saturate pmaddubsw's int16 pair sums on x86 without
    VNNI: those of int8_weights beyond +-WEIGHT_LEVELS_NO_VNNI, depthwise convs (one input and
    one output channel per group) excepted: MLAS's depthwise kernels multiply 16-bit words, no
    u8 x s8 pair sums. Empty for a file that gives the same output with or without VNNI."""
    op = {node.name: node for node in model.graph.node}
    found = []
    for name, q in int8_weights(model).items():
        group = next((a.i for a in op[name].attribute if a.name == "group"), 1)
        if op[name].op_type == "Conv" and group > 1 and q.shape[0] == group and q.shape[1] == 1:
            continue
        if int(np.abs(q.astype(np.int32)).max()) > WEIGHT_LEVELS_NO_VNNI:
            found.append(name)
    return found


def export(net, folder, stem, precisions, resolutions, photos) -> list[dict]:
    import onnx
    folder.mkdir(parents=True, exist_ok=True)
    fp32_path = folder / f"{stem}_fp32.onnx"
    fp32 = fp32_model(net, fp32_path)
    calib_res = reference_resolution(resolutions)
    files = []
    for precision in precisions:
        path = folder / f"{stem}_{precision}.onnx"
        if precision == "fp16":
            onnx.save(_fp16(fp32), str(path))
        elif precision == "int8":
            onnx.save(int8_model(fp32, photos, calib_res), str(path))
        tensor = {"layout": "NCHW", "dtype": "float32", "shape": [1, 3, "height", "width"]}
        files.append({"path": path, "precision": precision, "resolutions": list(resolutions),
                      "input": tensor | {"name": INPUT}, "output": tensor | {"name": OUTPUT},
                      "quantization": {"weights": "int8 per-channel symmetric, 7-bit range (|q| <= 64) except depthwise",
                                       "activations": "int8 (QDQ)",
                                       "method": f"NNCF PTQ with accuracy control (target {TARGET_PSNR_DB} dB) at {calib_res} px",
                                       "float_ops": FLOAT_OPS}
                      if precision == "int8" else {"weights": "fp16", "activations": "fp16"}
                      if precision == "fp16" else {}})
    if "fp32" not in precisions:
        fp32_path.unlink()
    return files
