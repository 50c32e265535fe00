"""A user's first hour: the places where the README's tour stopped a new user."""
import os
import subprocess
import sys

from calibration.tiers import recommend
from runtimes.bench_report import summary_lines

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
    rec = recommend(results, placement, TIERS)["desktop"]
    assert (rec["format"], rec["precision"], rec["e2e_p50_ms"]) == ("tflite", "int8", 15.2)
    better = [_result("onnx", "int8", 30.0, 33.0), _result("tflite", "int8", 15.2, 31.0)]
    assert recommend(better, placement, TIERS)["desktop"]["format"] == "onnx"  # 2 dB is worth 2x


def test_a_stated_tier_prints_measured_and_estimated_figures_apart():
    placement = {"tier": "low", "estimated_peak_gflops": 50.0, "method": "given with --tier"}
    recs = recommend([_result("tflite", "int8", 58.9, 30.0)], placement, TIERS)
    report = {"machine": {"model": "x", "arch": "x86_64", "threads": 2, "cores": 2, "emulation": "none"},
              "placement": placement, "peers": [], "recommendations": recs}
    lines = {line.split(":")[0]: line for line in summary_lines(report)}
    assert "e2e 58.9 ms measured here" in lines["recommended for low"]
    desktop = lines["recommended for desktop"]
    assert "e2e 11.78 ms estimated" in desktop and "from 58.9 ms measured here" in desktop, desktop
