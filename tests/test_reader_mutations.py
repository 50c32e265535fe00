"""The readers of untrusted bytes (runtimes/opset.py's ONNX and TFLite readers, the bundle
manifest loader) end every malformed input in their own one-line UserError, quickly. The
fast tests hold a few crafted files; the slow ones feed each reader thousands of seeded
mutants of valid files (bit flips, interesting bytes, truncation, inserted, deleted and
duplicated chunks, varint and offset values) and fails on any other exception that escapes
or any input that takes over 50 ms."""
import json
import math
import random
import struct
import time
from collections import Counter
from importlib.resources import files

import pytest

from animeedge.runtimes import opset
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.manifest import MANIFEST, load_manifest

MAX_SECONDS = 0.05


# ---- crafted inputs: each breaks the format in one named way -------------------------------

def _key(field, wire):
    return bytes([field << 3 | wire])


def _message(field, payload: bytes) -> bytes:
    assert len(payload) < 0x80
    return _key(field, 2) + bytes([len(payload)]) + payload


def _onnx_with_op(op: bytes) -> bytes:  # ModelProto.graph.node.op_type
    return _message(7, _message(1, _message(4, op)))


@pytest.mark.parametrize("data, reason", [pytest.param(data, reason, id=reason) for data, reason in [
    (b"\x08\x80\x80", "truncated varint"),
    (b"\x08" + b"\xff" * 12, "varint longer than 10 bytes"),
    (_key(7, 2) + b"\x7f" + b"\x00" * 4, "truncated message"),  # a graph of 127 bytes in a file of 6
    (_onnx_with_op(b"Add\xff"), "a name is not UTF-8"),
    (_key(7, 0) + b"\x05", "a number where a message"),  # the graph as a varint
    (_key(1, 3), "wire type 3"),
    (_message(7, b"\x00\x00"), "field number 0"),
]])
def test_malformed_onnx_is_the_reader_s_own_error(tmp_path, data, reason):
    _refused_by_reader_and_check(tmp_path, data, reason, opset.onnx_contents, "onnx")


def test_an_op_name_with_a_line_break_is_shown_on_one_line():
    with pytest.raises(UserError, match=r"op Ev\\nil is not one the exporter produces"):
        opset.check_onnx("m.onnx", _onnx_with_op(b"Ev\nil"))


def _tflite(vtable_at: int) -> bytes:
    """A root table whose vtable sits `vtable_at` bytes before it (negative: after it)."""
    return (8).to_bytes(4, "little") + b"TFL3" + vtable_at.to_bytes(4, "little", signed=True)


@pytest.mark.parametrize("data, reason", [pytest.param(data, reason, id=case) for case, data, reason in [
    ("short file", b"\x04\x00", "offset outside the file"),
    ("root past the end", b"\xff\xff\xff\x7f", "offset outside the file"),
    ("vtable past the end", _tflite(-4096), "offset outside the file"),
    ("vtable before the start", _tflite(64), "offset outside the file"),
    # the root table, its operator_codes field, its vtable, then the vector: 2^30 tables in 28 bytes
    ("long vector", struct.pack("<I4siI4HI", 8, b"TFL3", -8, 12, 8, 8, 0, 4, 1 << 30), "vector longer than the file"),
]])
def test_malformed_tflite_is_the_reader_s_own_error(tmp_path, data, reason):
    _refused_by_reader_and_check(tmp_path, data, reason, opset.tflite_op_codes, "tflite")


def _refused_by_reader_and_check(tmp_path, data, reason, reader, fmt):
    """The reader raises its own error with `reason`; check_ops says it in one line, naming the file."""
    with pytest.raises(UserError, match=reason):
        reader(data)
    path = tmp_path / f"bad.{fmt}"
    path.write_bytes(data)
    with pytest.raises(UserError, match=rf"^bad.{fmt}: not a valid {opset.LABELS[fmt]} model \({reason}"):
        opset.check_ops(path, fmt)


# ---- seeds: small valid files of each format -----------------------------------------------

def _probe(name) -> bytes:
    return files("animeedge.runtimes").joinpath(name).read_bytes()


def _onnx_seeds() -> list[bytes]:
    """The shipped probe, a small model of allowed ops, and one with every structure the
    reader walks (subgraphs, tensor attributes, sparse and external tensors, opsets)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    def model(nodes, initializers=(), sparse=(), opsets=(("", 17),)):
        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])
        y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, None, None])
        graph = helper.make_graph(nodes, "g", [x], [y], list(initializers), sparse_initializer=list(sparse))
        return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])

    weight = numpy_helper.from_array(np.full((3, 3, 1, 1), 0.5, np.float32), "w")
    allowed = model([helper.make_node("Conv", ["image", "w"], ["c"], kernel_shape=[1, 1], pads=[0, 0, 0, 0]),
                     helper.make_node("Tanh", ["c"], ["out"])], [weight])
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.ones(2, np.float32))),
         helper.make_node("Identity", ["cond"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])])
    external = numpy_helper.from_array(np.zeros(2, np.float32), "e")
    external.data_location = TensorProto.EXTERNAL
    set_external_data(external, location="w.bin")
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.ones(2, np.float32), "s"),
                                       numpy_helper.from_array(np.array([0, 3], np.int64), "i"), [4])
    rich = model([helper.make_node("Loop", ["n", "yes", "image"], ["out"], body=body),
                  helper.make_node("Custom", ["image"], ["z"], domain="evil.ops")],
                 [external], [sparse], (("", 17), ("ai.onnx", 17), ("evil.ops", 1)))
    return [_probe("probe.onnx"), allowed.SerializeToString(), rich.SerializeToString()]


def _tflite_seeds() -> list[bytes]:
    """The shipped probe, and the probe with its weights cut short and more operator codes
    (allowed, custom, and one over 127 that only builtin_code holds)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    probe = _probe("probe.tflite")
    model = schema.ModelT.InitFromPackedBuf(probe, 0)
    for buffer in model.buffers:
        if buffer.data is not None:
            buffer.data = buffer.data[:8]
    for builtin, deprecated, custom in ((0, 0, None), (28, 28, None), (32, 32, "Evil"), (163, 127, None)):
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.customCode, code.version = builtin, deprecated, custom, 1
        model.operatorCodes.append(code)
    builder = flatbuffers.Builder(1 << 12)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return [probe, bytes(builder.Output())]


def _tensor(dtype, quantization=None):
    return {"name": "image", "layout": "NHWC", "dtype": dtype, "shape": [1, 32, 32, 3]} | (
        {"quantization": quantization} if quantization else {})


def _artifact(fmt, precision, dtype, quantization=None):
    return {"file": f"{fmt}/model_{precision}.{fmt}", "format": fmt, "precision": precision, "width": 0.5,
            "resolution": 32, "resolutions": [32, 48], "input": _tensor(dtype, quantization),
            "output": _tensor(dtype, quantization), "value_range": [-1.0, 1.0], "normalization": "x / 127.5 - 1",
            "params": 1000, "gmacs": 0.25, "size_bytes": 4096, "sha256": "0" * 64,
            "fidelity": {"psnr_db": 41.5, "max_abs_error": 0.01, "photos": 2}, "quality": {"psnr_db": 30.0},
            "verified_on": [{"arch": "arm64", "cpu": "cortex-a76", "result": "bit-exact", "max_abs_error": 0}]}


def _manifest() -> dict:
    return {
        "schema_version": 1, "model": {"file": "default.safetensors", "sha256": "1" * 64},
        "tools": {"python": "3.11.9", "onnx": "1.16.0"},
        "speed": {"p50_ms": {"onnx": {"fp32": 3.5}, "tflite": {"int8": 2.25}}, "width": 0.5},
        "recommended_precision": {"onnx": "fp32", "tflite": "int8"},
        "recommended_precision_by_width": {"0.5": {"tflite": "int8"}},
        "errors": {"coreml": "not exported here"},
        "artifacts": [_artifact("onnx", "fp32", "float32"),
                      _artifact("tflite", "int8", "int8", {"scale": 0.0078125, "zero_point": -1})]}


# ---- the mutator -----------------------------------------------------------------------------

INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF)
BINARY_TOKENS = (b"\xff" * 9 + b"\x01", b"\x80" * 11, b"\xff\xff\xff\x0f", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                 b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x08\x00", b"\x0a\x7f", b"\x3a\x00", b"\x04\x00\x00\x00")
JSON_TOKENS = (b"[" * 40, b"[" * 3000, b"{", b"}", b"[", b"]", b'"', b"\\", b'\\u0000', b'\\ud800', b"\\n", b"NaN",
               b"-Infinity", b"1e999", b"9" * 5000, b"null", b"true", b"-0", b"0.5", b"256.0", b",", b":", b"{}",
               b'"x":', b'"\\n\\u2028":1,')


def _position(rng, n: int) -> int:
    """Near either end half the time: where both formats keep their structure."""
    if n == 0:
        return 0
    near = min(n, 512)
    return rng.choice((rng.randrange(near), n - 1 - rng.randrange(near), rng.randrange(n), rng.randrange(n)))


def mutate(rng, data: bytes, tokens) -> bytes:
    """`data` after 1 to 4 byte-level changes: a bit flipped, a byte set to an interesting or
    a random value, the end cut off, a chunk deleted, random bytes or a copy of a chunk
    inserted, a token written over the bytes there or inserted."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        n, kind = len(out), rng.randrange(8)
        pos = _position(rng, n)
        if kind == 0 and n:
            out[pos] ^= 1 << rng.randrange(8)
        elif kind == 1 and n:
            out[pos] = rng.choice(INTERESTING)
        elif kind == 2 and n:
            out[pos] = rng.randrange(256)
        elif kind == 3:
            del out[rng.randrange(n + 1):]
        elif kind == 4:
            del out[pos:pos + rng.randint(1, 64)]
        elif kind == 5:
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif kind == 6:
            start = _position(rng, n)
            out[pos:pos] = out[start:start + rng.randint(1, 64)]
        else:
            token = rng.choice(tokens)
            end = pos + (len(token) if rng.random() < 0.5 else 0)  # over the bytes there, or inserted
            out[pos:end] = token
    return bytes(out)


JSON_VALUES = (None, True, 0, -1, 0.5, 32.0, 1 << 70, -1e308, math.nan, math.inf, "", "a\nb\u2028", "\ud800",
               "x" * 5000, [], {}, [0] * 100, {"\n": 1}, json.loads("[" * 40 + "]" * 40))
KEYS = ("", "\n", "\x00", "file", "format", "quantization", "artifacts", "x" * 5000)


def mutate_json(rng, value):
    """A copy of `value` with one node, met on a random walk down, replaced, removed,
    renamed or duplicated."""
    value = json.loads(json.dumps(value))
    parent, key, node = None, None, value
    while isinstance(node, (dict, list)) and node and (parent is None or rng.random() < 0.85):
        parent, key = node, rng.choice(list(node) if isinstance(node, dict) else range(len(node)))
        node = node[key]
    if parent is None:
        return rng.choice(JSON_VALUES)
    action = rng.randrange(4)
    if action == 0:
        parent[key] = rng.choice(JSON_VALUES)
    elif action == 1:
        del parent[key]
    elif isinstance(parent, dict):
        parent[rng.choice(KEYS)] = parent.pop(key) if action == 2 else node
    else:
        parent.append(node)
    return value


def mutate_manifest(rng, manifest: dict) -> bytes:
    """Bytes that break the JSON (mutate) or keep it and break the manifest (mutate_json),
    or both."""
    kind, value = rng.randrange(3), manifest
    for _ in range(rng.randint(1, 3) if kind else 0):
        value = mutate_json(rng, value)
    data = json.dumps(value, indent=1).encode()
    return mutate(rng, data, JSON_TOKENS) if kind != 1 else data


def _timed(call, data):
    start = time.perf_counter()
    try:
        call(data)
        error = None
    except Exception as exc:
        error = exc
    return time.perf_counter() - start, error


def mutation_report(calls, mutant, count, seed) -> tuple[Counter, list, float]:
    """Feeds `count` mutants (`mutant(rng)`) to every call: the foreign exceptions by type, the
    first few (mutant index, call, exception), and the slowest call in seconds (the better
    of two runs where the first is over MAX_SECONDS, so that a pause of the machine is not
    counted)."""
    rng, foreign, examples, slowest = random.Random(seed), Counter(), [], 0.0
    for index in range(count):
        data = mutant(rng)
        for call in calls:
            seconds, error = _timed(call, data)
            if seconds > MAX_SECONDS:
                seconds = min(seconds, _timed(call, data)[0])
            slowest = max(slowest, seconds)
            message = str(error)
            if error is None or (isinstance(error, UserError) and len(message.splitlines()) == 1
                                 and len(message) < 1000):  # passes, or one short line
                continue
            name = type(error).__name__ if not isinstance(error, UserError) else "UserError not one short line"
            foreign[name] += 1
            if len(examples) < 5:
                examples.append((index, call.__name__, repr(error)[:200]))
    return foreign, examples, slowest


def _check(calls, seeds, mutant, count, seed):
    for data in seeds:  # each seed is a valid file
        calls[0](data)
    foreign, examples, slowest = mutation_report(calls, mutant, count, seed)
    print(f"{count} mutants: foreign exceptions {dict(foreign)}, slowest input {slowest * 1000:.1f} ms")
    assert not foreign, f"{dict(foreign)}; first: {examples}"
    assert slowest < MAX_SECONDS, f"an input took {slowest * 1000:.0f} ms"


MUTANTS = 5000  # per reader: about 10 s in all


def check_onnx(data):
    opset.check_onnx("m.onnx", data)


def check_tflite(data):
    opset.check_tflite("m.tflite", data)


@pytest.mark.slow
def test_mutated_onnx_files_end_in_the_reader_s_own_error():
    seeds = _onnx_seeds()
    _check([opset.onnx_contents, check_onnx], seeds, lambda rng: mutate(rng, rng.choice(seeds), BINARY_TOKENS),
           MUTANTS, seed=1)


@pytest.mark.slow
def test_mutated_tflite_files_end_in_the_reader_s_own_error():
    seeds = _tflite_seeds()
    _check([opset.tflite_op_codes, check_tflite], seeds, lambda rng: mutate(rng, rng.choice(seeds), BINARY_TOKENS),
           MUTANTS, seed=2)


@pytest.mark.slow
def test_mutated_manifests_end_in_one_line(tmp_path):
    def load_manifest_of(data):  # timed with the write of the file, a few microseconds
        (tmp_path / MANIFEST).write_bytes(data)
        return load_manifest(tmp_path)
    _check([load_manifest_of], [json.dumps(_manifest()).encode()], lambda rng: mutate_manifest(rng, _manifest()),
           MUTANTS, seed=3)
