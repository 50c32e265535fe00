"""TFLite (LiteRT) export with litert-torch, no TensorFlow: one file per width, precision and
resolution (LiteRT input shapes are static), NHWC float input/output (int8: int8 input and output).

- Reflect padding is rebuilt from slices and a concatenation before tracing: LiteRT's
  MIRROR_PAD is not an XNNPACK op and split the graph into 12 pieces (3-4x slower); the
  slices compute exactly the same values and keep one XNNPACK partition.
- fp16: fp16 weights (full_fp16_recipe); compute stays fp32 on CPUs.
- int8: PT2E with litert-torch's quantizer (per-channel symmetric weights, int8
  activations, adds included: `int8_quantizer`) calibrated on the calibration photos
  (`pt2e_int8`, which the Core ML int8 file shares); it scored 33.8 dB against 32.7-33.4 dB
  for NNCF's quantize_pt2e with the same quantizer and 31.2 dB for ai-edge-quantizer's
  static recipe (README, "Export"). LADE layers stay in float: quantized, a
  quiet channel's variance rounds away (README, "Benchmark").
"""
import contextlib
import copy
import io

import torch
import torch.nn as nn

from animeedge.generator.network import InputPad, reflect_by_slices
from animeedge.generator.norm import LADE


class SlicePad(nn.Module):
    """Reflect padding by slicing: `pad` is p for all sides or (left, right, top, bottom)."""

    def __init__(self, pad):
        super().__init__()
        self.pads = tuple(pad) if isinstance(pad, (tuple, list)) else (pad,) * 4

    def forward(self, x):
        return reflect_by_slices(x, *self.pads)


def without_mirror_pad(net: nn.Module) -> nn.Module:
    """Replace reflect padding (reflect-padded convs with symmetric padding, ReflectionPad2d
    modules, the student's InputPad) by slices, in place."""
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.padding_mode == "reflect":
                p = child.padding[0]
                conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, 0,
                                 groups=child.groups, bias=child.bias is not None)
                conv.load_state_dict(child.state_dict())
                setattr(parent, name, nn.Sequential(SlicePad(p), conv))
            elif isinstance(child, nn.ReflectionPad2d):
                setattr(parent, name, SlicePad(child.padding))
            elif isinstance(child, InputPad):
                child.slices = True
    return net


def _nhwc(net, res):
    import litert_torch
    channel_last = litert_torch.to_channel_last_io(net, args=[0], outputs=[0]).eval()
    return channel_last, torch.zeros(1, res, res, 3)


def module_type_name(kind: type) -> str:
    """How torch.export names a module type in a node's nn_module_stack (a string, so a class
    given to the quantizer's set_module_type never matches)."""
    return f"{kind.__module__}.{kind.__qualname__}"


def int8_quantizer(float_modules=()):
    """litert-torch's PT2E quantizer (per-channel symmetric int8 weights, int8 activations) with
    the modules of `float_modules` kept in float. The quantizer finds adds by the Python function
    that made them, which torch.export no longer records: every add stayed float, between a
    dequantize and a quantize (at full resolution in the photo path). Adds are also annotated
    here by their aten op, as the quantizer would have."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec, get_output_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation
    floats = {module_type_name(kind) for kind in float_modules}

    class Quantizer(PT2EQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            config = self.global_config
            for node in model.graph.nodes:
                stack = {kind for _, kind in (node.meta.get("nn_module_stack") or {}).values()}
                if (node.target != torch.ops.aten.add.Tensor or "quantization_annotation" in node.meta
                        or stack & floats):
                    continue
                inputs = {a: get_input_act_qspec(config) for a in node.args if isinstance(a, torch.fx.Node)}
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map=inputs, output_qspec=get_output_act_qspec(config), _annotated=True)
            return model

    quantizer = Quantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    for kind in floats:
        quantizer = quantizer.set_module_type(kind, None)
    return quantizer


def pt2e_int8(model, sample, inputs, float_modules=(LADE,), dynamic_shapes=None, fold_quantize=False):
    """Static int8 by PT2E (`int8_quantizer`), calibrated on the tensors `inputs`: (the converted
    graph, the quantizer)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    quantizer = int8_quantizer(float_modules)
    graph = prepare_pt2e(torch.export.export(model, (sample,), dynamic_shapes=dynamic_shapes).module(), quantizer)
    with torch.no_grad():
        for x in inputs:
            graph(x)
    return move_exported_model_to_eval(convert_pt2e(graph, fold_quantize=fold_quantize)), quantizer


def int8_model(net, res, photos, float_modules=(LADE,)):
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig
    model, sample = _nhwc(net, res)
    nhwc = (torch.from_numpy(x).permute(0, 2, 3, 1).contiguous() for x in photos.calib(res))
    graph, quantizer = pt2e_int8(model, sample, nhwc, float_modules)  # not folded: folded int8 fails to lower
    return litert_torch.convert(graph, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))


def convert(net, res, precision, photos):
    import litert_torch
    if precision == "int8":
        return int8_model(net, res, photos)
    model, sample = _nhwc(net, res)
    if precision == "fp16":
        from litert_torch.generative.quantize import quant_recipes
        return litert_torch.convert(model, (sample,), quant_config=quant_recipes.full_fp16_recipe())
    return litert_torch.convert(model, (sample,))


def _io(path):
    from animeedge.runtimes.backends import describe_file
    described = describe_file(path, "tflite")
    return described["input"], described["output"]


def export(net, folder, stem, precisions, resolutions, photos) -> list[dict]:
    import litert_torch  # noqa: F401  (ImportError here: the bundle goes on without TFLite)
    folder.mkdir(parents=True, exist_ok=True)
    net = without_mirror_pad(copy.deepcopy(net)).eval()
    files = []
    for precision in precisions:
        for res in resolutions:
            path = folder / f"{stem}_r{res}_{precision}.tflite"
            with contextlib.redirect_stdout(io.StringIO()):  # the quantizer prints a summary per file
                model = convert(net, res, precision, photos)
            model.export(str(path))
            inp, out = _io(path)
            files.append({"path": path, "precision": precision, "resolutions": [res], "input": inp, "output": out,
                          "quantization": {"weights": "int8 per-channel symmetric", "activations": "int8",
                                           "method": "PT2E (litert-torch quantizer)"} if precision == "int8"
                          else {"weights": "fp16"} if precision == "fp16" else {}})
    return files
