"""Core ML int8 is W8A8 (int8 weights and activations: quantize / dequantize ops, iOS 17), as
in the other formats; int8w is int8 weights with fp16 compute (iOS 16), Core ML only. The
embedded default at width 0.25, exported at 32 and 48 px, calibrated on synthetic photos."""
import numpy as np
import pytest
import torch

pytest.importorskip("coremltools")
pytest.importorskip("litert_torch")

from conftest import BUNDLE_RES, BUNDLE_RES2, _folder
from animeedge.calibration.data import CalibrationSet
from animeedge.compress import export_coreml
from animeedge.compress.export import BundleExporter
from animeedge.generator.checkpoint import DEFAULT_MODEL, load_generator
from animeedge.generator.slicing import sliced_copy
from animeedge.runtimes import opset
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.manifest import SCHEMA_VERSION, sha256_path, size_bytes, validate

ACTIVATION_OPS = {"quantize", "dequantize"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coreml_w8a8")
    photos = CalibrationSet(_folder(tmp / "photos", 5, n=6, size=64))
    net = sliced_copy(load_generator(DEFAULT_MODEL), 0.25)
    files = export_coreml.export(net, tmp / "coreml", "w0.25", ["int8", "int8w"], [BUNDLE_RES, BUNDLE_RES2], photos)
    return {f["precision"]: f for f in files}, net, photos


@pytest.fixture
def files(exported):
    return exported[0]


def test_int8_carries_int8_weights_and_activation_quantize_ops(files):
    f = files["int8"]
    spec = export_coreml.describe(f["path"])
    assert spec == f["coreml"] and spec["opset"] == "CoreML7"  # quantize / dequantize: iOS 17
    assert ACTIVATION_OPS <= set(spec["ops"]) and spec["ops"]["quantize"] >= spec["ops"]["conv"]
    assert spec["int8_weights"] and spec["int8_activations"]
    assert [1, 3, BUNDLE_RES, BUNDLE_RES] in spec["inputs"][0]["shapes"]
    assert sorted(p.name for p in f["path"].iterdir()) == ["Data", "Manifest.json"]  # no converter debug file
    q = f["quantization"]
    assert q["activations"].startswith("int8, calibrated on 3 photos") and q["weights"].startswith("int8")
    assert "A17 Pro / M4" in q["runs_int8_on"]


def test_int8w_is_weight_only(files):
    f = files["int8w"]
    spec = f["coreml"]
    assert spec["opset"] == "CoreML6" and spec["int8_weights"] and not spec["int8_activations"]
    assert not ACTIVATION_OPS & set(spec["ops"])
    assert f["quantization"]["activations"] == "fp16" and f["quantization"]["weights"].startswith("int8")


def test_the_manifest_and_the_op_allowlist_take_both(files):
    for f in files.values():
        opset.check_ops(f["path"], "coreml")
    artifacts = [{k: v for k, v in f.items() if k != "path"} | {
        "file": f"coreml/{f['path'].name}", "format": "coreml", "width": 0.25, "resolution": BUNDLE_RES,
        "value_range": [-1.0, 1.0], "normalization": "", "params": 1, "gmacs": 0.1,
        "size_bytes": size_bytes(f["path"]), "sha256": sha256_path(f["path"]), "fidelity": None}
        for f in files.values()]
    manifest = {"schema_version": SCHEMA_VERSION, "artifacts": artifacts, "model": {"sha256": "0" * 64},
                "tools": {}, "recommended_precision": {"coreml": "int8w"}}
    assert {a["precision"] for a in validate(manifest)["artifacts"]} == {"int8", "int8w"}


def test_int8w_is_refused_where_no_format_asked_makes_it(tmp_path, photo_dir):
    with pytest.raises(UserError, match="no format asked .onnx, tflite. makes int8w"):
        BundleExporter(DEFAULT_MODEL, tmp_path / "b", formats=("onnx", "tflite"), precisions=("fp32", "int8w"),
                       widths=(0.25,), resolutions=(BUNDLE_RES,), calib=photo_dir, progress=False)


def test_int8_is_faithful_to_torch(exported):
    """On the evaluation photos (not the calibration ones), run by the numpy reference
    evaluator: W8A8 >= 30 dB (the export's MIN_PSNR_DB), int8 weights alone >= 40 dB."""
    from animeedge.compress.export import MIN_PSNR_DB
    from animeedge.compress.quality import psnr_signed
    from animeedge.runtimes.coreml_reference import evaluate
    files, net, photos = exported
    for precision, floor in (("int8", MIN_PSNR_DB), ("int8w", 40)):
        for res in (BUNDLE_RES, BUNDLE_RES2):
            with torch.no_grad():
                err = [np.mean((evaluate(files[precision]["path"], x) - net(torch.from_numpy(x)).numpy()) ** 2)
                       for x in photos.eval(res)]
            assert psnr_signed(float(np.mean(err))) >= floor, (precision, res)
