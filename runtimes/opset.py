"""What a bundle may run: only the operators this project's exporter produces, per format,
checked from the file's bytes before any runtime is handed the file. A graph can otherwise
loop forever (ONNX Loop), allocate without bound (ConstantOfShape, Expand), call a custom
op, or read weights from a file the manifest does not hash (ONNX external data).

ONNX and TFLite files are read with a small reader of their wire format each (protobuf,
flatbuffers): the base install has no ONNX schema (only the export extra brings `onnx`), and
a phone runs tflite-runtime, which brings neither a TFLite schema nor the flatbuffers
package. tests/test_bundle_ops.py checks both readers against `onnx` and LiteRT's schema.
Core ML specs are read with coremltools, which running Core ML needs anyway.

The bytes are untrusted: both readers check every offset, length and count against the file
and end any malformed input in their own MalformedModel, with a short reason
(tests/test_reader_mutations.py feeds them mutated files).
"""
import contextlib
import struct
from pathlib import Path

from .errors import MalformedModel, UserError, one_line
from .manifest import os_errors

# Made by exporting (fp32, fp16, int8, int8w; every width) the embedded default, its teacher form
# (`export --teacher-form`) and tiny generators with the other configs the exporter takes
# (norm instance/none/affine, nearest upsampling, reflect/input padding, the ink head), and listing every
# node; tests/test_bundle_ops.py checks that every file of the test bundles passes.
ONNX_OPS = {"": frozenset({
    "Add", "Cast", "Concat", "Conv", "DequantizeLinear", "Div", "Gather", "InstanceNormalization", "LeakyRelu", "Mod",
    "Mul", "Neg", "Pad", "QuantizeLinear", "ReduceMean", "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Sqrt", "Sub",
    "Tanh", "Transpose", "Unsqueeze"})}
# TFLite builtin operator codes (the tflite schema's BuiltinOperator), made the same way.
TFLITE_OPS = {0: "ADD", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 14: "LOGISTIC",
              18: "MUL", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 28: "TANH", 34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB",
              65: "SLICE", 75: "SQRT", 76: "RSQRT", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU", 114: "QUANTIZE"}
# Core ML mlprogram op types, made the same way.
COREML_OPS = frozenset({
    "add", "cast", "concat", "const", "constexpr_affine_dequantize", "conv", "dequantize", "gather", "instance_norm",
    "leaky_relu", "mul", "pad", "quantize", "reduce_mean", "rsqrt", "shape", "sigmoid", "slice_by_index", "sqrt", "sub",
    "tanh", "upsample_bilinear", "upsample_nearest_neighbor"})

LABELS = {"onnx": "ONNX", "tflite": "TFLite", "coreml": "Core ML"}
MAX_GRAPH_DEPTH = 8  # subgraphs inside subgraphs (none are allowed ops, but the walk must end)


def _refused(path, what: str):
    return UserError(f"{Path(path).name}: {what}; refused")


# ---- ONNX: protobuf wire format (field numbers from onnx.proto) ----------------------------

def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise MalformedModel("varint longer than 10 bytes")
    raise MalformedModel("truncated varint")


def _span(value) -> tuple[int, int]:
    if not isinstance(value, tuple):
        raise MalformedModel("a number where a message or a name belongs")
    return value


def _fields(buf, span):
    """(field number, value) of the message at `span`: an int for varints, a (start, end)
    span for length-delimited fields, None for fixed-size ones."""
    pos, end = _span(span)
    while pos < end:
        key, pos = _varint(buf, pos, end)
        wire, value = key & 7, None
        if key >> 3 == 0:
            raise MalformedModel("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + size), pos + size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise MalformedModel(f"wire type {wire}")
        if pos > end:
            raise MalformedModel("truncated message")
        yield key >> 3, value


def _text(buf, span) -> str:
    start, end = _span(span)
    try:
        return bytes(buf[start:end]).decode()
    except UnicodeDecodeError:
        raise MalformedModel("a name is not UTF-8") from None


class _OnnxWalk:
    """Collects the (domain, op type) of every node in the order met, subgraphs included
    (`ops`, a dict used as an ordered set), and whether any tensor keeps its data outside
    the file."""
    MODEL_GRAPH, MODEL_OPSET, MODEL_TRAINING, MODEL_FUNCTIONS = 7, 8, 20, 25
    GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_SPARSE = 1, 5, 15
    NODE_OP_TYPE, NODE_ATTRIBUTE, NODE_DOMAIN = 4, 5, 7
    ATTR_TENSOR, ATTR_GRAPH, ATTR_TENSORS, ATTR_GRAPHS, ATTR_SPARSE, ATTR_SPARSES = 5, 6, 10, 11, 22, 23
    SPARSE_VALUES, SPARSE_INDICES = 1, 2
    TENSOR_EXTERNAL, TENSOR_LOCATION = 13, 14

    def __init__(self, buf):
        self.buf, self.ops, self.domains, self.external, self.extra = buf, {}, set(), False, None

    def model(self):
        for field, value in _fields(self.buf, (0, len(self.buf))):
            if field == self.MODEL_GRAPH:
                self.graph(value, 0)
            elif field == self.MODEL_OPSET:
                self.domains.add(next((_text(self.buf, v) for f, v in _fields(self.buf, value) if f == 1), ""))
            elif field in (self.MODEL_TRAINING, self.MODEL_FUNCTIONS):
                self.extra = "training info" if field == self.MODEL_TRAINING else "model-local functions"

    def graph(self, span, depth):
        if depth > MAX_GRAPH_DEPTH:
            raise MalformedModel("subgraphs nested too deep")
        for field, value in _fields(self.buf, span):
            if field == self.GRAPH_NODE:
                self.node(value, depth)
            elif field == self.GRAPH_INITIALIZER:
                self.tensor(value)
            elif field == self.GRAPH_SPARSE:
                self.sparse(value)

    def node(self, span, depth):
        op, domain, attributes = "", "", []
        for field, value in _fields(self.buf, span):
            if field == self.NODE_OP_TYPE:
                op = _text(self.buf, value)
            elif field == self.NODE_DOMAIN:
                domain = _text(self.buf, value)
            elif field == self.NODE_ATTRIBUTE:
                attributes.append(value)
        self.ops.setdefault((domain, op))  # a node before the nodes of its subgraphs
        for span in attributes:
            self.attribute(span, depth)

    def attribute(self, span, depth):
        for field, value in _fields(self.buf, span):
            if field in (self.ATTR_TENSOR, self.ATTR_TENSORS):
                self.tensor(value)
            elif field in (self.ATTR_GRAPH, self.ATTR_GRAPHS):
                self.graph(value, depth + 1)
            elif field in (self.ATTR_SPARSE, self.ATTR_SPARSES):
                self.sparse(value)

    def sparse(self, span):
        for field, value in _fields(self.buf, span):
            if field in (self.SPARSE_VALUES, self.SPARSE_INDICES):
                self.tensor(value)

    def tensor(self, span):
        for field, value in _fields(self.buf, span):
            if field == self.TENSOR_EXTERNAL or (field == self.TENSOR_LOCATION and value == 1):
                self.external = True


def onnx_contents(data: bytes) -> _OnnxWalk:
    """The walk of a whole ONNX file; a MalformedModel where its bytes break the format."""
    walk = _OnnxWalk(memoryview(data))
    walk.model()
    return walk


def check_onnx(path, data: bytes):
    walk = onnx_contents(data)
    if walk.external:
        raise _refused(path, "keeps weights in external data (a file the manifest does not hash)")
    if walk.extra:
        raise _refused(path, f"holds {walk.extra}, which the exporter never writes")
    refused = [(domain, op) for domain, op in walk.ops if op not in ONNX_OPS.get(_standard(domain), ())]
    if refused:
        domain, op = refused[0]
        raise _refused(path, f"op {one_line(op)}{f' (domain {one_line(domain)})' if domain else ''} "
                             "is not one the exporter produces")
    foreign = sorted({_standard(d) for d in walk.domains} - set(ONNX_OPS))
    if foreign:
        raise _refused(path, f"imports the operator set {one_line(foreign[0])}, which the exporter never uses")


def _standard(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain  # two names of the standard operator set


# ---- TFLite: flatbuffers (tflite schema: Model.operator_codes, OperatorCode) --------------

CUSTOM = 32  # BuiltinOperator.CUSTOM


def _read(buf, fmt: str, pos: int):
    if pos < 0 or pos + struct.calcsize(fmt) > len(buf):
        raise MalformedModel("offset outside the file")
    return struct.unpack_from(fmt, buf, pos)[0]


def _field(buf, table: int, index: int):
    """Where field `index` of the table at `table` sits, or None where it is absent."""
    vtable = table - _read(buf, "<i", table)
    slot = 4 + 2 * index
    if slot >= _read(buf, "<H", vtable):
        return None
    offset = _read(buf, "<H", vtable + slot)
    return table + offset if offset else None


def _tables(buf, at: int):
    """The tables of the vector of tables at `at`, one at a time."""
    vector = at + _read(buf, "<I", at)
    count = _read(buf, "<I", vector)
    if vector + 4 + 4 * count > len(buf):
        raise MalformedModel("vector longer than the file")
    return (e + _read(buf, "<I", e) for e in range(vector + 4, vector + 4 + 4 * count, 4))


def tflite_op_codes(data: bytes) -> list[int]:
    """Each OperatorCode's builtin code as the interpreter reads it: the larger of
    builtin_code and deprecated_builtin_code. A MalformedModel where the bytes break the
    format."""
    codes_at = _field(data, _read(data, "<I", 0), 1)  # Model.operator_codes
    codes = []
    for table in _tables(data, codes_at) if codes_at is not None else []:
        deprecated, builtin = _field(data, table, 0), _field(data, table, 3)
        codes.append(max(_read(data, "<b", deprecated) if deprecated is not None else 0,
                         _read(data, "<i", builtin) if builtin is not None else 0))
    return codes


def check_tflite(path, data: bytes):
    for code in tflite_op_codes(data):
        if code == CUSTOM:
            raise _refused(path, "has a custom op")
        if code not in TFLITE_OPS:
            raise _refused(path, f"op {_tflite_name(code)} is not one the exporter produces")


def _tflite_name(code: int) -> str:
    try:
        from ai_edge_litert.schema_py_generated import BuiltinOperator
    except ImportError:
        return f"code {code}"
    return next((k for k, v in vars(BuiltinOperator).items() if v == code), f"code {code}")


# ---- Core ML: the mlprogram spec, through coremltools ---------------------------------------

def coreml_ops(path) -> set[str]:
    import coremltools as ct
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise _refused(path, f"is a Core ML {spec.WhichOneof('Type')}, not the ML program the exporter writes")
    ops, blocks = set(), [b for f in spec.mlProgram.functions.values() for b in f.block_specializations.values()]
    while blocks:
        for op in blocks.pop().operations:
            ops.add(op.type)
            blocks.extend(op.blocks)
    return ops


def check_coreml(path):
    refused = sorted(coreml_ops(path) - COREML_OPS)
    if refused:
        raise _refused(path, f"op {one_line(refused[0])} is not one the exporter produces")


_OWN_FILES: set[Path] = set()


@contextlib.contextmanager
def own_file(path):
    """Within the block, `path` is a file this process made itself (the bench's AnimeGANv2
    peer, converted here from its code), so the bundle allowlist does not apply to it."""
    own = Path(path).resolve()
    _OWN_FILES.add(own)
    try:
        yield
    finally:
        _OWN_FILES.discard(own)


def check_ops(path, fmt: str):
    """A one-line UserError unless every operator of the file is one the exporter produces
    (and an ONNX file keeps all its data inside). Runs before any runtime sees the file."""
    if Path(path).resolve() in _OWN_FILES:
        return
    with os_errors(path):
        if fmt == "coreml":
            return _coreml_checked(path)
        try:
            (check_onnx if fmt == "onnx" else check_tflite)(path, Path(path).read_bytes())
        except MalformedModel as exc:
            raise UserError(f"{Path(path).name}: not a valid {LABELS[fmt]} model ({exc})") from None


def _coreml_checked(path):
    """check_coreml, with whatever coremltools raises on a broken package as one line."""
    try:
        check_coreml(path)
    except (UserError, OSError):
        raise
    except Exception as exc:
        raise UserError(f"{Path(path).name}: not a valid Core ML model (its operators cannot be read: "
                        f"{type(exc).__name__})") from None
