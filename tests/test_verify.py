"""`animeedge verify`: the comparison rules, and (slow) a real emulated ARM64 run."""
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from animeedge.arm64 import CACHE, CPUINFO, EmulationUnavailable, cpuinfo_text, emulated_command
from animeedge.verify import REFERENCE, _compare, fixed_frames, verify
from animeedge.runtimes.manifest import MANIFEST, load_manifest, sha256_path

from conftest import run_cli

FP32 = {"precision": "fp32", "output": {"layout": "NCHW"}}
INT8 = {"precision": "int8", "output": {"layout": "NHWC", "quantization": {"scale": 1 / 128, "zero_point": 0}}}


def test_fp32_passes_within_1e_4_and_fails_beyond():
    y = np.linspace(-1, 1, 300, dtype=np.float32).reshape(1, 3, 10, 10)
    assert _compare(FP32, y, y)["result"] == "bit-exact"
    assert _compare(FP32, y, y + 5e-5)["result"] == "within 1e-4"
    assert _compare(FP32, y, y + 1e-3)["result"] == "failed"


def test_int8_must_be_exact_or_round_differently_above_45_db():
    q = np.arange(-128, 128, dtype=np.int8).repeat(4).reshape(1, 32, 32, 1).repeat(3, axis=3)
    one_step = q.copy()
    one_step[0, 0, 0, 0] += 1  # one value one quantization step away: kernels that round differently
    found = _compare(INT8, q, one_step)
    assert found["result"] == "rounds differently" and found["max_abs_error"] == pytest.approx(1 / 128)
    assert _compare(INT8, q, -q)["result"] == "failed"  # wrong everywhere, as qemu's `max` CPU gave


def test_every_cpu_model_gets_an_arm_cpuinfo():
    for model in CPUINFO:
        text = cpuinfo_text(model, 2)
        assert text.count("processor\t:") == 2 and "CPU implementer" in text and "asimd" in text
    assert "sve" not in cpuinfo_text("neoverse-n1", 1) and "sme" in cpuinfo_text("max", 1)


def test_frames_are_fixed_and_span_the_range():
    a, b = fixed_frames(64), fixed_frames(64)
    assert a.shape == (2, 3, 64, 64) and np.array_equal(a, b)
    assert a.min() < -0.8 and a.max() > 0.8


def _emulation_ready() -> str | None:
    try:
        emulated_command("cortex-a76", ["-c", "pass"], CACHE)
    except EmulationUnavailable as exc:
        return str(exc)
    return None


@pytest.mark.slow
def test_verify_runs_the_bundle_on_an_emulated_cortex_a76(bundle, tmp_path):
    why = _emulation_ready()
    if why:
        pytest.skip(f"no ARM64 emulation here: {why}")
    folder = tmp_path / "bundle"
    shutil.copytree(bundle[0], folder)
    done = run_cli("verify", "--bundle", folder, "--cpus", "cortex-a76", "--json", tmp_path / "rows.json")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    files = {a["file"] for a in load_manifest(folder)["artifacts"] if a["format"] in ("onnx", "tflite")}
    assert {r["file"] for r in rows if r["cpu"] == "cortex-a76"} == files
    assert all(r["result"] != "failed" for r in rows)
    verified = [a for a in load_manifest(folder)["artifacts"] if a.get("verified_on")]
    assert {a["file"] for a in verified} == files
    assert all(v["cpu"] == "cortex-a76" and v["onnxruntime"] for a in verified for v in a["verified_on"])


@pytest.mark.slow
def test_the_phone_folder_runs_its_kivy_app_on_an_emulated_cortex_a76(bundle):
    from animeedge import arm64
    from animeedge.demo import write_pan_video
    from animeedge.phone_arm64 import run_phone_folder
    from animeedge.mobile_app.package import stage
    if _emulation_ready() or not arm64.app_ready():
        pytest.skip("no ARM64 app emulation here: run `make arm64`")
    from skimage import data
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="test-phone-") as tmp:  # not /tmp: see arm64
        folder = stage(bundle[0], Path(tmp) / "phone")
        video = write_pan_video(data.astronaut(), Path(tmp) / "pan.avi", frames=12)
        summary = run_phone_folder(folder, video, "cortex-a76", frames=5)
    assert summary["frames"] == 5 and summary["backend"] == "tflite" and summary["dropped_frames"] == 0


def _flip_a_weight(package: Path):
    """One float of the first weight blob's data set to 100, in place (weight.bin: a 64-byte
    header, then per blob 64 bytes of metadata whose u64 at 16 is the data's offset)."""
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weights.read_bytes())
    size, offset = (int.from_bytes(data[64 + k:72 + k], "little") for k in (8, 16))
    at = offset + (size // 2) // 4 * 4
    data[at:at + 4] = np.float32(100.0).tobytes()
    weights.write_bytes(bytes(data))


def test_coreml_files_are_checked_by_the_reference_evaluator(bundle, tmp_path):
    """Without emulation (no CPUs): each Core ML file against the fp32 ONNX file of its width
    and resolution, on the fixed frames; one weight changed and the file re-signed fails."""
    folder = shutil.copytree(bundle[0], tmp_path / "bundle")
    rows = verify(folder, cpus=(), record=False)
    coreml = {a["file"] for a in load_manifest(folder)["artifacts"] if a["format"] == "coreml"}
    assert {r["file"] for r in rows} == coreml and all(r["cpu"] == REFERENCE for r in rows)
    assert all(r["result"].startswith("within") for r in rows), rows
    assert min(r["psnr_db"] for r in rows if r["precision"] == "fp32") >= 100

    manifest = json.loads((folder / MANIFEST).read_text())
    tampered = next(a for a in manifest["artifacts"] if a["format"] == "coreml" and a["precision"] == "fp32")
    _flip_a_weight(folder / tampered["file"])
    for a in manifest["artifacts"]:
        if a["file"] == tampered["file"]:
            a["sha256"] = sha256_path(folder / a["file"])  # re-signed: the hash alone cannot tell
    (folder / MANIFEST).write_text(json.dumps(manifest))
    failed = [r for r in verify(folder, cpus=(), record=False) if r["result"].startswith("failed")]
    assert failed and {r["file"] for r in failed} == {tampered["file"]}


@pytest.mark.skipif(__import__("platform").system() != "Darwin", reason="Core ML predicts on macOS only")
def test_on_a_mac_core_ml_itself_meets_the_floors(bundle, tmp_path):
    rows = verify(shutil.copytree(bundle[0], tmp_path / "bundle"), cpus=(), record=False)
    mac = [r for r in rows if r["cpu"] == "Core ML on this Mac"]
    assert mac and all(r["result"].startswith("within") for r in mac), mac


def test_verify_coreml_alone_needs_no_emulation(bundle):
    done = run_cli("verify", "--bundle", bundle[0], "--formats", "coreml", "--no-record")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("reference evaluator") >= 4 and "qemu" not in done.stdout
