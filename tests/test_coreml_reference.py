"""runtimes/coreml_reference.py: the numpy evaluator of Core ML ML Program files, op by op
against torch (tiny modules converted with coremltools), on MIL programs built directly
(quantize / dequantize, ops it does not know), and on the default's exported Core ML files."""
import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import BUNDLE_RES, BUNDLE_RES2

ct = pytest.importorskip("coremltools")

from animeedge.runtimes.coreml_reference import Program, UnsupportedOp, _round_fp16, evaluate  # noqa: E402
from animeedge.runtimes.errors import MalformedModel, UserError  # noqa: E402

SIZES = [(8, 8), (12, 16)]  # two enumerated shapes through one file, one not square


def convert(module, channels, precision="fp32", target=None, sizes=SIZES):
    traced = torch.jit.trace(module.eval(), torch.zeros(1, channels, *sizes[0]))
    shapes = ct.EnumeratedShapes(shapes=[(1, channels, *s) for s in sizes], default=(1, channels, *sizes[0]))
    with contextlib.redirect_stderr(io.StringIO()):  # coremltools' progress bars
        return ct.convert(traced, convert_to="mlprogram", minimum_deployment_target=target or ct.target.iOS16,
                          compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
                          inputs=[ct.TensorType(name="x", shape=shapes, dtype=np.float32)])


def op_types(mlmodel) -> set:
    fn = mlmodel.get_spec().mlProgram.functions["main"]
    return {op.type for op in fn.block_specializations[fn.opset].operations}


def saved(mlmodel, path):
    mlmodel.save(str(path))
    return path


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Crop(nn.Module):
    """The network's crop after its input pad: sizes read from the input's shape."""

    def forward(self, x):
        h, w = x.shape[-2:]
        y = F.pad(x, (2, 2, 2, 2), mode="reflect") * 2
        return y[..., 1:1 + h, 2:2 + w]


class InkLike(nn.Module):
    """The ink head's composite: tanh, sigmoid, a broadcast constant, sub / mul / add."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ink", torch.tensor([-0.5, -0.7, 0.2]).view(1, 3, 1, 1))

    def forward(self, x):
        fill = torch.tanh(x[:, :3])
        return fill + torch.sigmoid(x[:, 3:]) * (self.ink - fill)


def _conv(*args, **kwargs):
    with torch.random.fork_rng():  # seeded weights, the suite's random state left as it was
        torch.manual_seed(0)
        return nn.Conv2d(*args, **kwargs)


# (name, module, input channels, op types the converted file must hold)
CASES = [
    ("conv 3x3, shifted taps", _conv(8, 6, 3, padding=1), 8, {"conv"}),
    ("conv 5x5, im2col", _conv(3, 4, 5, padding=2), 3, {"conv"}),
    ("conv stride 2, dilation 2", _conv(4, 5, 3, stride=2, padding=2, dilation=2), 4, {"conv"}),
    ("conv groups 2", _conv(4, 6, 3, padding=1, groups=2), 4, {"conv"}),
    ("depthwise", _conv(8, 8, 3, padding=1, groups=8), 8, {"conv"}),
    ("depthwise stride 2", _conv(8, 8, 3, stride=2, padding=1, groups=8), 8, {"conv"}),
    ("pointwise stride 2", _conv(8, 3, 1, stride=2), 8, {"conv"}),
    ("conv reflect", _conv(4, 4, 3, padding=1, padding_mode="reflect"), 4, {"pad", "conv"}),
    ("pads", Lambda(lambda x: torch.cat([F.pad(x, (2, 1, 1, 2), mode="reflect"),
                                         F.pad(x, (2, 1, 1, 2), mode="replicate"),
                                         F.pad(x, (2, 1, 1, 2), value=0.5)], 1)), 3, {"pad", "concat"}),
    ("leaky_relu", nn.LeakyReLU(0.2), 3, {"leaky_relu"}),
    ("bilinear x2", Lambda(lambda x: F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)), 3,
     {"upsample_bilinear"}),
    ("bilinear x2 align corners", Lambda(lambda x: F.interpolate(x, scale_factor=2.0, mode="bilinear",
                                                                 align_corners=True)), 3, {"upsample_bilinear"}),
    ("slices and concat", Lambda(lambda x: torch.cat([x[:, 1:3], x[:, :2] * 2], 1)[..., 1:-1, 2:]), 4,
     {"slice_by_index", "concat"}),
    ("crop by shape", Crop(), 3, {"shape", "gather", "slice_by_index"}),
    ("ink composite", InkLike(), 4, {"tanh", "sigmoid", "sub", "mul", "add"}),
]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name, module, channels, ops", CASES, ids=[c[0] for c in CASES])
def test_each_op_matches_torch_at_each_enumerated_size(tmp_path, name, module, channels, ops, precision):
    mlmodel = convert(module, channels, precision)
    assert ops <= op_types(mlmodel)
    program = Program(saved(mlmodel, tmp_path / "m.mlpackage"))
    rng = np.random.default_rng(0)
    for size in SIZES:
        x = rng.standard_normal((1, channels, *size)).astype(np.float32)
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        y = program.run(x)
        assert y.shape == ref.shape and y.dtype == np.float32
        if precision == "fp32":
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
        else:  # every stored value is fp16: a few fp16 ulps of the output's magnitude
            np.testing.assert_allclose(y, ref, rtol=4e-3, atol=4e-3 * max(1.0, np.abs(ref).max()))
            assert np.array_equal(y, y.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
def test_int8_weights_decompress_as_symmetric_per_channel(tmp_path, target):
    """constexpr_affine_dequantize (iOS16) and constexpr_blockwise_shift_scale (iOS18):
    the conv runs with weights rounded to 255 levels per output channel."""
    import coremltools.optimize as cto
    module = _conv(8, 6, 3, padding=1)
    config = cto.coreml.OptimizationConfig(global_config=cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", weight_threshold=0))
    with contextlib.redirect_stderr(io.StringIO()):
        mlmodel = cto.coreml.linear_quantize_weights(convert(module, 8, "fp16", getattr(ct.target, target)), config)
    assert op_types(mlmodel) & {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}
    # as coremltools quantizes the fp16 program's weights: in fp16, scale = 2 max|w| / 254
    w = module.weight.detach().numpy().astype(np.float16)
    scale = np.abs(w).max(axis=(1, 2, 3), keepdims=True) * np.float16(2) / np.float16(254)
    quantized = nn.Conv2d(8, 6, 3, padding=1)
    weight = torch.from_numpy((np.round(w / scale) * scale).astype(np.float32))
    quantized.load_state_dict({"weight": weight, "bias": module.bias.detach()})
    x = np.random.default_rng(1).standard_normal((1, 8, 12, 16)).astype(np.float32)
    with torch.no_grad():
        ref, unquantized = (m(torch.from_numpy(x)).numpy() for m in (quantized, module))
    y = evaluate(saved(mlmodel, tmp_path / "int8.mlpackage"), x)
    error = np.abs(y - ref).max()
    assert error <= 2e-3 * np.abs(ref).max()
    assert error * 3 < np.abs(y - unquantized).max()  # the int8 rounding is what it reproduces


def _mil_model(build, target="iOS17", shape=(1, 3, 4, 5)):
    from coremltools.converters.mil import Builder as mb
    prog = mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=getattr(ct.target, target))(build)
    with contextlib.redirect_stderr(io.StringIO()):
        return ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, target),
                          compute_precision=ct.precision.FLOAT32)


def test_quantize_and_dequantize_per_tensor_and_per_channel(tmp_path):
    from coremltools.converters.mil import Builder as mb
    scale, zero = np.float32(0.05), np.int8(3)
    channel_scale, channel_zero = np.array([0.02, 0.1, 0.3], np.float32), np.array([0, 128, 255], np.uint8)

    def build(x):
        per_tensor = mb.dequantize(input=mb.quantize(input=x, scale=scale, zero_point=zero, output_dtype="int8"),
                                   scale=scale, zero_point=zero)
        q = mb.quantize(input=x, scale=channel_scale, zero_point=channel_zero, axis=1, output_dtype="uint8")
        per_channel = mb.dequantize(input=q, scale=channel_scale, zero_point=channel_zero, axis=1)
        return mb.concat(values=[mb.add(x=per_tensor, y=x), per_channel], axis=1)

    mlmodel = _mil_model(build)
    assert {"quantize", "dequantize"} <= op_types(mlmodel)
    x = (np.random.default_rng(2).standard_normal((1, 3, 4, 5)) * 20).astype(np.float32)
    s, z = channel_scale.reshape(1, 3, 1, 1), channel_zero.reshape(1, 3, 1, 1).astype(np.float32)
    per_tensor = (np.clip(np.round(x / scale) + 3, -128, 127) - 3) * scale
    per_channel = (np.clip(np.round(x / s) + z, 0, 255) - z) * s
    y = evaluate(saved(mlmodel, tmp_path / "w8a8.mlpackage"), x)
    np.testing.assert_allclose(y, np.concatenate([per_tensor + x, per_channel], 1), rtol=1e-6, atol=1e-6)


def test_an_op_it_does_not_know_is_one_line_naming_it(tmp_path):
    from coremltools.converters.mil import Builder as mb
    path = saved(_mil_model(lambda x: mb.relu(x=x)), tmp_path / "relu.mlpackage")
    with pytest.raises(UnsupportedOp) as e:
        evaluate(path, np.zeros((1, 3, 4, 5), np.float32))
    assert isinstance(e.value, MalformedModel)
    assert str(e.value) == "Core ML op 'relu' is not one the reference evaluator knows"


def test_an_attribute_it_does_not_implement_is_refused_not_guessed(tmp_path):
    from coremltools.converters.mil import Builder as mb
    mlmodel = _mil_model(lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2,
                                                        align_corners=False, half_pixel_centers=False), "iOS16")
    with pytest.raises(UnsupportedOp, match="^Core ML op 'upsample_bilinear' with align_corners=False and "
                                            "half_pixel_centers=False is not one"):
        evaluate(saved(mlmodel, tmp_path / "legacy.mlpackage"), np.zeros((1, 3, 4, 5), np.float32))


def test_a_shape_the_file_does_not_enumerate_is_refused(tmp_path):
    path = saved(convert(nn.LeakyReLU(0.2), 3), tmp_path / "m.mlpackage")
    with pytest.raises(UserError, match=r"input shape \[1, 3, 10, 10\] is not one of"):
        evaluate(path, np.zeros((1, 3, 10, 10), np.float32))


def test_a_file_rewritten_at_the_same_path_is_read_again(tmp_path):
    path = tmp_path / "m.mlpackage"
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    for slope in (0.2, 0.5):
        shutil.rmtree(path, ignore_errors=True)
        saved(convert(nn.LeakyReLU(slope), 3), path)
        np.testing.assert_allclose(evaluate(path, x), F.leaky_relu(torch.from_numpy(x), slope).numpy(), atol=1e-6)


def test_fp16_rounding_is_numpy_s_cast_exactly():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(200_000) * 10.0 ** rng.integers(-12, 6, 200_000)
    halves = rng.standard_normal(20_000).astype(np.float16)
    ties = halves.astype(np.float32) + np.spacing(halves).astype(np.float32) / 2  # halfway: to even
    for values in (np.concatenate([x, ties]), np.concatenate([x, [np.inf, -np.nan, 65519.0, 65520.0, -1e6]])):
        values = values.astype(np.float32)
        with np.errstate(over="ignore"):
            expected = values.astype(np.float16).astype(np.float32)
        assert np.array_equal(_round_fp16(values), expected, equal_nan=True)


def test_the_defaults_coreml_files_match_the_torch_network(bundle):
    """The bundle's Core ML files at both widths and resolutions, on its evaluation photos as
    the exporter measures the other formats: fp32 to float rounding, int8 weights to 40 dB,
    int8 activations (W8A8) to the fidelity the exporter asks of any precision."""
    from animeedge.calibration.data import CalibrationSet
    from animeedge.compress.export import MIN_PSNR_DB, fidelity
    from animeedge.generator.checkpoint import load_generator
    from animeedge.generator.slicing import sliced_copy
    out, model_path = bundle
    manifest = json.loads((out / "manifest.json").read_text())
    photos, model = CalibrationSet(manifest["calibration"]["source"]), load_generator(model_path)
    artifacts = [a for a in manifest["artifacts"] if a["format"] == "coreml"]
    assert {a["precision"] for a in artifacts} == {"fp32", "int8"}
    assert {a["resolution"] for a in artifacts} == {BUNDLE_RES, BUNDLE_RES2}
    for a in artifacts:
        net, images = sliced_copy(model, a["width"]), photos.eval(a["resolution"])
        with torch.no_grad():
            references = [net(torch.from_numpy(x)).numpy() for x in images]
        psnr = fidelity([evaluate(out / a["file"], x) for x in images], references)["psnr_db"]
        floor = 100 if a["precision"] == "fp32" else MIN_PSNR_DB if "quantize" in a["coreml"]["ops"] else 40
        assert psnr >= floor, (a["file"], a["resolution"], psnr)
