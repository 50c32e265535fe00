"""A reference evaluator for Core ML ML Program files (.mlpackage), in numpy: coremltools'
Linux wheels cannot predict, so this runs a file's main function op by op to check it
against the torch network it was exported from.

The file is read with coremltools' own MIL loader (milproto -> pymil); the ops are this
module's numpy code, written from the MIL op definitions in coremltools
(converters/mil/mil/ops/defs). Every value whose declared dtype is fp16 is rounded to fp16
as it is stored (computed in float32): the fp16 and int8-weight files' storage precision,
not a device's exact arithmetic. An op or an attribute this module does not implement is an
`UnsupportedOp` error, never a guess.

    program = Program("w1.0_fp32.mlpackage")   # parse once
    y = program.run(x)                         # float32 NCHW in, float32 out
    y = evaluate(path, x)                      # the same, with the parse cached per file
"""
import functools
import os
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import MalformedModel, UserError, one_line


class UnsupportedOp(MalformedModel):
    """An op type, or an attribute of a known op, that the evaluator does not implement."""


def _unknown(op_type: str) -> UnsupportedOp:
    return UnsupportedOp(f"Core ML op {one_line(op_type, 80)!r} is not one the reference evaluator knows")


def _unsupported(op, what: str) -> UnsupportedOp:
    return UnsupportedOp(f"Core ML op {op.op_type!r} with {what} is not one the reference evaluator supports")


# --- ops: each takes (op, get) where get(name) is the value of the op's input `name`
# (None where an optional input is absent) and returns the output value(s).

def _conv_padding(op, get, spatial, kernel, strides, dilations):
    """[(before, after)] per spatial dim, as aggregated_pad in coremltools' ops/defs/_utils.py."""
    pad_type = str(get("pad_type"))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if pad_type == "valid":
        return [(0, 0)] * len(kernel)
    if pad_type == "custom":
        pad = [int(p) for p in get("pad")]
        return list(zip(pad[0::2], pad[1::2]))
    if pad_type in ("same", "same_lower"):
        totals = [max(0, s * -(-i // s) - i + k - s) for i, s, k in zip(spatial, strides, eff)]
        return [(t - t // 2, t // 2) if pad_type == "same_lower" else (t // 2, t - t // 2) for t in totals]
    raise _unsupported(op, f"pad_type {pad_type!r}")


def _windows(x, kernel, strides, dilations):
    """(N, C, OH, OW, KH, KW) strided view of the taps of a padded NCHW input."""
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = sliding_window_view(x, eff, axis=(2, 3))
    return view[:, :, ::strides[0], ::strides[1], ::dilations[0], ::dilations[1]]


def _im2col_conv(x, w, strides, dilations):
    """One copy of the taps as (N, C*KH*KW, OH*OW), then one BLAS matmul."""
    cols = _windows(x, w.shape[2:], strides, dilations)
    n, c, oh, ow, kh, kw = cols.shape
    cols = np.ascontiguousarray(cols.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c * kh * kw, oh * ow)
    return (w.reshape(w.shape[0], -1) @ cols).reshape(n, -1, oh, ow)


def _shifted_taps(x, w, dilations, combine):
    """Stride 1 without an im2col copy: the padded input is flattened per channel, so each
    tap reads one contiguous run of it; `combine(i, j, run)` is that tap's term, summed in
    place. Output rows are as wide as the padded input's: their last columns wrap into the
    next row and are cut off."""
    n, c, hp, wp = x.shape
    oh, ow = hp - (w.shape[2] - 1) * dilations[0], wp - (w.shape[3] - 1) * dilations[1]
    length = (oh - 1) * wp + ow
    flat = np.ascontiguousarray(x).reshape(n, c, hp * wp)
    y = np.zeros((n, w.shape[0], oh * wp), np.float32)
    acc = y[..., :length]
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            start = i * dilations[0] * wp + j * dilations[1]
            acc += combine(i, j, flat[..., start:start + length])
    return np.ascontiguousarray(y.reshape(n, -1, oh, wp)[..., :ow])


def _dense_conv(x, w, strides, dilations):
    if strides != [1, 1] or x.shape[1] < 8:  # few input channels: im2col's copy is cheaper
        return _im2col_conv(x, w, strides, dilations)
    return _shifted_taps(x, w, dilations, lambda i, j, run: w[:, :, i, j] @ run)


def _depthwise_conv(x, w, strides, dilations):
    if strides == [1, 1]:
        return _shifted_taps(x, w, dilations, lambda i, j, run: run * w[:, 0, i, j][None, :, None])
    cols = _windows(x, w.shape[2:], strides, dilations)
    y = np.zeros(cols.shape[:4], np.float32)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            y += cols[..., i, j] * w[:, 0, i, j][None, :, None, None]
    return y


def conv(op, get):
    x, w, bias = get("x"), get("weight"), get("bias")
    if x.ndim != 4:
        raise _unsupported(op, f"{x.ndim - 2}-D input")
    strides, dilations = [int(s) for s in get("strides")], [int(d) for d in get("dilations")]
    groups = int(get("groups"))
    pads = _conv_padding(op, get, x.shape[2:], w.shape[2:], strides, dilations)
    x = np.pad(x, [(0, 0), (0, 0)] + pads)
    c, o = x.shape[1], w.shape[0]
    if groups == 1:
        y = _dense_conv(x, w, strides, dilations)
    elif groups == c == o:
        y = _depthwise_conv(x, w, strides, dilations)
    else:
        cg, og = c // groups, o // groups
        y = np.concatenate([_dense_conv(x[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og], strides, dilations)
                            for g in range(groups)], axis=1)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)  # y is this op's own array
    return y


def pad(op, get):
    x, amounts, mode = get("x"), [int(p) for p in get("pad")], str(get("mode"))
    pairs = list(zip(amounts[0::2], amounts[1::2]))
    pairs = [(0, 0)] * (x.ndim - len(pairs)) + pairs
    if mode == "constant":
        return np.pad(x, pairs, constant_values=get("constant_val"))
    if mode not in ("reflect", "replicate"):
        raise _unsupported(op, f"mode {mode!r}")
    # Core ML reflects at most size-1 (numpy would reflect again past that)
    limit = 1 if mode == "reflect" else 0
    if any(max(p) > size - limit for p, size in zip(pairs, x.shape)):
        raise _unsupported(op, f"{mode} padding {amounts} wider than the input {list(x.shape)} allows")
    return np.pad(x, pairs, mode="reflect" if mode == "reflect" else "edge")


def _bilinear_axis(x, axis, out_size, align_corners):
    """Linear interpolation along one axis at the grid points of upsample_bilinear's doc."""
    size = x.shape[axis]
    i = np.arange(out_size, dtype=np.float64)
    if align_corners:
        src = i * ((size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(1)
    else:
        spacing = size / out_size
        src = i * spacing + 0.5 * spacing - 0.5
    src = np.clip(src, 0, size - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    shape = [1] * x.ndim
    shape[axis] = out_size
    frac = (src - lo).astype(np.float32).reshape(shape)
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    b -= a  # in place: a + (b - a) * frac without three more arrays of the output's size
    b *= frac
    b += a
    return b


def upsample_bilinear(op, get):
    x = get("x")
    align = bool(get("align_corners"))
    half = get("half_pixel_centers") if "half_pixel_centers" in op.inputs else None
    half = (not align) if half is None else bool(half)
    if half == align:  # (True, True) is invalid; (False, False) is TF's legacy grid, not implemented
        raise _unsupported(op, f"align_corners={align} and half_pixel_centers={half}")
    h = int(np.floor(float(get("scale_factor_height")) * x.shape[-2]))
    w = int(np.floor(float(get("scale_factor_width")) * x.shape[-1]))
    # the last axis first, while the array is smaller: gathering along it is the slow pass
    return _bilinear_axis(_bilinear_axis(x, x.ndim - 1, w, align), x.ndim - 2, h, align)


def leaky_relu(op, get):
    x, alpha = get("x"), float(get("alpha"))
    y = x * alpha
    return np.maximum(y, x, out=y) if 0 <= alpha <= 1 else np.where(x >= 0, x, y)


def concat(op, get):
    if bool(get("interleave")):
        raise _unsupported(op, "interleave=True")
    values = [np.reshape(v, (1,)) if np.ndim(v) == 0 else v for v in get("values")]  # scalars: length 1
    return np.concatenate(values, axis=int(get("axis")))


def slice_by_index(op, get):
    """numpy slicing, as solve_slice_by_index_slice in coremltools' ops/defs/_utils.py."""
    x = get("x")
    rank = x.ndim
    begin, end = [int(b) for b in get("begin")], [int(e) for e in get("end")]
    stride = get("stride")
    stride = [1] * rank if stride is None else [int(s) for s in stride]
    masks = {k: [False] * rank if get(k) is None else [bool(m) for m in get(k)]
             for k in ("begin_mask", "end_mask", "squeeze_mask")}
    slices = []
    for d in range(rank):
        if masks["squeeze_mask"][d]:  # a pure index at begin
            slices.append(begin[d])
            continue
        slices.append(slice(None if masks["begin_mask"][d] else begin[d],
                            None if masks["end_mask"][d] else end[d], stride[d]))
    return x[tuple(slices)]


def gather(op, get):
    if int(get("batch_dims")) != 0:
        raise _unsupported(op, "batch_dims != 0")
    return np.take(get("x"), get("indices").astype(np.int64), axis=int(get("axis")))


def shape(op, get):
    return np.array(get("x").shape, np.int32)


def cast(op, get):
    return get("x")  # the output's declared dtype (_store) does the conversion


def _param_like(param, x, axis):
    """A scale or zero point broadcast along `axis` of x (promote_rank_to_same_as_data)."""
    param = np.asarray(param)
    if param.ndim == 0 or param.ndim == x.ndim:
        return param
    shape = [1] * x.ndim
    shape[axis] = -1
    return param.reshape(shape)


def quantize(op, get):
    """clip(round(x / scale) + zero_point), rounding half to even as coremltools' own
    quantize_by_scale_and_zp; in place on one array."""
    x, axis = get("input"), get("axis")
    axis = None if axis is None else int(axis)
    info = np.iinfo(str(get("output_dtype")))
    q = x / _param_like(get("scale"), x, axis)
    np.around(q, out=q)
    zero = get("zero_point")
    if zero is not None:
        q += _param_like(zero, x, axis).astype(np.float32)
    return np.clip(q, info.min, info.max, out=q)


def dequantize(op, get):
    """scale * (x - zero_point)."""
    x, axis = get("input"), get("axis")
    axis = None if axis is None else int(axis)
    y = x.astype(np.float32)
    zero = get("zero_point")
    if zero is not None:
        y -= _param_like(zero, x, axis).astype(np.float32)
    y *= _param_like(get("scale"), x, axis)
    return y


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))  # no overflow for large |x|


def _binary(fn):
    return lambda op, get: fn(get("x"), get("y"))


def _unary(fn):
    return lambda op, get: fn(get("x"))


OPS = {
    "conv": conv, "pad": pad, "upsample_bilinear": upsample_bilinear, "leaky_relu": leaky_relu,
    "concat": concat, "slice_by_index": slice_by_index, "gather": gather, "shape": shape, "cast": cast,
    "quantize": quantize, "dequantize": dequantize,
    "add": _binary(np.add), "sub": _binary(np.subtract), "mul": _binary(np.multiply),
    "tanh": _unary(np.tanh), "sigmoid": _unary(_sigmoid),
}
# ops that only move values: their fp16 outputs need no rounding again
MOVES = {"pad", "concat", "slice_by_index", "gather", "shape"}
# compressed weights: decompressed once, at load, by coremltools' own materialized_val_inference
CONSTEXPR_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}


def _np_dtype(mil_dtype):
    from coremltools.converters.mil.mil import types
    return np.dtype(types.nptype_from_builtin(mil_dtype))


def _round_fp16(x: np.ndarray) -> np.ndarray:
    """float32 x rounded to the nearest fp16 value (ties to even), as float32: exactly
    x.astype(float16).astype(float32), in fewer passes. Adding and subtracting a power of two
    2^13 times x's magnitude (same sign) rounds x at its fp16 ulp; below fp16's normal range
    that ulp is fixed at 2^-24."""
    x = np.asarray(x, np.float32)
    if x.size < 4096:  # scalars and small consts: the plain way
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    magic = x.view(np.uint32) & np.uint32(0x7F800000)  # x's exponent
    np.maximum(magic, np.uint32(113 << 23), out=magic)  # 2^-14: fp16's smallest normal exponent
    magic += np.uint32(13 << 23)
    magic = np.copysign(magic.view(np.float32), x, out=magic.view(np.float32))
    y = x + magic
    y -= magic
    if not (-65504 <= y.min() and y.max() <= 65504):  # inf, nan or past fp16's range
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    return y


def _store(var, value, moved=False):
    """The value as its declared dtype: fp16 values are rounded to fp16 and kept as float32
    (`moved`: values of the same dtype, already rounded)."""
    if isinstance(value, str) or moved:
        return value
    dtype = _np_dtype(var.dtype)
    value = np.asarray(value)
    if dtype == np.float16:
        return _round_fp16(value)
    if np.issubdtype(dtype, np.integer) and np.issubdtype(value.dtype, np.floating):
        # float -> int as coremltools' cast value inference: numpy's astype (truncation);
        # quantize has already rounded and clipped to the type's range
        return value.astype(dtype)
    return value.astype(dtype, copy=False)


def _check_op_types(spec):
    fn = spec.mlProgram.functions["main"]
    for op in fn.block_specializations[fn.opset].operations:
        if op.type != "const" and op.type not in OPS and op.type not in CONSTEXPR_OPS:
            raise _unknown(op.type)


def _load(path: Path):
    """(spec, pymil main function) of an .mlpackage."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load
    try:
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
        spec = mlmodel.get_spec()
    except Exception as e:  # coremltools raises many kinds on a broken package
        raise MalformedModel(f"not a Core ML model package: {one_line(str(e))}") from None
    if spec.WhichOneof("Type") != "mlProgram" or "main" not in spec.mlProgram.functions:
        raise MalformedModel("not a Core ML ML Program with a main function")
    _check_op_types(spec)
    try:
        program = load(spec, spec.specificationVersion, mlmodel.weights_dir or "")
    except Exception as e:
        raise MalformedModel(f"its ML Program does not load: {one_line(str(e))}") from None
    return spec, program.functions["main"]


class Program:
    """An .mlpackage's main function, parsed once; `run` evaluates it in numpy."""

    def __init__(self, path):
        self.path = Path(path)
        spec, fn = _load(self.path)
        if len(fn.inputs) != 1 or len(fn.outputs) != 1:
            raise UnsupportedOp(f"the reference evaluator runs one input and one output; this model has "
                                f"{len(fn.inputs)} and {len(fn.outputs)}")
        (self.input_name, self.input_var), = fn.inputs.items()
        self.output_var = fn.outputs[0]
        self.shapes = _allowed_shapes(spec.description.input[0])
        self.consts, self.steps = {}, []
        for op in fn.operations:
            if op.op_type == "const":
                self.consts[op.outputs[0].name] = _store(op.outputs[0], op.outputs[0].val)
            elif op.op_type in CONSTEXPR_OPS:
                if len(op.outputs) != 1:
                    raise _unknown(op.op_type)
                self.consts[op.outputs[0].name] = _store(op.outputs[0], op.materialized_val_inference())
            else:
                self.steps.append(op)

    def run(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, np.float32)
        if self.shapes and tuple(image.shape) not in self.shapes:
            raise UserError(f"{self.path.name}: input shape {list(image.shape)} is not one of the model's "
                             f"{[list(s) for s in self.shapes]}")
        env = dict(self.consts)
        env[self.input_var.name] = _store(self.input_var, image)
        for op in self.steps:
            outputs = OPS[op.op_type](op, functools.partial(_input, op, env))
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            for var, value in zip(op.outputs, outputs):
                env[var.name] = _store(var, value, op.op_type in MOVES)
        return env[self.output_var.name].astype(np.float32)


def _input(op, env, name):
    """The value of input `name` of op: computed, a const, or None where an optional input is
    absent (coremltools fills default values in as const vars)."""
    var = op.inputs.get(name)
    if var is None:
        return None
    if isinstance(var, (list, tuple)):
        return [_value(v, env) for v in var]
    return _value(var, env)


def _value(var, env):
    if var.name in env:
        return env[var.name]
    if var.val is None:
        raise MalformedModel(f"Core ML value {var.name!r} is used before it is computed")
    return var.val


def _allowed_shapes(feature) -> list:
    """The enumerated input shapes (empty: no check, e.g. a shape range)."""
    t = feature.type.multiArrayType
    if t.enumeratedShapes.shapes:
        return [tuple(s.shape) for s in t.enumeratedShapes.shapes]
    if t.WhichOneof("ShapeFlexibility") is None and t.shape:
        return [tuple(t.shape)]
    return []


def _stamp(path: Path) -> tuple:
    """Size and modification time of every file of the package: a rewritten file parses again."""
    files = sorted(Path(root, n) for root, _, names in os.walk(path) for n in names) if path.is_dir() else [path]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@functools.lru_cache(maxsize=4)
def _cached(path: str, stamp: tuple) -> Program:
    return Program(path)


def evaluate(path, image: np.ndarray) -> np.ndarray:
    """The output of the .mlpackage at `path` on `image` (float32 NCHW), in numpy."""
    path = Path(path).resolve()
    if not path.exists():
        raise UserError(f"{path}: no such Core ML file")
    return _cached(str(path), _stamp(path)).run(image)
