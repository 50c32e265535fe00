"""A user's first hour: the places where the README's tour stopped a new user."""
import json
import os
import subprocess
import sys

from animeedge.runtimes.tiers import tier_pick
from animeedge.runtimes.bench_report import summary_lines

TIERS = {"probe_efficiency": {"onnx": 0.5, "tflite": 0.5},
         "tiers": {"low": {"budget_ms": 66.7, "peak_gflops": 50.0}, "desktop": {"budget_ms": 33.3, "peak_gflops": 250.0}}}


def _result(fmt, precision, ms, quality, resolution=256):
    return {"format": fmt, "precision": precision, "width": 1.0, "resolution": resolution, "e2e_p50_ms": ms,
            "quality_psnr_db": quality}


def test_info_json_into_a_reader_that_left_ends_quietly():
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    child = subprocess.Popen([sys.executable, "-m", "animeedge", "info", "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    child.stdout.close()  # like `| head -c 0`: the reader is gone before anything is written
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=300) != 0
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_an_invisible_quality_gain_does_not_buy_a_slower_configuration():
    results = [_result("onnx", "int8", 53.9, 31.05), _result("tflite", "int8", 15.2, 31.00),
               _result("tflite", "fp32", 10.0, 24.0)]
    placement = {"tier": "desktop", "estimated_peak_gflops": 250.0}
    rec = tier_pick(results, placement, TIERS)["desktop"]
    assert (rec["format"], rec["precision"], rec["e2e_p50_ms"]) == ("tflite", "int8", 15.2)
    better = [_result("onnx", "int8", 30.0, 33.0), _result("tflite", "int8", 15.2, 31.0)]
    assert tier_pick(better, placement, TIERS)["desktop"]["format"] == "onnx"  # 2 dB is worth 2x


def test_a_stated_tier_prints_measured_and_estimated_figures_apart():
    placement = {"tier": "low", "estimated_peak_gflops": 50.0, "method": "given with --tier"}
    recs = tier_pick([_result("tflite", "int8", 58.9, 30.0)], placement, TIERS)
    report = {"machine": {"model": "x", "arch": "x86_64", "threads": 2, "cores": 2, "emulation": "none"},
              "placement": placement, "peers": [], "recommendations": recs}
    lines = {line.split(":")[0]: line for line in summary_lines(report)}
    assert "e2e 58.9 ms measured here" in lines["recommended for low"]
    desktop = lines["recommended for desktop"]
    assert "e2e 11.78 ms estimated" in desktop and "from 58.9 ms measured here" in desktop, desktop


def _no_research_data(tmp_path) -> dict:
    return {"ANIMEEDGE_DATA": str(tmp_path / "no_data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _run(args, env_extra):
    env = os.environ | {"PYTHONWARNINGS": "ignore"} | env_extra
    return subprocess.run([sys.executable, "-m", "animeedge", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_compress_without_research_data_names_the_flag(tmp_path):
    result = _run(["compress", "--out", tmp_path / "m.safetensors", "--steps", "2"], _no_research_data(tmp_path))
    assert result.returncode != 0
    assert "--photos MY_PHOTOS/" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_export_without_calibration_photos_uses_the_built_in_samples(tmp_path):
    out = tmp_path / "bundle"
    result = _run(["export", "--out", out, "--formats", "onnx", "--precisions", "fp32,int8", "--widths", "1.0",
                   "--resolutions", "32"], _no_research_data(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "int8 calibrated on 8 scikit-image sample pictures" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert "scikit-image" in manifest["calibration"]["source"]
    assert len(manifest["calibration"]["photos"]) == 4 and len(manifest["calibration"]["evaluation"]) == 4
    for noise in ("JAX", "Failed to load", "training mode", "Statistics collection", "Applying Transformations", "W1",
                  "XNNPACK"):
        assert noise not in result.stderr, result.stderr


def test_stylize_shows_the_runtimes_chatter_only_with_verbose(bundle, tmp_path):
    from PIL import Image
    Image.new("RGB", (40, 30), (200, 120, 90)).save(tmp_path / "photo.png")
    bundle_dir, _ = bundle
    args = ["stylize", tmp_path / "photo.png", "--model", bundle_dir, "--backend", "tflite", "--precision", "fp32",
            "--width", "0.5"]
    quiet = _run([*args, "--out", tmp_path / "a"], {})
    loud = _run([*args, "--out", tmp_path / "b", "--verbose"], {})
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "XNNPACK" not in quiet.stderr and "XNNPACK" in loud.stderr, (quiet.stderr, loud.stderr)


def test_a_missing_input_is_that_files_error_and_the_rest_run(tmp_path):
    from PIL import Image
    Image.new("RGB", (40, 30), (200, 120, 90)).save(tmp_path / "photo.png")
    result = _run(["stylize", tmp_path / "photo.png", tmp_path / "nosuch.jpg", "--out", tmp_path / "out",
                   "--width", "0.25"], {})
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "out" / "photo.png").is_file()
    assert "nosuch.jpg: no such file or folder" in result.stderr and "Traceback" not in result.stderr


def test_stylize_summarises_and_warns_once_about_upscaling(tmp_path):
    from PIL import Image
    for name in ("a.png", "b.png"):
        Image.new("RGB", (300, 200), (90, 120, 200)).save(tmp_path / name)
    result = _run(["stylize", tmp_path / "a.png", tmp_path / "b.png", "--out", tmp_path / "out", "--width", "0.25",
                   "--resolution", "64"], {})
    assert result.returncode == 0, result.stderr
    assert f"stylized 2 of 2 file(s) into {tmp_path / 'out'}" in result.stdout
    assert "width 0.25, 64 px" in result.stdout, result.stdout
    assert result.stderr.count("enlarged 4.7x") == 1, result.stderr


def test_with_no_width_the_widest_the_bundle_holds_runs_and_is_named(bundle, tmp_path):
    import shutil
    from PIL import Image
    bundle_dir, _ = bundle
    small = tmp_path / "small"
    shutil.copytree(bundle_dir, small)
    manifest = json.loads((small / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["width"] == 0.5]
    (small / "manifest.json").write_text(json.dumps(manifest))
    Image.new("RGB", (40, 30), (200, 120, 90)).save(tmp_path / "photo.png")
    result = _run(["stylize", tmp_path / "photo.png", "--model", small, "--out", tmp_path / "out"], {})
    assert result.returncode == 0, result.stderr
    assert "width 0.5," in result.stdout, result.stdout
    wrong = _run(["stylize", tmp_path / "photo.png", "--model", small, "--out", tmp_path / "out2", "--width", "0.3"],
                 {})
    assert wrong.returncode != 0 and "it has 0.5" in wrong.stderr, wrong.stderr


def test_bench_states_each_peer_once_and_times_a_steady_peer_once():
    from animeedge.bench import estimate_minutes, ratios, stable
    from animeedge.runtimes.bench_report import _ratio_lines
    assert stable({"p50_ms": 1000.0, "p90_ms": 1050.0}) and not stable({"p50_ms": 1000.0, "p90_ms": 1400.0})
    results = [{"format": "tflite", "precision": "int8", "width": 0.25, "resolution": 256, "p50_ms": 10.0,
                "gmacs": 0.3}]
    peers = [{"name": "ours_r1_torch_eager", "backend": "torch", "p50_ms": 434.18}]
    out = ratios(results, peers, {}, {"ours_r1_torch_eager": [1258.05, 434.18], "fastest": [10.0, 11.0]})
    line = next(x for x in _ratio_lines(out) if "faster than" in x)
    assert line.startswith("43.4x faster than ours_r1_torch_eager") and "1258" not in line and "434" not in line
    assert estimate_minutes(72, 2, 1.0) == 19 and estimate_minutes(2, 0, 1.0) == 1
