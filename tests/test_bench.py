"""runtimes.load over files and bundles, the benchmark, its JSON schema, the tier logic."""
import json
import platform
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from animeedge.bench import Bench, bench_frame, fastest_candidates, ratios, write_outputs
from animeedge.runtimes.probe import PROBE_GFLOP, cpu_description, run_probe
from animeedge.runtimes.tiers import load_tiers, place, tier_pick, tier_latency
from conftest import BUNDLE_RES, run_cli, synthetic_image
from animeedge.generator.animeganv2 import animeganv2
from animeedge.generator.inference import TorchStylizer
from animeedge.runtimes.bench import measure, summary, timed_runs
from animeedge.runtimes.bench_report import BENCH_SCHEMA, _ratio_lines, pareto, stage_table, validate_report
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.load import Stylizer, load
from animeedge.runtimes.manifest import load_manifest

RES = BUNDLE_RES


def _artifact(out, fmt, precision="fp32", width=1.0):
    return next(a for a in load_manifest(out)["artifacts"]
                if (a["format"], a["precision"], a["width"]) == (fmt, precision, width))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_each_backend_runs_a_file_in_and_outside_its_bundle(bundle, tmp_path, fmt):
    out, model = bundle
    frame = synthetic_image(np.random.default_rng(1), 40)
    from_bundle = load(out, 0.5, RES, fmt, "int8")(frame)
    file = out / _artifact(out, fmt, "int8", 0.5)["file"]
    from_file = load(file, resolution=RES)(frame)  # the manifest entry next to it is used and checked
    loose = tmp_path / file.name
    shutil.copy(file, loose)
    described = load(loose, resolution=RES)  # no manifest: layout, size, int8 parameters read from the file
    assert described.artifact["input"]["layout"] == ("NHWC" if fmt == "tflite" else "NCHW")
    assert from_bundle.shape == frame.shape and from_bundle.dtype == np.uint8
    np.testing.assert_array_equal(from_file, from_bundle)
    np.testing.assert_array_equal(described(frame), from_bundle)
    reference = TorchStylizer(model, 0.5, RES)(frame)
    assert np.abs(from_bundle.astype(int) - reference).mean() < 6  # int8 stays close to the torch reference


def test_torch_reference_and_coreml_through_load(bundle):
    out, model = bundle
    frame = synthetic_image(np.random.default_rng(2), 32)
    np.testing.assert_array_equal(load(model, 1.0, RES, "torch")(frame), TorchStylizer(model, 1.0, RES)(frame))
    if platform.system() != "Darwin":
        with pytest.raises(UserError, match="macOS"):
            load(out, 1.0, RES, "coreml", "fp32")


def test_tampered_file_is_refused_when_loaded_alone(bundle, tmp_path):
    out, _ = bundle
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    file = copy / _artifact(copy, "tflite")["file"]
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        load(file)
    stylizer = load(copy, 1.0, RES, "onnx", "fp32")
    with pytest.raises(ValueError, match="uint8 RGB"):
        stylizer(np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        stylizer([[0, 0, 0]])


def test_timing_follows_benchmark_model_conventions():
    calls = []
    times = timed_runs(lambda: calls.append(1), warmup=3, runs=7, min_seconds=0.05)
    assert len(calls) == 3 + len(times) and len(times) >= 7
    s = summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["p50_ms"] == 3.0 and s["mean_ms"] == 22.0 and s["fps"] == round(1000 / 22, 1)
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= 100.0


@pytest.fixture(scope="module")
def report(bundle, tmp_path_factory):
    photo = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(synthetic_image(np.random.default_rng(4), 96)).save(photo)
    return Bench(bundle[0], tier="auto", warmup=1, runs=3, min_seconds=0.0, threads=1, peers=False, photo=photo,
                 progress=False).run()


@pytest.mark.parametrize("fmt, precision", [("onnx", "fp32"), ("tflite", "int8")])
def test_the_stages_add_up_to_the_end_to_end_time(bundle, fmt, precision):
    """Each stage of a camera frame, timed on its own, on a real file: together they are the
    end-to-end figure (within 10%: no work outside the stages, no double counting). A
    consistency check, not a speed threshold; the best of 3 attempts, as a shared 2-core
    machine's slow spell can spoil one."""
    frame = cv2.resize(synthetic_image(np.random.default_rng(6), 160), (640, 480))  # a VGA camera frame
    gaps = []
    for _ in range(3):
        m = measure(lambda: load(bundle[0], 0.5, RES, fmt, precision, threads=1), frame, warmup=3, runs=60,
                    min_seconds=0.3)
        stages, e2e = m["stages_ms"], m["e2e"]["p50_ms"]
        assert list(stages) == list(Stylizer.STAGES) and stages["invoke"] > 0 and stages["resize_in"] > 0
        gaps.append(abs(sum(stages.values()) - e2e) / e2e)
        if gaps[-1] <= 0.10:
            break
    assert min(gaps) <= 0.10, (gaps, stages, e2e)
    lines = stage_table([{"format": fmt, "precision": precision, "width": 0.5, "resolution": RES, "p50_ms": 1.0,
                          "e2e_p50_ms": e2e, "stages_ms": stages}])
    assert lines[0].startswith("| format | prec | width | res | resize_in |") and len(lines) == 3


def test_bench_frame_falls_back_when_the_bundles_photos_are_not_here():
    frame, name = bench_frame({"calibration": {"evaluation": ["calibrated_elsewhere.png"]}})
    assert frame.shape == (480, 640, 3) and name.startswith("scikit-image astronaut")


def test_bench_reports_every_runnable_artifact_in_the_documented_schema(report, bundle, tmp_path):
    manifest = load_manifest(bundle[0])
    runnable = [a for a in manifest["artifacts"] if a["format"] != "coreml" or platform.system() == "Darwin"]
    assert len(report["results"]) == len(runnable)
    not_here = {a["file"] for a in manifest["artifacts"]} - {a["file"] for a in runnable}
    assert {s["file"] for s in report["skipped"]} == not_here and len(report["skipped"]) == len(not_here)
    for r in report["results"]:
        assert 0 < r["p50_ms"] <= r["p90_ms"] and r["model"]["runs"] >= 3
        assert r["e2e_p50_ms"] > 0 and r["peak_rss_mb"] > 10 and r["init_ms"] > 0
        assert r["quality_psnr_db"] is not None
        assert list(r["stages_ms"]) == list(Stylizer.STAGES) and min(r["stages_ms"].values()) >= 0
    assert report["machine"]["threads"] == 1 and report["machine"]["emulation"] == "none"
    assert report["probe"]["gflops"] > 0 and report["placement"]["tier"] in report["tiers"]
    assert set(report["recommendations"]) == set(load_tiers()["tiers"])
    validate_report(json.loads(json.dumps(report)))  # what a reader of the file sees
    write_outputs(report, tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png")
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["p50_ms"] > 0
    assert "| format |" in (tmp_path / "b.md").read_text()
    assert "| resize_in | to_input | prepare | invoke |" in (tmp_path / "b.md").read_text()
    png = np.asarray(Image.open(tmp_path / "b.png").convert("L"), dtype=float)
    assert png.std() > 5  # a drawn plot, not a blank canvas


def test_schema_rejects_a_report_without_the_keys_tools_read(report):
    import fastjsonschema
    assert {"machine", "results", "peers", "recommendations"} <= set(BENCH_SCHEMA["required"])
    broken = json.loads(json.dumps(report))
    del broken["results"][0]["e2e_p50_ms"]
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate_report(broken)


TIERS = {"probe_efficiency": {"onnx": 0.5, "tflite": 0.5},
         "tiers": {"low": {"fps": 10, "budget_ms": 100.0, "peak_gflops": 50.0},
                   "mid": {"fps": 20, "budget_ms": 50.0, "peak_gflops": 100.0},
                   "high": {"fps": 20, "budget_ms": 50.0, "peak_gflops": 200.0}}}


def _result(fmt, width, res, ms, quality):
    return {"format": fmt, "precision": "fp32", "width": width, "resolution": res, "e2e_p50_ms": ms,
            "quality_psnr_db": quality}


def test_placement_uses_the_probe_and_picks_the_highest_tier_reached():
    assert place({"runtime": "onnx", "gflops": 60.0, "threads": 4}, TIERS)["tier"] == "mid"  # peak 120
    assert place({"runtime": "onnx", "gflops": 150.0, "threads": 4}, TIERS)["tier"] == "high"
    assert place({"runtime": "onnx", "gflops": 5.0, "threads": 4}, TIERS)["tier"] == "low"  # below all: the lowest


def test_tier_recommendation_for_a_fake_table():
    results = [_result("onnx", 1.0, 512, 90.0, 40.0), _result("tflite", 1.0, 256, 30.0, 35.0),
               _result("tflite", 0.5, 256, 12.0, 31.0), _result("tflite", 0.25, 128, 4.0, 22.0),
               _result("onnx", 0.25, 128, 3.0, None)]  # unrated: never recommended
    placement = {"tier": "mid", "estimated_peak_gflops": 100.0}
    rec = tier_pick(results, placement, TIERS)
    # mid is this device: measured latencies; best quality within 50 ms
    assert (rec["mid"]["width"], rec["mid"]["resolution"], rec["mid"]["basis"]) == (1.0, 256, "measured")
    # high has twice the peak: 90 ms scales to 45 ms and fits
    assert (rec["high"]["format"], rec["high"]["resolution"], rec["high"]["e2e_p50_ms"]) == ("onnx", 512, 45.0)
    # low has half the peak: 30 ms -> 60, 12 -> 24; 90 -> 180 misses its 100 ms
    assert (rec["low"]["width"], rec["low"]["resolution"], rec["low"]["e2e_p50_ms"]) == (1.0, 256, 60.0)
    assert tier_latency(10.0, "low", placement, TIERS) == (20.0, "scaled x2.00 (peak ratio)")
    slow = [_result("tflite", 1.0, 256, 500.0, 35.0), _result("tflite", 0.25, 128, 200.0, 22.0)]
    assert rec_fastest(slow, placement) == (0.25, False)


def rec_fastest(results, placement):
    r = tier_pick(results, placement, TIERS)["mid"]
    return r["width"], r["fits"]


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 30), (5, 25), (20, 29), (30, 35), (5, 20)]
    assert pareto(points) == [(5, 25), (10, 30), (30, 35)]


def test_ratios_and_roofline():
    results = [dict(_result("tflite", 1.0, 256, 40.0, 30.0), p50_ms=40.0, gmacs=4.0),
               dict(_result("tflite", 0.25, 256, 9.0, 25.0), p50_ms=5.0, gmacs=0.3)]
    peers = [{"name": "animeganv2", "backend": "onnxruntime", "p50_ms": 300.0},
             {"name": "animeganv2", "backend": "litert", "p50_ms": 200.0}]
    out = ratios(results, peers, {"peak_gflops": 400.0})
    assert out["speedup_vs_animeganv2"] == {"x": 40.0, "peer_backend": "litert", "peer_p50_ms": 200.0,
                                            "peer_p50_ms_rounds": [200.0], "x_rounds": [40.0]}
    assert out["roofline_r1_fp32"]["gflops"] == 200.0 and out["roofline_r1_fp32"]["fraction"] == 0.5
    # timed in three rounds: each side's best round, whichever round it came from
    rounds = {"fastest": [5.0, 10.0, 4.0], "animeganv2": [200.0, 150.0, 600.0]}
    out = ratios(results, peers, {"peak_gflops": 400.0}, rounds)
    assert out["fastest_256"]["p50_ms"] == 4.0 and out["fastest_256"]["p50_ms_rounds"] == [5.0, 10.0, 4.0]
    assert out["speedup_vs_animeganv2"]["x"] == 37.5 and out["speedup_vs_animeganv2"]["x_rounds"] == [40.0, 15.0, 150.0]
    lines = _ratio_lines(out)
    assert "4.00 ms" in lines[0] and "5.00 ms / 10.00 ms / 4.00 ms" in lines[0]
    assert lines[1].startswith("37.5x faster than animeganv2") and "40.0x / 15.0x / 150.0x" in lines[1]


def test_fastest_and_each_peers_best_runtime_are_timed_again_in_rounds(bundle, report, monkeypatch, tmp_path):
    import animeedge.bench
    monkeypatch.setattr(animeedge.bench, "PEER_RESOLUTION", RES)  # the test bundle's size stands in for 256 px
    Image.fromarray(synthetic_image(np.random.default_rng(5), 48)).save(tmp_path / "photo.png")
    b = Bench(bundle[0], tier="high", warmup=0, runs=2, min_seconds=0.0, threads=1, photo=tmp_path / "photo.png",
              progress=False, rounds=3)
    onnx = bundle[0] / _artifact(bundle[0], "onnx")["file"]
    jobs = [("peer", "onnxruntime", load, {"path": onnx, "threads": 1}, {}),
            ("peer", "litert", load, {"path": "nowhere.tflite"}, {})]  # slower in round 1: never timed again
    rows = [{"name": "peer", "backend": "onnxruntime", "p50_ms": 50.0},
            {"name": "peer", "backend": "litert", "p50_ms": 900.0}]
    times = b._rounds(report["results"], jobs, rows)
    fastest = min(r["p50_ms"] for r in report["results"] if r["resolution"] == RES)
    candidates = [c["p50_ms_rounds"] for c in times["candidates"]]
    assert candidates[0][0] == fastest and times["peer"][0] == 50.0
    assert all(len(t) == 3 for t in candidates) and len(times["peer"]) == 3
    assert all(0 < t < 50.0 for t in sum((c[1:] for c in candidates), times["peer"][1:]))  # measured again
    # the fastest is the candidate with the lowest round, whichever round 1 favoured
    assert min(times["fastest"]) == min(min(c) for c in candidates)
    assert times["fastest"] in candidates and times["fastest_config"]["resolution"] == RES


def test_fastest_candidates_are_those_a_slow_spell_may_have_hidden():
    results = [dict(_result("tflite", w, 256, 9.0, 25.0), p50_ms=p, precision=q)
               for w, p, q in [(0.25, 12.0, "int8"), (0.25, 8.0, "fp16"), (0.5, 15.0, "int8"), (1.0, 40.0, "fp32"),
                               (0.25, 9.0, "fp32"), (0.75, 16.0, "int8")]]
    results.append(dict(_result("tflite", 0.25, 128, 9.0, 25.0), p50_ms=2.0))  # another resolution
    picked = [(r["width"], r["p50_ms"]) for r in fastest_candidates(results)]
    assert picked == [(0.25, 8.0), (0.25, 9.0), (0.25, 12.0), (0.5, 15.0)]  # within 2x, at most 4
    assert [r["p50_ms"] for r in fastest_candidates(results, within=1.2)] == [8.0, 9.0]


def test_probe_and_cpu_peak():
    probe = run_probe(threads=1, runtime="tflite", seconds=0.2)
    assert probe["gflops"] == round(PROBE_GFLOP / probe["p50_ms"] * 1000, 1) and probe["gflops"] > 0.5
    cpu = cpu_description(1)
    if "peak_gflops" in cpu:  # x86 with FMA, or a known Arm core
        assert 1 < cpu["peak_gflops"] < 2000 and "FLOP/cycle" in cpu["peak_formula"]


def test_a_clock_loop_that_claims_21_ghz_is_bounded_and_flagged(monkeypatch):
    from animeedge.runtimes import probe
    monkeypatch.setattr(probe, "_measured_clock", lambda: 21.3)  # what immediate adds gave on a Xeon
    monkeypatch.setattr(probe, "_tsc_clock", lambda: 2.1)
    cpu = probe.cpu_description(1)
    if "clock" not in cpu:
        pytest.skip("no x86 /proc/cpuinfo here")
    assert cpu["clock"]["agree"] is False and cpu["clock"]["ghz"] == 2.1 and "21.3 GHz" in cpu["clock"]["source"]
    assert "2.10 GHz" in cpu["peak_formula"]
    assert probe.clock_check(7.0, None, None)["ghz"] is None  # no nominal clock: no figure rather than a wrong one
    assert probe.clock_check(3.7, 2.6, 2.6) == {"loop_ghz": 3.7, "tsc_ghz": 2.6, "cpuinfo_ghz": 2.6, "ghz": 3.7,
                                                "source": "measured: dependent-multiply loop", "agree": True}
    real = probe.measured_clock_ghz()
    assert real is None or 0.5 < real <= probe.MAX_GHZ


def test_animeganv2_peer_has_the_published_size():
    net = animeganv2()
    assert sum(p.numel() for p in net.parameters()) == 2_143_552  # 2.14M
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, 64, 64))
    assert abs(counter.get_total_flops() / 2e9 * 16 - 26.3) < 0.1  # MACs scale with pixels: 26.3 G at 256^2


def test_runtimes_and_tiers_do_not_import_torch(bundle):
    code = ("import sys, numpy as np; from animeedge.runtimes.load import load; import animeedge.runtimes.bench, animeedge.runtimes.bench_report, "
            "animeedge.runtimes.tiers, animeedge.runtimes.probe; "
            f"s = load({str(bundle[0])!r}, 1.0, {RES}, 'tflite', 'fp32'); s(np.zeros((20, 30, 3), np.uint8)); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("args,message", [
    (["--bundle", "nowhere"], "not a bundle"),
    (["--bundle", "{bundle}", "--tier", "ultra"], "unknown tier"),
    (["--bundle", "{bundle}", "--json", "{bundle}/x.json"], "outside the bundle"),
])
def test_bench_cli_bad_input(bundle, args, message):
    result = run_cli("bench", *[a.format(bundle=bundle[0]) for a in args])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "601"])
def test_min_seconds_is_bounded(seconds, capsys):
    from animeedge.cli import build_parser
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["bench", "--bundle", "b", "--min-seconds", seconds])
    assert refused.value.code == 2 and "--min-seconds: expected a number from 0 to 600" in capsys.readouterr().err


def test_the_animeganv2_peer_runs_through_the_torch_stylizer():
    from animeedge.peers import AnimeGANv2Stylizer
    out = AnimeGANv2Stylizer(64, 2)(np.zeros((48, 40, 3), np.uint8))
    assert out.shape == (48, 40, 3)
