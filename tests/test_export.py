import importlib.util
import json
import platform
import shutil

import numpy as np
import pytest
import torch

from animeedge.compress.export import BundleExporter
from animeedge.compress.export_coreml import describe
from conftest import BUNDLE_RES, BUNDLE_RES2, run_cli, synthetic_image
from animeedge.generator.checkpoint import load_generator
from animeedge.generator.inference import TorchStylizer
from animeedge.generator.norm import LADE
from animeedge.generator.slicing import sliced_copy
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.load import load
from animeedge.runtimes.manifest import MANIFEST, load_manifest, sha256_path, validate

RES = BUNDLE_RES


def test_manifest_lists_every_artifact_and_round_trips(bundle):
    out, _ = bundle
    manifest = load_manifest(out)
    keys = {(a["format"], a["precision"], a["width"], a["resolution"]) for a in manifest["artifacts"]}
    assert keys == {(f, p, w, r) for f in ("onnx", "tflite", "coreml") for p in ("fp32", "int8") for w in (0.5, 1.0)
                    for r in (BUNDLE_RES, BUNDLE_RES2)}
    for a in manifest["artifacts"]:
        assert sha256_path(out / a["file"]) == a["sha256"]
    assert validate(json.loads(json.dumps(manifest))) == manifest
    assert set(manifest["recommended_precision"]) == {"onnx", "tflite", "coreml"}
    assert manifest["speed"]["p50_ms"]["onnx"]["fp32"] > 0


def test_widths_are_physically_smaller_files(bundle):
    out, model = bundle
    arts = load_manifest(out)["artifacts"]
    for fmt in ("onnx", "tflite", "coreml"):
        size = {a["width"]: a["size_bytes"] for a in arts if a["format"] == fmt and a["precision"] == "fp32"}
        assert size[0.5] < (0.6 if fmt == "onnx" else 0.9) * size[1.0]  # Core ML / TFLite carry fixed overhead
    params = {a["width"]: a["params"] for a in arts}
    assert params[0.5] == sum(p.numel() for p in sliced_copy(load_generator(model), 0.5).parameters())


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_fp32_matches_torch(bundle, backend):
    out, model = bundle
    arts = [a for a in load_manifest(out)["artifacts"] if a["format"] == backend and a["precision"] == "fp32"]
    assert all(a["fidelity"]["max_abs_error"] <= 1e-3 for a in arts)
    frame = synthetic_image(np.random.default_rng(9), 48)  # resized to RES and back
    for width in (0.5, 1.0):
        got = load(out, width, RES, backend, "fp32")(frame)
        ref = TorchStylizer(model, width, RES)(frame)
        assert got.shape == frame.shape and np.abs(got.astype(int) - ref).max() <= 2
    # a non-square frame: a fixed-size file gets it padded to the square, a dynamic one as it is
    assert load(out, 1.0, RES, backend, "fp32")(frame[:40]).shape == (40, 48, 3)


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_int8_is_smaller_and_faithful(bundle, backend):
    out, _ = bundle
    arts = [a for a in load_manifest(out)["artifacts"] if a["format"] == backend]
    size = {(a["precision"], a["width"]): a["size_bytes"] for a in arts}
    assert size["int8", 1.0] < 0.75 * size["fp32", 1.0]
    for a in arts:
        if a["precision"] == "int8":
            assert a["fidelity"]["psnr_db"] >= 28, a
    frame = synthetic_image(np.random.default_rng(2), RES)
    assert load(out, 1.0, RES, backend, "int8")(frame).shape == frame.shape


def _tflite_ops(path) -> list[tuple[str, type]]:
    """(op name, dtype of its first output) for each op of a TFLite file."""
    from animeedge.runtimes.backends import litert_interpreter
    interpreter = litert_interpreter()(model_path=str(path))
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    return [(op["op_name"], dtypes[op["outputs"][0]]) for op in interpreter._get_ops_details()]


def test_tflite_int8_computes_in_int8_from_input_to_output(bundle):
    """The default's int8 TFLite files have no float island: every op, its adds included, makes
    int8 tensors and nothing is dequantized (a QUANTIZE from int8 to int8 only rescales).
    litert-torch's quantizer alone left every add in float: at full resolution in the photo
    path those cost more than the path's convolutions."""
    out, _ = bundle
    arts = [a for a in load_manifest(out)["artifacts"] if a["format"] == "tflite" and a["precision"] == "int8"]
    assert arts
    for a in arts:
        ops = _tflite_ops(out / a["file"])
        assert "ADD" in {name for name, _ in ops}
        assert not [op for op in ops if op[0] == "DEQUANTIZE" or op[1] != np.int8], a["file"]


def test_tflite_int8_keeps_lade_layers_in_float(teacher_form_bundle):
    """Each LADE runs in float: its 2 projections (on the centred input and on its mean) and
    its 4 MULs (two squares, the scale, the output), the network's only MULs. Quantized, a
    quiet channel's variance rounds away. (The converter takes the plain mean of an int8 map
    in int8.)"""
    out, model = teacher_form_bundle
    lades = sum(isinstance(m, LADE) for m in load_generator(model).modules())
    art = next(a for a in load_manifest(out)["artifacts"] if a["format"] == "tflite" and a["precision"] == "int8")
    ops = _tflite_ops(out / art["file"])
    assert sum(name == "CONV_2D" and d == np.float32 for name, d in ops) == 2 * lades
    muls = [d for name, d in ops if name == "MUL"]
    assert len(muls) == 4 * lades and all(d == np.float32 for d in muls)


def test_onnx_int8_keeps_lade_layers_in_float(teacher_form_bundle):
    """NNCF leaves each LADE's 2 projections and its "+ mean(t)" Add unquantized: found in the
    int8 graph by what feeds them, so a quantized one (fed by a DequantizeLinear) goes missing."""
    import onnx
    from animeedge.compress.export_onnx import lade_nodes
    out, model = teacher_form_bundle
    lades = sum(isinstance(m, LADE) for m in load_generator(model).modules())
    for a in load_manifest(out)["artifacts"]:
        if a["format"] == "onnx" and a["precision"] == "int8":
            graph = onnx.load(str(out / a["file"]))
            assert "DequantizeLinear" in {n.op_type for n in graph.graph.node}
            assert len(lade_nodes(graph)) == 3 * lades


def test_coreml_spec_is_valid_on_any_system(bundle):
    out, _ = bundle
    for a in load_manifest(out)["artifacts"]:
        if a["format"] == "coreml":
            spec = describe(out / a["file"])
            assert spec["inputs"][0]["name"] == "image" and spec["outputs"][0]["name"] == "stylized"
            assert [1, 3, RES, RES] in spec["inputs"][0]["shapes"]
            assert spec["ops"]["conv"] > 0 and spec["int8_weights"] == (a["precision"] == "int8")
            assert spec["int8_activations"] == (a["precision"] == "int8")  # W8A8 (tests/test_coreml_w8a8.py)


def test_every_coreml_file_has_a_fidelity_from_the_reference_evaluator(bundle):
    """Core ML cannot run here: its files' fidelity comes from runtimes/coreml_reference.py
    (graph and weights) against the torch network, and the recommendation follows it."""
    out, _ = bundle
    manifest = load_manifest(out)
    floors = {"fp32": 100.0, "int8": 30.0}  # the bundle holds fp32 and W8A8 int8
    coreml = [a for a in manifest["artifacts"] if a["format"] == "coreml"]
    assert {(a["precision"], a["resolution"]) for a in coreml} == {(p, r) for p in floors for r in (RES, BUNDLE_RES2)}
    for a in coreml:
        assert "reference evaluator" in a["fidelity"]["source"], a
        assert a["fidelity"]["psnr_db"] >= floors[a["precision"]], a
    assert manifest["recommended_precision"]["coreml"] == "fp32"  # no fp16 in this bundle


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predicts on macOS only")
def test_coreml_matches_torch_on_macos(bundle):
    out, model = bundle
    frame = synthetic_image(np.random.default_rng(4), RES)
    got = load(out, 1.0, RES, "coreml", "fp32")(frame)
    assert np.abs(got.astype(int) - TorchStylizer(model, 1.0, RES)(frame)).max() <= 3


def test_tampered_file_and_manifest_are_refused(bundle, tmp_path):
    out, _ = bundle
    copy = shutil.copytree(out, tmp_path / "b")
    onnx_file = next((copy / "onnx").glob("w1.0_fp32.onnx"))
    data = bytearray(onnx_file.read_bytes())
    data[-10] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        load(copy, 1.0, RES, "onnx", "fp32")
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["artifacts"][0]["precision"] = "int4"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="invalid manifest"):
        load(copy)
    with pytest.raises(UserError, match="no onnx width 0.75"):
        load(out, 0.75, RES, "onnx")


def test_failed_export_leaves_no_bundle(tiny_model_path, photo_dir, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")
    monkeypatch.setattr("animeedge.compress.export_onnx.export", broken)
    with pytest.raises(RuntimeError):
        BundleExporter(tiny_model_path, tmp_path / "b", formats=("onnx",), precisions=("fp32",), widths=(1.0,),
                       resolutions=(RES,), calib=photo_dir, progress=False).run()
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.*"))


def test_missing_backend_package_skips_that_format(tiny_model_path, photo_dir, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "coremltools" else real(name, *a))
    out = BundleExporter(tiny_model_path, tmp_path / "b", formats=("onnx", "coreml"), precisions=("fp32",),
                         widths=(1.0,), resolutions=(RES,), calib=photo_dir, progress=False).run()
    manifest = load_manifest(out)
    assert {a["format"] for a in manifest["artifacts"]} == {"onnx"}
    assert "coremltools" in manifest["errors"]["coreml"]


def test_stylize_runs_a_bundle_from_the_cli(bundle, tmp_path):
    out, _ = bundle
    img = tmp_path / "in.png"
    from PIL import Image
    Image.fromarray(synthetic_image(np.random.default_rng(5), 40)).save(img)
    proc = run_cli("stylize", img, "--out", tmp_path / "o", "--model", out, "--backend", "tflite",
                   "--precision", "int8", "--width", "0.5", "--resolution", str(RES))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "in.png").exists() and "tflite int8" in proc.stdout
    proc = run_cli("stylize", img, "--out", tmp_path / "o2", "--model", out, "--backend", "torch")
    assert proc.returncode == 2 and "not an exported bundle" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("args,message", [
    (["--formats", "onnx,caffe"], "subset of"), (["--precisions", "int4"], "subset of"),
    (["--model", "missing.safetensors"], "no such model file"),
])
def test_export_cli_bad_input(tmp_path, photo_dir, args, message):
    proc = run_cli("export", "--out", tmp_path / "b", "--calib", photo_dir, *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "b").exists()


def test_export_refuses_to_replace_a_bundle(tmp_path, photo_dir):
    (tmp_path / "b").mkdir()
    proc = run_cli("export", "--out", tmp_path / "b", "--calib", photo_dir)
    assert proc.returncode == 2 and "--force" in proc.stderr


def test_recommendation_needs_fidelity_and_a_real_speedup():
    from animeedge.compress.export import recommended_precisions

    def art(fmt, precision, psnr):
        return {"format": fmt, "precision": precision, "fidelity": {"psnr_db": psnr}}
    arts = [art("onnx", "fp32", 150), art("onnx", "int8", 25), art("tflite", "fp32", 150),
            art("tflite", "int8", 34), art("tflite", "fp16", 90), {"format": "coreml", "precision": "fp16", "fidelity": None}]
    speed = {"onnx": {"fp32": {"0.25": 5.0, "1.0": 20.0}, "int8": {"0.25": 3.0, "1.0": 10.0}},
             "tflite": {"fp32": {"0.25": 5.0, "1.0": 20.0}, "fp16": {"0.25": 4.9, "1.0": 19.5},
                        "int8": {"0.25": 3.8, "1.0": 12.0}}}
    assert recommended_precisions(arts, speed) == {"onnx": "fp32", "tflite": "int8", "coreml": "fp16"}  # onnx int8: unfaithful
    speed["tflite"]["int8"]["0.25"] = 4.0  # only 1.25x at width 0.25: not at every width
    assert recommended_precisions(arts, speed)["tflite"] == "fp32"
    from animeedge.compress.export import recommend_by_width
    assert recommend_by_width(arts, speed)["tflite"] == {"0.25": "fp32", "1.0": "int8"}
    assert recommend_by_width(arts, speed)["onnx"] == {"0.25": "fp32", "1.0": "fp32"}
    speed["tflite"] = {"fp32": {"1.0": 20.0}, "fp16": {"1.0": 19.0}, "int8": {"1.0": 19.0}}
    assert recommended_precisions(arts, speed)["tflite"] == "fp32"


def test_onnx_height_and_width_are_dynamic(bundle):
    """Sizes that are not multiples of the stride exercise the padding the graph computes."""
    from animeedge.runtimes.backends import OnnxSession
    out, model = bundle
    art = next(a for a in load_manifest(out)["artifacts"] if a["format"] == "onnx" and a["precision"] == "fp32"
               and a["width"] == 1.0)
    session = OnnxSession(out / art["file"], art, threads=2)
    net = sliced_copy(load_generator(model), 1.0)
    for h, w in [(37, 45), (64, 30), (21, 135)]:
        x = np.random.default_rng(h).uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(session.run(x), net(torch.from_numpy(x)).numpy(), atol=1e-4)


def test_coreml_is_recommended_fp16_only_where_its_fidelity_holds():
    from animeedge.compress.export import recommended_precisions

    def file(precision, psnr):
        return {"format": "coreml", "precision": precision, "fidelity": {"psnr_db": psnr}}
    good = [file("fp32", 140.0), file("fp16", 75.0), file("int8", 38.0)]
    assert recommended_precisions(good, {}) == {"coreml": "fp16"}
    assert recommended_precisions([file("fp32", 140.0), file("fp16", 12.0)], {}) == {"coreml": "fp32"}
