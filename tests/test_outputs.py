"""Outputs never replace what this tool did not write from the same input: `export --force`
replaces only a bundle of its own (swapped in when complete), `stylize` leaves existing files
alone unless --overwrite, a video that lost frames is an error with no file, and a run cut
short by SIGTERM leaves no temporary file."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from animeedge import stylize
from conftest import _folder, run_cli, synthetic_image
from animeedge.compress.export import BundleExporter, check_out
from animeedge.runtimes.atomic import atomic_dir
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.manifest import load_manifest


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _video(path, frames, size_wh=(48, 32), fourcc="MJPG"):
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size_wh)
    for _ in range(frames):
        writer.write(synthetic_image(rng, max(size_wh))[:size_wh[1], :size_wh[0]])
    writer.release()
    return path


def _last_line(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A tiny generator exported once (ONNX fp32 at 32 px), and the folders it came from."""
    from animeedge.generator.checkpoint import save_generator
    from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
    tmp = tmp_path_factory.mktemp("tiny_bundle")
    torch.manual_seed(0)
    save_generator(DoubleTailGenerator(GeneratorConfig(base_channels=8, tail_blocks=1)), tmp / "m.safetensors")
    photos = _folder(tmp / "photos", 5, n=2, size=32)
    out = BundleExporter(tmp / "m.safetensors", tmp / "bundle", ["onnx"], ["fp32"], [1.0], [32], photos,
                         progress=False).run()
    return out, tmp / "m.safetensors", photos


def _export(model, out, photos, force=False):
    return BundleExporter(model, out, ["onnx"], ["fp32"], [1.0], [32], photos, progress=False, force=force).run()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A user's working folder: a thesis, a file, photos; the current folder."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.txt").write_text("three years of work")
    (tmp_path / "existing.txt").write_text("keep me")
    _folder(tmp_path / "photos", 1, n=2, size=32)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("out, message", [
    (".", ".: is the current folder or one above it; --force replaces only a bundle this tool wrote; "
          "nothing was deleted"),
    ("docs", "docs: not a bundle (no valid manifest.json); --force replaces only a bundle this tool wrote; "
             "nothing was deleted"),
    ("existing.txt", "existing.txt: exists and is not a folder; --out takes a bundle folder"),
], ids=["current-folder", "not-a-bundle", "a-file"])
def test_force_replaces_nothing_but_a_bundle(workdir, tiny_model_path, out, message):
    before = _snapshot(workdir)
    proc = run_cli("export", "--model", tiny_model_path, "--out", out, "--force", "--calib", "photos",
                   "--formats", "onnx", "--precisions", "fp32", "--resolutions", "32")
    assert proc.returncode == 2 and _last_line(proc) == f"animeedge: error: {message}"
    assert _snapshot(workdir) == before and sorted(os.listdir(workdir)) == sorted(
        ["docs", "existing.txt", "photos", "tiny.safetensors", "tiny.json"])


def test_force_refuses_before_any_work_what_it_may_not_replace(workdir, tiny_bundle):
    bundle, model, photos = tiny_bundle
    shutil.copytree(bundle, workdir / "own")
    (workdir / "own" / "notes.txt").write_text("mine")
    os.symlink(bundle, workdir / "link")
    os.mkdir(workdir / "sub")
    refused = {
        "..": "is the current folder or one above it",
        "docs": "not a bundle",
        "photos": "holds the input photos",
        "own": "holds own/notes.txt, which is not part of the bundle",
        "link": "exists and is not a folder",
        "existing.txt/b": "existing.txt: exists and is not a folder",
        "sub/" + "n" * 300: "too long for a file system",
    }
    for out, message in refused.items():
        with pytest.raises(UserError, match=message):
            check_out(out, True, (model, "photos"))
    with pytest.raises(UserError, match="exists; pass --force"):
        check_out(bundle, False, (model, photos))
    assert check_out(bundle, True, (model, photos)) == bundle
    assert (workdir / "docs" / "thesis.txt").read_text() == "three years of work"


def test_force_swaps_a_new_bundle_in(tiny_bundle, tmp_path):
    bundle, model, photos = tiny_bundle
    out = shutil.copytree(bundle, tmp_path / "b")
    manifest = load_manifest(out)
    manifest["artifacts"][0]["fidelity"] = None
    (out / "manifest.json").write_text(json.dumps(manifest))  # still a valid bundle of ours
    with pytest.raises(UserError, match="exists; pass --force"):
        _export(model, out, photos)
    assert _export(model, out, photos, force=True) == out
    assert load_manifest(out)["artifacts"][0]["fidelity"] is not None  # the new bundle, whole
    assert os.listdir(tmp_path) == ["b"]  # no temporary or old folder left


def test_a_folder_swap_refused_at_the_end_keeps_the_old_one(tmp_path):
    final = tmp_path / "b"
    final.mkdir()
    (final / "old.txt").write_text("old")

    def refuse(path):
        raise UserError(f"{path}: changed meanwhile")
    with pytest.raises(UserError, match="changed meanwhile"):
        with atomic_dir(final, refuse) as tmp:
            (tmp / "new.txt").write_text("new")
    assert _snapshot(final) == {"old.txt": b"old"} and os.listdir(tmp_path) == ["b"]
    with atomic_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _snapshot(final) == {"new.txt": b"new"} and os.listdir(tmp_path) == ["b"]


def test_stylize_leaves_existing_outputs_alone_unless_told(tmp_path, tiny_model_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    _video(src / "clip.webm", 3, fourcc="VP80")
    (src / "clip.mp4").write_bytes(b"an unrelated video of mine")
    Image.fromarray(synthetic_image(np.random.default_rng(1), 24)).save(src / "a.png")
    (out / "a.png").write_bytes(b"not made from in/a.png")
    before = _snapshot(tmp_path)
    proc = run_cli("stylize", src / "clip.webm", "--out", src, "--model", tiny_model_path)
    assert proc.returncode == 1 and _last_line(proc) == (
        f"animeedge: error: {src / 'clip.webm'}: {src / 'clip.mp4'} exists: left as it is (pass --overwrite to replace it)")
    assert stylize.run(lambda rgb: 255 - rgb, stylize.plan_jobs([src / "a.png"], out), progress=False) == 1
    assert _snapshot(tmp_path) == before
    proc = run_cli("stylize", src / "clip.webm", src / "a.png", "--out", out, "--overwrite", "--model", tiny_model_path)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out / "a.png").size == (24, 24) and (out / "clip.mp4").stat().st_size > 100
    assert "--overwrite" in run_cli("stylize", "--help").stdout


class _DiskFullAfter2:
    """cv2.VideoWriter on a disk that fills after 2 frames: later frames vanish, no error."""
    real = cv2.VideoWriter

    def __init__(self, *args):
        self.writer, self.frames = self.real(*args), 0

    def isOpened(self):
        return self.writer.isOpened()

    def write(self, frame):
        self.frames += 1
        if self.frames <= 2:
            self.writer.write(frame)

    def release(self):
        self.writer.release()


def test_a_video_that_lost_frames_is_an_error_and_no_file(tmp_path, monkeypatch, capsys):
    clip = _video(tmp_path / "clip.avi", 6)
    Image.fromarray(synthetic_image(np.random.default_rng(2), 16)).save(tmp_path / "a.png")
    monkeypatch.setattr(cv2, "VideoWriter", _DiskFullAfter2)
    jobs = stylize.plan_jobs([clip, tmp_path / "a.png"], tmp_path / "out")
    assert stylize.run(lambda rgb: 255 - rgb, jobs, progress=False) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [f"animeedge: error: {clip}: the video writer stored 2 of 6 frames (is the disk full?)"]
    assert os.listdir(tmp_path / "out") == ["a.png"]  # the picture is done; no video, no temporary file


def test_an_output_folder_inside_the_input_is_not_walked(tmp_path):
    src = tmp_path / "in"
    _folder(src, 3, n=2, size=16)
    for _ in range(2):  # the second run finds the first one's outputs in in/styled
        jobs = stylize.plan_jobs([src], src / "styled")
        assert sorted(j.src.name for j in jobs) == ["000.png", "001.png"]
        stylize.run(lambda rgb: 255 - rgb, jobs, progress=False, overwrite=True)
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png")) == [
        "000.png", "001.png", "styled/000.png", "styled/001.png"]


def test_sigterm_mid_video_removes_its_temporary_file(tmp_path, tiny_model_path):
    clip = _video(tmp_path / "clip.avi", 3000, (64, 48))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "animeedge", "stylize", str(clip), "--out", str(out),
                             "--model", str(tiny_model_path)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # a bound on waiting, not a timing: the temporary file must show up
    while not list(out.glob(".clip.avi.*.tmp.avi")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "animeedge: terminated", err
    assert "Traceback" not in err and os.listdir(out) == []
