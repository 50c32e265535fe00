"""Self-tuning on first use (runtimes/autotune.py): the fastest file that keeps the bundle's
fidelity floor on this device is picked, once per device and file."""
import json
import time

import numpy as np
import pytest
from PIL import Image

from animeedge.mobile_app.session import AppSession
from animeedge.runtimes import autotune
from animeedge.runtimes.autotune import builtin_frame, cache_file, tune
from animeedge.runtimes.load import load
from animeedge.runtimes.manifest import load_manifest
from conftest import BUNDLE_RES


def _manifest(*runtimes, width=0.5, resolution=64):
    arts = [{"format": f, "precision": p, "width": width, "resolution": resolution, "resolutions": [resolution],
             "sha256": f"{f}{p}".ljust(64, "0"), "quality": {"psnr_db": 30.0}} for f, p in runtimes]
    return {"min_psnr_db": 30.0, "artifacts": arts}


class FakeStylizer:
    """A runtime whose time per frame and whose picture are set by the test."""
    def __init__(self, ms, noise=0.0):
        self.ms, self.noise = ms, noise

    def __call__(self, frame):
        time.sleep(self.ms / 1000)
        noise = np.random.default_rng(0).normal(0, self.noise, frame.shape)
        return (frame + noise).clip(0, 255).astype(np.uint8)


def _opener(table, opened=None):
    def open_artifact(a):
        if opened is not None:
            opened.append((a["format"], a["precision"]))
        return FakeStylizer(*table[(a["format"], a["precision"])])
    return open_artifact


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIMEEDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(autotune, "runs_here", lambda fmt: fmt != "coreml")
    return tmp_path / "cache" / "autotune.json"


@pytest.mark.parametrize("int8_ms,fp32_ms,expected", [(2, 8, "int8"), (8, 2, "fp32")])
def test_the_faster_precision_on_this_device_is_picked(int8_ms, fp32_ms, expected):
    """int8 beats fp32 with 8-bit dot products (VNNI, ARM dotprod) and loses without them."""
    table = {("onnx", "int8"): (int8_ms,), ("onnx", "fp32"): (fp32_ms,)}
    choice = tune(_manifest(("onnx", "fp32"), ("onnx", "int8")), 0.5, 64, _opener(table))
    assert choice.artifact["precision"] == expected and "the fastest on this device" in choice.why


def test_a_candidate_that_misses_the_floor_here_is_not_used(cache):
    table = {("onnx", "int8"): (1, 40.0), ("onnx", "fp32"): (6,), ("tflite", "fp32"): (8,)}
    choice = tune(_manifest(("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32")), 0.5, 64, _opener(table))
    assert (choice.artifact["format"], choice.artifact["precision"]) == ("onnx", "fp32")
    assert "onnx/int8 missed the 30 dB floor here" in choice.why
    results = next(iter(json.loads(cache.read_text()).values()))["results"]
    assert results["onnx/int8"]["passed"] is False and results["onnx/int8"]["psnr_db"] < 30


def test_the_answer_is_cached_and_reused():
    manifest, opened = _manifest(("onnx", "fp32"), ("onnx", "int8")), []
    table = {("onnx", "int8"): (2,), ("onnx", "fp32"): (8,)}
    start = time.perf_counter()
    tune(manifest, 0.5, 64, _opener(table, opened))
    assert time.perf_counter() - start < 1.5 * autotune.BUDGET_SECONDS + 0.5  # the stated budget, loosely
    assert len(opened) == 2
    again = tune(manifest, 0.5, 64, _opener(table, opened))
    assert len(opened) == 2 and again.artifact["precision"] == "int8" and "cached" in again.why


def test_a_changed_file_or_another_device_measures_again(monkeypatch):
    manifest, opened = _manifest(("onnx", "fp32"), ("onnx", "int8")), []
    table = {("onnx", "int8"): (2,), ("onnx", "fp32"): (8,)}
    tune(manifest, 0.5, 64, _opener(table, opened))
    manifest["artifacts"][1]["sha256"] = "f" * 64  # re-exported
    tune(manifest, 0.5, 64, _opener(table, opened))
    assert len(opened) == 4
    monkeypatch.setattr(autotune, "machine", lambda: {"cpu": "another CPU", "flags": ["asimddp"], "cores": 8})
    tune(manifest, 0.5, 64, _opener(table, opened))
    assert len(opened) == 6


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"x": {"pick": 7}}'])
def test_a_corrupt_cache_is_ignored_with_a_warning(cache, content, capsys):
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    table = {("onnx", "int8"): (2,), ("onnx", "fp32"): (8,)}
    choice = tune(_manifest(("onnx", "fp32"), ("onnx", "int8")), 0.5, 64, _opener(table))
    assert choice.artifact["precision"] == "int8"
    err = capsys.readouterr().err
    assert ("unreadable self-tuning cache ignored" in err) == (content != b'{"x": {"pick": 7}}')
    assert json.loads(cache.read_text())  # rewritten whole


def test_a_cached_pick_the_bundle_no_longer_has_is_not_trusted(cache):
    manifest = _manifest(("onnx", "fp32"), ("onnx", "int8"))
    key = autotune.cache_key(autotune.candidates(manifest, 0.5, 64), None)
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({key: {"pick": ["coreml", "int8"]}}))
    table = {("onnx", "int8"): (8,), ("onnx", "fp32"): (2,)}
    assert tune(manifest, 0.5, 64, _opener(table)).artifact["precision"] == "fp32"


def test_load_auto_runs_a_real_bundle_and_caches_its_pick(bundle, cache):
    path, _ = bundle
    stylizer = load(path, 0.5, BUNDLE_RES, "auto", "auto")
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert [stylizer.backend, stylizer.precision] == entry["pick"]
    assert {"onnx/fp32", "onnx/int8", "tflite/fp32", "tflite/int8"} <= set(entry["results"])
    assert all(r["passed"] for k, r in entry["results"].items() if k.endswith("fp32"))
    assert stylizer(builtin_frame()).shape == builtin_frame().shape
    onnx = load(path, 0.5, BUNDLE_RES, "onnx", "auto")  # one format asked: its precisions only
    assert onnx.backend == "onnx"


def test_the_apps_ladder_merges_runtimes_of_equal_quality_and_serves_each_level_with_the_fastest(bundle, cache,
                                                                                              tmp_path):
    path, _ = bundle
    Image.fromarray(builtin_frame()).save(tmp_path / "frame.png")
    session = AppSession(path, source=str(tmp_path / "frame.png"), auto=True)
    manifest = load_manifest(path)
    pairs = {(a["width"], a["resolution"]) for a in manifest["artifacts"] if a["format"] != "coreml"}
    levels = session.levels()
    assert len({(lv.width, lv.resolution) for lv in levels}) == len(levels) <= len(pairs)
    config = session.config_for(levels[-1])
    picks = [e["pick"] for e in json.loads(cache.read_text()).values()
             if (e["width"], e["resolution"]) == (levels[-1].width, levels[-1].resolution)]
    assert picks == [[config.backend, config.precision]]
