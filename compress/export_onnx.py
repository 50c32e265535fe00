"""ONNX export: one file per width and precision, dynamic height and width, opset 17,
simplified with onnxslim. NCHW float32 in and out for every precision.

- fp32: the TorchScript exporter traced at a size that is not a multiple of the stride, so
  the reflect padding to the stride stays a computed (dynamic) step in the graph.
- fp16: weights and activations in fp16, float32 at the edges (ORT's float16 converter).
- int8: NNCF post-training quantization (QDQ, per-channel weights) on calibration photos,
  with LADE's statistics arithmetic (ReduceMean, Sqrt, Div, ...) kept in float: int8 there
  cost several dB (README, "Export").
"""
import numpy as np
import torch

INPUT, OUTPUT = "image", "stylized"
TRACE_SIZE = (1, 3, 254, 250)  # not a multiple of 4: keeps the padding computed, not folded
OPSET = 17
FLOAT_OPS = ["ReduceMean", "Sqrt", "Sub", "Div", "Mul"]


def _fp32(net, path):
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


def _int8(model, photos, res):
    import nncf
    images = [x.astype(np.float32) for x in photos.calib(res)]
    dataset = nncf.Dataset(images, lambda x: {INPUT: x})
    return nncf.quantize(model, dataset, subset_size=len(images),
                         ignored_scope=nncf.IgnoredScope(types=FLOAT_OPS))


def export(net, folder, stem, precisions, resolutions, photos) -> list[dict]:
    import onnx
    folder.mkdir(parents=True, exist_ok=True)
    fp32_path = folder / f"{stem}_fp32.onnx"
    fp32 = _fp32(net, fp32_path)
    calib_res = 256 if 256 in resolutions else resolutions[len(resolutions) // 2]
    files = []
    for precision in precisions:
        path = folder / f"{stem}_{precision}.onnx"
        if precision == "fp16":
            onnx.save(_fp16(fp32), str(path))
        elif precision == "int8":
            onnx.save(_int8(fp32, photos, calib_res), str(path))
        tensor = {"layout": "NCHW", "dtype": "float32", "shape": [1, 3, "height", "width"]}
        files.append({"path": path, "precision": precision, "resolutions": list(resolutions),
                      "input": tensor | {"name": INPUT}, "output": tensor | {"name": OUTPUT},
                      "quantization": {"weights": "int8 per-channel symmetric", "activations": "int8 (QDQ)",
                                       "method": f"NNCF PTQ at {calib_res} px", "float_ops": FLOAT_OPS}
                      if precision == "int8" else {"weights": "fp16", "activations": "fp16"}
                      if precision == "fp16" else {}})
    if "fp32" not in precisions:
        fp32_path.unlink()
    return files
