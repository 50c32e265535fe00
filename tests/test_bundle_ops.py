"""What a bundle may run (runtimes/opset.py) and what its model may return (runtimes/load.py).
Each hostile model is crafted here and put in a bundle "re-signed by an attacker" (the
manifest carries its true sha256 and size), so only the op allowlist, the external-data
refusal and the output checks stand between it and the user."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli
from animeedge.runtimes import opset
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.load import load
from animeedge.runtimes.manifest import load_manifest, sha256_path, size_bytes
from test_hostile_bundle import run_load, small_bundle

FRAME = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


def _graph_model(nodes, initializers=(), opsets=(("", 17),)):
    """image (1x3xHxW float) -> stylized, through `nodes`."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])
    y = helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, None, None])
    graph = helper.make_graph(nodes, "hostile", [x], [y], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _loop_forever():
    body_in = [helper.make_tensor_value_info("i", TensorProto.INT64, []),
               helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
               helper.make_tensor_value_info("carried", TensorProto.FLOAT, None)]
    body_out = [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("carried_out", TensorProto.FLOAT, None)]
    body = helper.make_graph([helper.make_node("Identity", ["cond"], ["cond_out"]),
                              helper.make_node("Identity", ["carried"], ["carried_out"])], "body", body_in, body_out)
    return _graph_model([helper.make_node("Loop", ["trips", "yes", "image"], ["stylized"], body=body)],
                        [_const("trips", 2 ** 62, np.int64), _const("yes", True, bool)])


def _constant_of_shape_bomb():  # the frame, added to 2^20 zeros: 2^20 copies of it
    return _graph_model([helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                         helper.make_node("Add", ["image", "big"], ["stylized"])],
                        [_const("shape", [1 << 20, 1, 1, 1], np.int64)])


def _expand_bomb():  # 2^20 copies of the frame
    return _graph_model([helper.make_node("Expand", ["image", "shape"], ["stylized"])],
                        [_const("shape", [1 << 20, 1, 1, 1], np.int64)])


def _custom_op():
    return _graph_model([helper.make_node("Anything", ["image"], ["stylized"], domain="evil.ops")],
                        opsets=(("", 17), ("evil.ops", 1)))


def _nan_output():  # x mod 0 is NaN, with ops the exporter itself uses
    return _graph_model([helper.make_node("Mod", ["image", "zero"], ["stylized"], fmod=1)], [_const("zero", [0.0])])


def _half_size_output():
    return _graph_model([helper.make_node("Slice", ["image", "starts", "ends", "axes", "steps"], ["stylized"])],
                        [_const(n, v, np.int64) for n, v in (("starts", [0, 0]), ("ends", [1 << 30, 1 << 30]),
                                                             ("axes", [2, 3]), ("steps", [2, 2]))])


def resigned(write):
    """A mutate for small_bundle: `write(path)` replaces the artifact, then the manifest gets
    its true size and sha256, as an attacker who controls manifest.json would do."""
    def mutate(artifact, folder):
        path = folder / artifact["file"]
        write(path)
        artifact["sha256"], artifact["size_bytes"] = sha256_path(path), size_bytes(path)
    return mutate


def onnx_bundle(bundle, folder, model):
    return small_bundle(bundle, folder, "onnx", "fp32", mutate=resigned(lambda p: onnx.save(model, p)))


@pytest.fixture
def no_runtime(monkeypatch):
    """Fails the test if ONNX Runtime or LiteRT is handed a file."""
    import ai_edge_litert.interpreter
    import onnxruntime

    def refuse(*args, **kwargs):
        raise AssertionError("a runtime was created")
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    monkeypatch.setattr(ai_edge_litert.interpreter, "Interpreter", refuse)


@pytest.mark.parametrize("make, message", [
    (_loop_forever, "op Loop is not one the exporter produces; refused"),
    (_constant_of_shape_bomb, "op ConstantOfShape is not one"),
    (_expand_bomb, "op Expand is not one"),
    (_custom_op, r"op Anything \(domain evil.ops\) is not one"),
])
def test_onnx_ops_the_exporter_never_writes_are_refused_before_a_session(bundle, tmp_path, no_runtime, make,
                                                                          message):
    folder, artifact = onnx_bundle(bundle[0], tmp_path / "b", make())
    with pytest.raises(UserError, match=message):
        run_load(folder, artifact)


def test_an_unused_foreign_operator_set_is_refused(bundle, tmp_path, no_runtime):
    model = _graph_model([helper.make_node("Tanh", ["image"], ["stylized"])], opsets=(("", 17), ("evil.ops", 1)))
    folder, artifact = onnx_bundle(bundle[0], tmp_path / "b", model)
    with pytest.raises(UserError, match="operator set evil.ops"):
        run_load(folder, artifact)


def _external_data(path):
    model = _graph_model([helper.make_node("Add", ["image", "offset"], ["stylized"])],
                         [_const("offset", np.zeros((1, 3, 1, 1)))])
    onnx.save(model, path, save_as_external_data=True, location="w.bin", size_threshold=0)


def test_weights_in_external_data_are_refused_in_a_bundle_and_in_a_single_file(bundle, tmp_path, no_runtime):
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", "onnx", "fp32", mutate=resigned(_external_data))
    weights = (folder / artifact["file"]).parent / "w.bin"
    assert weights.is_file()
    for _ in range(2):  # as signed, then with w.bin changed after signing
        with pytest.raises(UserError, match="external data"):
            run_load(folder, artifact)
        weights.write_bytes(np.full(3, 0.5, np.float32).tobytes())
    single = tmp_path / "single" / "model.onnx"
    single.parent.mkdir()
    _external_data(single)
    with pytest.raises(UserError, match="model.onnx: keeps weights in external data"):
        load(single)


@pytest.mark.parametrize("make, message", [
    (_nan_output, "returned NaN or infinity"),
    (_half_size_output, r"returned shape \(1, 3, 12, 16\), not \(1, 3, 24, 32\) for a 24x32 input"),
])
def test_a_non_finite_or_misshapen_output_is_refused_per_frame(bundle, tmp_path, make, message):
    folder, artifact = onnx_bundle(bundle[0], tmp_path / "b", make())
    stylizer = run_load(folder, artifact)  # only allowed ops: it loads
    with pytest.raises(UserError, match=message):
        stylizer(FRAME)  # 30x40, at resolution 32: 24x32


def test_the_cli_reports_a_nan_model_as_that_file_s_error(bundle, tmp_path):
    from PIL import Image
    folder, _ = onnx_bundle(bundle[0], tmp_path / "b", _nan_output())
    Image.fromarray(FRAME).save(tmp_path / "in.png")
    result = run_cli("stylize", tmp_path / "in.png", "--out", tmp_path / "out", "--model", folder,
                     "--backend", "onnx", "--precision", "fp32")
    assert result.returncode == 1 and "returned NaN or infinity" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "in.png").exists()


# ---- TFLite: a real exported file with its operator codes or weights changed ---------------

def _patched_tflite(change):
    """resigned() writer: the bundle's TFLite file, unpacked with the tflite schema,
    `change(model)`, packed again."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def write(path):
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        change(model, schema)
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        path.write_bytes(builder.Output())
    return write


def _custom(model, schema):
    code = model.operatorCodes[0]
    code.builtinCode, code.deprecatedBuiltinCode, code.customCode = 32, 32, "Evil"


def _while(model, schema):
    model.operatorCodes[0].builtinCode = schema.BuiltinOperator.WHILE


def _custom_in_the_deprecated_field(model, schema):  # the interpreter reads the larger of the two
    code = model.operatorCodes[0]
    code.builtinCode, code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD, 32


def _nan_weights(model, schema):
    for tensor in model.subgraphs[0].tensors:
        data = model.buffers[tensor.buffer].data
        if tensor.type == schema.TensorType.FLOAT32 and data is not None and len(data):
            model.buffers[tensor.buffer].data = np.full(len(data) // 4, np.nan, np.float32).view(np.uint8)


@pytest.mark.parametrize("change, message", [
    (_custom, "has a custom op; refused"),
    (_custom_in_the_deprecated_field, "has a custom op"),
    (_while, "op WHILE is not one the exporter produces"),
])
def test_tflite_ops_the_exporter_never_writes_are_refused_before_an_interpreter(bundle, tmp_path, no_runtime,
                                                                                change, message):
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", "tflite", "fp32",
                                    mutate=resigned(_patched_tflite(change)))
    with pytest.raises(UserError, match=message):
        run_load(folder, artifact)


def test_a_tflite_file_with_nan_weights_is_refused_per_frame(bundle, tmp_path):
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", "tflite", "fp32",
                                    mutate=resigned(_patched_tflite(_nan_weights)))
    stylizer = run_load(folder, artifact)
    with pytest.raises(UserError, match="returned NaN or infinity"):
        stylizer(FRAME)


# ---- the allowlist is what the exporter writes --------------------------------------------

def _onnx_ops_by_the_onnx_package(path) -> set:
    found = set()

    def visit(graph):
        for node in graph.node:
            found.add((node.domain, node.op_type))
            for attribute in node.attribute:
                for sub in [attribute.g] * (attribute.type == onnx.AttributeProto.GRAPH) + list(attribute.graphs):
                    visit(sub)
    visit(onnx.load(path).graph)
    return found


def test_the_readers_agree_with_the_real_libraries_and_the_exporter_passes(bundle, teacher_form_bundle):
    from ai_edge_litert.schema_py_generated import Model
    for root in (bundle[0], teacher_form_bundle[0]):
        for artifact in load_manifest(root)["artifacts"]:
            path = root / artifact["file"]
            if artifact["format"] == "onnx":
                assert set(opset.onnx_contents(path.read_bytes()).ops) == _onnx_ops_by_the_onnx_package(path)
            elif artifact["format"] == "tflite":
                model = Model.GetRootAs(path.read_bytes(), 0)
                codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
                assert opset.tflite_op_codes(path.read_bytes()) == [
                    max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) for c in codes]
            opset.check_ops(path, artifact["format"])  # every exported file passes


def test_a_core_ml_op_the_exporter_never_writes_is_refused(bundle, tmp_path):
    import shutil

    from coremltools.proto import Model_pb2
    artifact = next(a for a in load_manifest(bundle[0])["artifacts"] if a["format"] == "coreml")
    package = tmp_path / "m.mlpackage"
    shutil.copytree(bundle[0] / artifact["file"], package)
    spec_file = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model.FromString(spec_file.read_bytes())
    function = spec.mlProgram.functions["main"]
    function.block_specializations[function.opset].operations[0].type = "while_loop"
    spec_file.write_bytes(spec.SerializeToString())
    with pytest.raises(UserError, match="op while_loop is not one the exporter produces"):
        opset.check_ops(package, "coreml")


@pytest.mark.parametrize("data", [b"", b"\x08" * 9, b"\xff" * 64, b"\x0a\x80\x80\x80\x80\x10"])
def test_bytes_that_are_no_onnx_model_are_one_line(tmp_path, data):
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(UserError, match="bad.onnx: "):
        load(path)


def test_verify_checks_the_ops_before_any_emulated_run(bundle, tmp_path, no_runtime):
    from animeedge.verify import _jobs
    folder, artifact = onnx_bundle(bundle[0], tmp_path / "b", _loop_forever())
    (tmp_path / "work").mkdir()
    with pytest.raises(UserError, match="op Loop is not one the exporter produces"):
        _jobs(folder, [artifact], tmp_path / "work")


def test_only_a_file_this_process_made_passes_without_the_allowlist(bundle, tmp_path):
    from animeedge.runtimes.opset import check_ops, own_file
    path = tmp_path / "peer.onnx"
    onnx.save(_loop_forever(), path)
    with own_file(path):
        check_ops(path, "onnx")
    with pytest.raises(UserError, match="op Loop"):
        check_ops(path, "onnx")
