"""Whose numbers they are: the machine fingerprint (runtimes/machine.py), its record in the
manifest, `animeedge info` on a bundle or an exported file, bench's header, and the caveat on
tier estimates."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import animeedge.bench
from animeedge.bench import Bench
from animeedge.runtimes import machine as machine_module
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.machine import describe, differs_note, machine, same_machine
from animeedge.runtimes.manifest import load_manifest
from animeedge.runtimes.tiers import caveat_lines, load_tiers, precision_caveat, tier_pick
from conftest import BUNDLE_RES, BUNDLE_RES2, run_cli, synthetic_image

ELSEWHERE = {"cpu": "Intel(R) Xeon(R) Platinum 8480+", "vendor": "GenuineIntel", "cpu_id": "family 6 model 143",
             "flags": ["amx_int8", "amx_tile", "avx2", "avx512_vnni", "avx512f", "avx_vnni", "fma"], "cores": 4,
             "os": "Linux", "arch": "x86_64", "libraries": {"onnxruntime": "1.20.0"}, "source": "/proc/cpuinfo"}


def _rewritten(bundle, folder, change):
    """A copy of the bundle's manifest alone, changed by `change` (info reads no model file)."""
    folder.mkdir(exist_ok=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _info_json(path) -> dict:
    result = run_cli("info", "--model", path, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# the fingerprint


def test_the_fingerprint_has_the_fields_and_compares_cpu_flags_and_cores():
    m = machine()
    assert {"cpu", "flags", "cores", "os", "arch", "libraries", "source"} <= set(m)
    assert m["cores"] >= 1 and all(isinstance(f, str) for f in m["flags"])
    assert "numpy" in m["libraries"]
    assert same_machine(m, machine()) and machine() is not machine()  # a fresh copy each time
    assert same_machine(m, m | {"libraries": {}})  # library versions are not the machine
    assert not same_machine(m, m | {"flags": m["flags"] + ["avx_vnni"]})
    assert not same_machine(m, m | {"cores": m["cores"] + 1})
    assert not same_machine(m, m | {"cpu": "another CPU"})
    assert not same_machine(m, None) and not same_machine(None, None) and not same_machine(m, "AMD EPYC")


def test_no_cpuinfo_falls_back_on_platform(monkeypatch, tmp_path):
    monkeypatch.setattr(machine_module, "CPUINFO", tmp_path / "absent")
    machine_module._machine.cache_clear()
    try:
        m = machine()
    finally:
        machine_module._machine.cache_clear()
    assert m["cpu"] and m["cores"] >= 1 and m["os"] and m["arch"]
    assert m["flags"] == [] and m["source"].startswith("platform")
    assert "flags unknown" in describe(m)


ANDROID = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd05

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp i8mm
CPU implementer\t: 0x41
CPU part\t: 0xd41

Hardware\t: Qualcomm Technologies, Inc SM7325
"""


def test_an_arm_phone_is_named_by_its_cores_and_keeps_the_flags_every_core_has(tmp_path):
    (tmp_path / "cpuinfo").write_text(ANDROID)
    found = machine_module._from_cpuinfo(machine_module._blocks(tmp_path / "cpuinfo"))
    assert found["cpu"] == "Qualcomm Technologies, Inc SM7325 (Cortex-A55 x1 + Cortex-A78 x1)"
    assert found["vendor"] == "Arm"
    assert found["flags"] == ["asimd", "asimddp", "asimdhp"]  # i8mm is on one core only


def test_the_fingerprint_needs_no_torch():
    code = ("import sys; from animeedge.runtimes.machine import machine; from animeedge.bundle_info import bundle_info;"
            " machine(); assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# the manifest and `info`


def test_info_on_a_bundle_prints_its_files_and_the_measuring_machine(bundle):
    out, _ = bundle
    manifest = load_manifest(out)
    assert same_machine(manifest["machine"], machine())  # the export recorded this machine
    result = run_cli("info", "--model", out)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for a in manifest["artifacts"]:
        assert a["file"] in text
    assert "widths: 0.5, 1.0" in text and f"resolutions: {BUNDLE_RES}, {BUNDLE_RES2}" in text
    assert "precisions: fp32, int8" in text and "recommended precision: onnx " in text
    assert f"timings measured on: {describe(machine())}: this machine" in text
    assert "rank differently" not in text


def test_info_json_has_the_bundles_fields(bundle):
    out, _ = bundle
    info = _info_json(out)
    assert {"bundle", "files", "formats", "widths", "resolutions", "precisions", "recommended_precision",
            "measured_on", "this_machine", "same_machine", "machine_note"} <= set(info)
    assert info["widths"] == ["0.5", "1.0"] and info["resolutions"] == [BUNDLE_RES, BUNDLE_RES2]
    assert info["precisions"] == ["fp32", "int8"] and info["same_machine"] is True and info["machine_note"] is None
    onnx = next(f for f in info["files"] if f["file"] == "onnx/w0.5_int8.onnx")
    assert (onnx["format"], onnx["precision"], onnx["width"]) == ("onnx", "int8", "0.5")
    assert onnx["resolutions"] == [BUNDLE_RES, BUNDLE_RES2]  # one dynamic file, one row
    assert onnx["size_mb"] > 0 and onnx["fidelity_psnr_db"] == min(onnx["fidelity_psnr_db_by_resolution"].values())
    coreml = [f for f in info["files"] if f["format"] == "coreml"]
    assert coreml and all(f["fidelity_psnr_db"] >= 30 for f in coreml)  # by the reference evaluator
    assert info["measured_on"]["cpu"] == machine()["cpu"]


def test_info_on_an_exported_file_shows_its_bundles_entry(bundle):
    out, _ = bundle
    info = _info_json(out / "onnx" / "w0.5_int8.onnx")
    assert info["file"] == "onnx/w0.5_int8.onnx" and [f["file"] for f in info["files"]] == ["onnx/w0.5_int8.onnx"]
    assert info["same_machine"] is True


def test_info_says_when_the_timings_come_from_another_machine(bundle, tmp_path):
    other = _rewritten(bundle[0], tmp_path / "other", lambda m: m.update(machine=ELSEWHERE))
    result = run_cli("info", "--model", other)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("note: "))
    assert "timings measured on Intel(R) Xeon(R) Platinum 8480+ (amx_int8, amx_tile" in line
    assert f"this machine is {describe(machine())}: int8 vs fp32 can rank differently here" in line
    assert "animeedge bench" in line and 'load(precision="auto")' in line
    info = _info_json(other)
    assert info["same_machine"] is False and info["measured_on"] == ELSEWHERE and "rank differently" in info[
        "machine_note"]


def test_an_old_manifest_without_the_machine_loads_and_info_says_unknown(bundle, tmp_path):
    old = _rewritten(bundle[0], tmp_path / "old", lambda m: m.pop("machine"))
    assert "machine" not in load_manifest(old)
    result = run_cli("info", "--model", old)
    assert result.returncode == 0, result.stderr
    assert "timings measured on: unknown" in result.stdout
    assert "does not record the machine" in result.stdout
    info = _info_json(old)
    assert info["measured_on"] is None and info["same_machine"] is None and info["machine_note"]


def _set(key, value):
    return lambda m: m["machine"].update({key: value})


BAD_MACHINES = {
    "a huge cpu name": _set("cpu", "x" * 100_000),
    "cores as text": _set("cores", "2"),
    "cores zero": _set("cores", 0),
    "cores as a float": _set("cores", 2.5),
    "flags as a string": _set("flags", "avx2 avx512f"),
    "a flag that is an object": _set("flags", [{"avx2": True}]),
    "a huge flag": _set("flags", ["a" * 5000]),
    "too many flags": _set("flags", [f"f{i}" for i in range(500)]),
    "nested extra field": _set("extra", {"deep": [1, 2, 3]}),
    "nested library version": _set("libraries", {"numpy": {"version": "2"}}),
    "a huge library version": _set("libraries", {"numpy": "9" * 10_000}),
    "machine as a string": lambda m: m.update(machine="AMD EPYC, 2 cores"),
    "machine without cpu": lambda m: m["machine"].pop("cpu"),
    "an empty cpu": _set("cpu", ""),
    "infinite cores": _set("cores", float("inf")),
}


@pytest.mark.parametrize("name", list(BAD_MACHINES))
def test_a_bad_machine_field_is_refused_in_one_line(bundle, tmp_path, name):
    bad = _rewritten(bundle[0], tmp_path / "bad", BAD_MACHINES[name])
    with pytest.raises(UserError) as caught:
        load_manifest(bad)
    message = str(caught.value)
    assert message.startswith("invalid manifest") and "\n" not in message and len(message) < 400


def test_info_refuses_a_bad_machine_field_in_one_line(bundle, tmp_path):
    bad = _rewritten(bundle[0], tmp_path / "bad", _set("cpu", "\x1b[2J" + "x" * 100_000))
    result = run_cli("info", "--model", bad)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("animeedge: error: invalid manifest")
    assert len(result.stderr) < 400 and "\x1b" not in result.stderr


def test_text_from_the_manifest_reaches_the_terminal_on_one_line(bundle, tmp_path):
    other = _rewritten(bundle[0], tmp_path / "other", _set("cpu", "Evil\nCPU\x1b[31m"))
    result = run_cli("info", "--model", other)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "Evil\\nCPU" in result.stdout


def test_a_checkpoint_keeps_todays_info(tmp_path):
    result = run_cli("info", "--model", tmp_path)  # a folder with neither manifest nor checkpoint
    assert result.returncode == 2 and "no generator checkpoint in this folder" in result.stderr


# bench and the tiers


def test_bench_says_its_bundle_was_timed_elsewhere(bundle, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle[0], copy)
    _rewritten(copy, copy, lambda m: m.update(machine=ELSEWHERE))
    photo = tmp_path / "photo.png"
    Image.fromarray(synthetic_image(np.random.default_rng(4), 96)).save(photo)
    one = lambda manifest: ([next(a for a in manifest["artifacts"] if a["format"] == "onnx")], [])
    monkeypatch.setattr(animeedge.bench, "_configurations", one)  # one configuration timed: the header is tested
    report = Bench(copy, tier="mid", warmup=0, runs=1, min_seconds=0.0, threads=1, peers=False, photo=photo,
                   rounds=1).run()
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("note: timings measured on Intel(R) Xeon(R) Platinum 8480+")
    assert report["export_machine"]["same_machine"] is False and report["export_machine"]["measured_on"] == ELSEWHERE
    assert same_machine(report["machine"]["fingerprint"], machine())
    scaled = {t for t, r in report["recommendations"].items() if r["basis"] != "measured"}
    assert scaled and all("rank differently" in report["recommendations"][t]["caveat"] for t in scaled)
    assert "caveat" not in report["recommendations"]["mid"]  # measured here: nothing to guess
    assert sum("is an estimate: scaled by the fp32 peak ratio" in x for x in err.splitlines()) == len(scaled)


def test_scaled_tier_picks_say_the_precision_ranking_is_not_known():
    tiers = load_tiers()
    results = [{"format": "tflite", "precision": "int8", "width": 0.5, "resolution": 256, "e2e_p50_ms": 10.0,
                "quality_psnr_db": 30.0}]
    placement = {"tier": "mid", "estimated_peak_gflops": 144.0}
    vnni = ELSEWHERE | {"flags": ["avx2", "avx512_vnni"]}
    picks = tier_pick(results, placement, tiers, vnni)
    assert "caveat" not in picks["mid"]
    assert "int8 dot-product instructions here: avx512_vnni; on its reference cores: none" in picks["low"]["caveat"]
    assert "on its reference cores: asimddp, i8mm" in picks["high"]["caveat"]
    assert "on its reference cores: not known" in picks["desktop"]["caveat"]
    assert "here: none" in precision_caveat("low", tiers, ELSEWHERE | {"flags": ["avx2", "fma"]})
    assert [x.split(" ")[0] for x in caveat_lines(picks)] == ["low", "high", "desktop"]
    assert "fp32 throughput only" in tiers["about"]


def test_differs_note_names_both_machines():
    here = machine()
    assert differs_note(here, here) is None
    assert differs_note(None, here).startswith("the bundle does not record the machine")
    note = differs_note(ELSEWHERE, here)
    assert note.startswith("timings measured on Intel") and f"this machine is {describe(here)}" in note
