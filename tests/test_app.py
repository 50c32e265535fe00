"""The Kivy app, headless (SDL offscreen): sources, the latest-frame-wins pipeline, Auto's
controller, and the running app driven step by step (each step waits on a condition)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import BUNDLE_RES, BUNDLE_RES2, run_cli, synthetic_image
from animeedge.mobile_app import sources
from animeedge.mobile_app.auto import AutoController, Level, ladder
from animeedge.mobile_app.pipeline import Config, LatestSlot
from animeedge.mobile_app.session import AppSession
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.load import load


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    rng = np.random.default_rng(5)
    for _ in range(8):
        writer.write(cv2.cvtColor(cv2.resize(synthetic_image(rng, 60), (80, 60)), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# ---- pieces without a window ------------------------------------------------------------

def test_latest_slot_keeps_only_the_newest_item():
    slot = LatestSlot()
    for i in range(100):
        slot.put(i)
    assert slot.pending == 1 and slot.take(0) == 99 and slot.dropped == 99
    assert slot.take(0.01) is None


def test_loaded_models_stay_bounded():
    from animeedge.mobile_app.pipeline import CACHED, Pipeline
    loads = []
    pipeline = Pipeline(sources.SyntheticSource(), lambda c: loads.append(c) or object(), Config(1.0, 32, "onnx", "fp32"))
    configs = [Config(w, 32, "onnx", "fp32") for w in (0.25, 0.5, 0.75, 1.0)]
    for c in configs + configs[-1:]:
        pipeline.stylizer(c)
    assert list(pipeline.stylizers) == configs[-CACHED:] and len(loads) == 4  # the repeat was not reloaded


def test_sources_loop_and_refuse_bad_input(video, tmp_path):
    clip = sources.open_source(str(video))
    frames = [clip.read() for _ in range(20)]  # 8 frames, looped
    assert all(f is not None and f.shape == (60, 80, 3) for f in frames)
    np.testing.assert_array_equal(frames[0], frames[8])
    Image.fromarray(synthetic_image(np.random.default_rng(1), 32)).save(tmp_path / "a.png")
    folder = sources.open_source(str(tmp_path))
    assert folder.read().shape == (32, 32, 3) and folder.read().shape == (32, 32, 3)
    assert sources.open_source("synthetic").read().dtype == np.uint8
    for bad, message in (("nowhere.mp4", "no such file"), ("camera:x", "camera index")):
        with pytest.raises(UserError, match=message):
            sources.open_source(bad)


class FakeCapture:
    """A camera that gives `frames` frames, then fails (unplugged), then is absent."""
    opened = 0

    def __init__(self, frames):
        self.frames = frames

    def __call__(self, index):
        FakeCapture.opened += 1
        return self if FakeCapture.opened == 1 else _Closed()

    def isOpened(self):
        return True

    def set(self, *args):
        pass

    def read(self):
        self.frames -= 1
        return (True, np.zeros((4, 6, 3), np.uint8)) if self.frames >= 0 else (False, None)

    def release(self):
        pass


class _Closed:
    def isOpened(self):
        return False


def test_camera_that_disappears_reports_and_retries(monkeypatch):
    monkeypatch.setattr(sources, "RETRY_SECONDS", 0.0)
    FakeCapture.opened = 0
    cam = sources.CameraSource(0, capture=FakeCapture(2))
    assert cam.read().shape == (4, 6, 3) and cam.read() is not None
    assert cam.read() is None and "lost" in cam.status
    assert cam.read() is None and "No camera" in cam.status and FakeCapture.opened == 2


def test_ladder_keeps_levels_where_cost_buys_quality():
    arts = [{"width": w, "resolution": r, "gmacs": g, "quality": {"psnr_db": q}}
            for w, r, g, q in ((0.25, 128, 0.1, 20), (0.5, 128, 0.3, 19), (0.25, 256, 0.4, 24), (1.0, 256, 4, 30))]
    assert [(lv.width, lv.resolution) for lv in ladder(arts)] == [(0.25, 128), (0.25, 256), (1.0, 256)]


def _run_controller(levels, target, cost_ms, frames=3000):
    """Feed the controller frames whose time is what its current level costs; the history."""
    auto, history = AutoController(levels, target, start=len(levels) - 1, window=10), []
    for _ in range(frames):
        ms = cost_ms(auto.level)
        auto.observe(ms, ms * 0.8)
        history.append(auto.index)
    return history


def test_auto_steps_down_to_what_fits_and_settles():
    levels = [Level(0.25, 128, 0.1, 20), Level(0.5, 256, 1.0, 25), Level(1.0, 256, 4.0, 30), Level(1.0, 512, 16, 35)]
    history = _run_controller(levels, 30, lambda lv: 2 + 10 * lv.gmacs)  # 3, 12, 42, 162 ms
    assert history[-1] == 1 and history.count(1) > 0.9 * len(history)  # 12 ms fits 30 FPS; 42 ms does not
    changes = sum(a != b for a, b in zip(history, history[1:]))
    assert changes <= 2 * 9 + 2  # back-off doubles: about two changes per doubling over 300 windows
    late = history[len(history) // 2:]
    assert sum(a != b for a, b in zip(late, late[1:])) <= 4  # settled: retries ever rarer, not oscillation
    assert _run_controller(levels, 30, lambda lv: 1 + 0.5 * lv.gmacs)[-1] == 3  # everything fits: the top


def test_auto_treats_the_target_as_a_floor():
    levels = [Level(0.25, 256, 0.3, 24), Level(0.5, 256, 1.0, 27), Level(1.0, 256, 3.6, 30)]
    history = _run_controller(levels, 30, lambda lv: {0.25: 20.0, 0.5: 34.5, 1.0: 60.0}[lv.width])  # 29 FPS at 0.5
    assert history[-1] == 0 and history.count(1) < 0.1 * len(history)  # 29 FPS is under 30: not a place to stay


def test_auto_climbs_from_the_bottom_when_there_is_headroom():
    levels = [Level(0.25, 128, 0.1, 20), Level(0.5, 256, 1.0, 25), Level(1.0, 256, 4.0, 30)]
    auto, seen = AutoController(levels, 30, start=0, window=10), []
    for _ in range(400):
        ms = {0: 5.0, 1: 8.0, 2: 20.0}[auto.index]  # latency grows far slower than MACs
        auto.observe(ms, ms * 0.8)
        seen.append(auto.index)
    assert seen[-1] == 2 and sorted(set(seen)) == [0, 1, 2]


# ---- the running app --------------------------------------------------------------------

def drive(app, steps, timeout=120):
    """Run `app`, taking each (condition, action) step once its condition holds."""
    from kivy.clock import Clock
    state = {"i": 0, "error": None}

    def tick(_dt):
        if state["i"] == len(steps):
            app.stop()
            return False
        condition, action = steps[state["i"]]
        if condition(app):
            action and action(app)
            state["i"] += 1

    def expire(_dt):
        state["error"] = f"timed out waiting for step {state['i']}"
        app.stop()

    def start(*_):
        Clock.schedule_interval(tick, 0.02)
        Clock.schedule_once(expire, timeout)

    app.bind(on_start=start)
    app.run()
    Clock.unschedule(tick)
    Clock.unschedule(expire)
    assert state["error"] is None, state["error"]


def _app(session, **kwargs):
    from animeedge.mobile_app.app import AnimeEdgeApp
    return AnimeEdgeApp(session, **kwargs)


def _shown(n):
    return lambda app: app.shown >= n


def _showing(**wanted):
    def condition(app):
        current = app.current_config
        return current is not None and all(getattr(current, k) == v for k, v in wanted.items())
    return condition


def test_width_and_resolution_changes_switch_the_model(bundle, video):
    session = AppSession(bundle[0], str(video), auto=False, threads=1)
    session.config = Config(1.0, BUNDLE_RES, "tflite", "fp32")
    app = _app(session)
    drive(app, [(_shown(2), lambda a: a.choose(width=0.5)),
                (_showing(width=0.5, resolution=BUNDLE_RES), lambda a: a.choose(resolution=BUNDLE_RES2)),
                (_showing(width=0.5, resolution=BUNDLE_RES2), None)])
    used = {(c.width, c.resolution) for c in app.pipeline_stylizers}
    assert used == {(1.0, BUNDLE_RES), (0.5, BUNDLE_RES), (0.5, BUNDLE_RES2)}
    sizes = {c.resolution: s.artifact["input"]["shape"][1] for c, s in app.pipeline_stylizers.items()}
    assert sizes == {BUNDLE_RES: BUNDLE_RES, BUNDLE_RES2: BUNDLE_RES2}  # different files, not a resize


def test_capture_saves_the_full_quality_output(bundle, video, tmp_path):
    session = AppSession(bundle[0], str(video), auto=False, threads=1, captures=tmp_path)
    session.config = Config(0.5, BUNDLE_RES, "tflite", "int8")
    app = _app(session)
    box = {}
    drive(app, [(_shown(2), lambda a: box.update(done=a.capture())),
                (lambda a: box["done"].is_set(), None)])
    done = box["done"]
    assert not getattr(done, "error", None)
    saved = np.asarray(Image.open(done.path))
    frame = np.asarray(Image.open(str(done.path).replace("_anime", "_input")))
    full = load(bundle[0], 1.0, BUNDLE_RES2, "tflite", "fp32")(frame)  # width 1, highest resolution, fp32
    np.testing.assert_array_equal(saved, full)


def test_auto_steps_down_when_the_model_is_made_slow(bundle, video):
    session = AppSession(bundle[0], str(video), auto=True, target_fps=15, threads=1)
    top = session.levels()[-1]
    session.config = session.config_for(top)
    make = session.make_stylizer

    def slow_at_the_top(config):
        stylizer = make(config)
        if (config.width, config.resolution) == (top.width, top.resolution):
            invoke = stylizer.invoke
            stylizer.invoke = lambda x: (time.sleep(0.15), invoke(x))[1]
        return stylizer
    session.make_stylizer = slow_at_the_top
    app = _app(session)
    drive(app, [(lambda a: a.auto and a.auto.index < len(session.levels()) - 1, None)])
    assert (session.config.width, session.config.resolution) != (top.width, top.resolution)


def test_missing_camera_shows_a_message_and_keeps_running(bundle):
    session = AppSession(bundle[0], "camera:7", auto=False, threads=1)  # no camera 7 here
    app = _app(session)
    drive(app, [(lambda a: "No camera" in a.message.text, None)])
    assert app.shown == 0


def test_cli_runs_frames_from_a_video_and_saves_a_screenshot(bundle, video, tmp_path):
    shot = tmp_path / "shot.png"
    result = run_cli("app", "--bundle", bundle[0], "--source", video, "--frames", 12, "--screenshot", shot,
                     "--threads", 1)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 12 and summary["fps"] > 0 and summary["model_p50_ms"] > 0
    assert {"width", "resolution", "backend", "precision"} <= set(summary)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert pixels.shape[0] > 100 and pixels.std() > 20  # a drawn window: picture, overlay, controls


def test_cli_bad_input_is_one_line(bundle):
    result = run_cli("app", "--bundle", bundle[0], "--source", "nowhere.mp4", "--frames", 1)
    assert result.returncode == 2 and "no such file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_app_does_not_import_torch():
    code = ("import sys; from animeedge.mobile_app.session import configure_kivy; configure_kivy(); import animeedge.mobile_app.app; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_phone_staging_runs_with_tflite_only(bundle, tmp_path):
    from animeedge.mobile_app.package import stage
    from animeedge.runtimes.manifest import load_manifest
    out = stage(bundle[0], tmp_path / "phone")
    staged = load_manifest(out / "bundle")
    assert {a["format"] for a in staged["artifacts"]} == {"tflite"}
    assert (out / "buildozer.spec").is_file() and not (out / "animeedge" / "generator").exists()
    done = subprocess.run([sys.executable, "main.py", "--source", "synthetic", "--frames", "5", "--threads", "1"],
                          cwd=out, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 5 and summary["backend"] == "tflite"


def test_a_failing_model_ends_an_unattended_run_with_the_error(bundle, video):
    session = AppSession(bundle[0], str(video), auto=False, threads=1)

    def broken(config):
        raise RuntimeError("model file unreadable")
    session.make_stylizer = broken
    app = _app(session, frames=5)
    app.run()
    assert app.shown == 0 and "model file unreadable" in app.summary["error"]


# ---- hostile sources: the app always stops, unreadable files are skipped -----------------

def test_an_unattended_run_without_a_camera_ends_with_the_reason(bundle, monkeypatch):
    from animeedge.mobile_app import app as app_module
    monkeypatch.setattr(app_module, "STALL_SECONDS", 1.0)
    app = _app(AppSession(bundle[0], "camera:7", auto=False, threads=1), frames=30)
    app.run()
    assert app.shown == 0 and app.summary["error"].startswith("no frames for 1 s: No camera found (camera 7)")
    assert "No camera found" in app.message.text


def test_cli_without_a_camera_exits_1_with_a_json_reason(bundle):
    result = run_cli("app", "--bundle", bundle[0], "--source", "camera:7", "--frames", 30, "--threads", 1)
    assert result.returncode == 1, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 0 and "No camera found" in summary["error"]
    assert "Traceback" not in result.stderr and "WARN" not in result.stderr


def test_a_picture_named_like_a_video_plays_as_a_picture(bundle, tmp_path):
    Image.fromarray(synthetic_image(np.random.default_rng(1), 40)).save(tmp_path / "fake.mp4", format="JPEG")
    source = sources.open_source(str(tmp_path / "fake.mp4"))
    assert isinstance(source, sources.FolderSource) and source.read().shape == (40, 40, 3)


def test_a_folder_source_skips_unreadable_files_once(tmp_path, capsys):
    rng = np.random.default_rng(2)
    Image.fromarray(synthetic_image(rng, 32)).save(tmp_path / "a.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    source = sources.FolderSource(tmp_path)
    assert len(source.files) == 1 and source.read().shape == (32, 32, 3)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "skipped 2 unreadable file(s)" in warning[0]


# ---- source names, FIFOs, lazy folders, option bounds, outputs checked first ---

def _one_frame_video(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    writer.write(np.full((60, 80, 3), 120, np.uint8))
    writer.release()
    return path


def test_only_camera_or_camera_n_is_a_camera_and_a_1_frame_video_loops(tmp_path):
    clip = sources.open_source(str(_one_frame_video(tmp_path / "camera_roll.avi")))
    assert isinstance(clip, sources.VideoSource)  # a file, not camera 0
    frames = [clip.read() for _ in range(4)]  # a rewind by seeking read nothing after the first frame
    assert all(f is not None and f.shape == (60, 80, 3) for f in frames), clip.status
    camera = sources.open_source("camera:7")
    assert isinstance(camera, sources.CameraSource) and camera.index == 7
    camera.close()
    for bad in ("camera:100000000000000000000", "camera:1000", "camera:-1", "camera:x", "camera:"):
        with pytest.raises(UserError, match="camera index must be a number from 0 to 999"):
            sources.open_source(bad)


@pytest.mark.timeout(60)  # a FIFO that is opened blocks: fail, do not hang
def test_fifos_are_refused_or_skipped_without_opening_them(tmp_path, capsys):
    import os
    os.mkfifo(tmp_path / "stream.mp4")
    with pytest.raises(UserError, match="not a regular file"):
        sources.open_source(str(tmp_path / "stream.mp4"))
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(synthetic_image(np.random.default_rng(3), 32)).save(folder / "a.png")
    os.mkfifo(folder / "b.jpg")
    source = sources.open_source(str(folder))
    assert source.read().shape == (32, 32, 3) and source.read().shape == (32, 32, 3)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "b.jpg: not a regular file" in warning[0]


def test_a_folder_source_decodes_one_picture_at_a_time(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(4)
    for i in range(5):
        Image.fromarray(synthetic_image(rng, 32 + i)).save(tmp_path / f"{i}.png")
    good = (tmp_path / "2.png").read_bytes()
    (tmp_path / "2.png").write_bytes(good[:len(good) // 2])  # a valid header, a truncated picture
    decoded = []
    real = sources.read_image
    monkeypatch.setattr(sources, "read_image", lambda f: decoded.append(f.name) or real(f))
    monkeypatch.setattr(sources, "MAX_SIDE", 35)
    source = sources.FolderSource(tmp_path)
    assert decoded == ["0.png"]  # only headers are read at start, and the first picture decoded
    sizes = [source.read().shape[:2] for _ in range(8)]
    assert sizes == [(32, 32), (33, 33), (35, 35), (35, 35)] * 2  # the truncated one skipped; 36 px scaled to 35
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "2.png" in warning[0]
    assert len(decoded) == 9  # one decode per frame shown (plus the failed one), none kept beyond the last

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(good[:len(good) // 2])
    (broken / "b.jpg").write_bytes(b"not a picture")
    with pytest.raises(UserError, match="no readable images"):
        sources.FolderSource(broken)


def test_a_width_or_resolution_the_bundle_lacks_is_refused(bundle):
    for start, asked in (({"width": 0.75}, "no width 0.75 in"), ({"resolution": 64}, "no resolution 64 in"),
                         ({"width": 0.5, "resolution": 64}, "no width 0.5 at resolution 64 in")):
        with pytest.raises(UserError, match=asked) as refused:
            AppSession(bundle[0], "synthetic", threads=1, start=start | {"backend": "onnx", "precision": "fp32"})
        assert f"it has width 0.5 at {BUNDLE_RES}, {BUNDLE_RES2} px; width 1.0 at" in str(refused.value)
    session = AppSession(bundle[0], "synthetic", threads=1, start={"width": 0.5, "backend": "onnx"})
    assert session.config.width == 0.5 and not session.auto  # what the bundle has still starts


@pytest.mark.parametrize("fps", ["0", "-1", "nan", "inf", "1e-300", "241"])
def test_target_fps_is_bounded(fps, capsys):
    from animeedge.cli import build_parser
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["app", "--target-fps", fps])
    assert refused.value.code == 2 and "--target-fps: expected a number from 0.5 to 240" in capsys.readouterr().err


@pytest.mark.parametrize("shot, message", [(".", "is a folder"), ("file/shot.png", "cannot write there")])
def test_a_screenshot_that_cannot_be_written_is_refused_before_the_run(tmp_path, shot, message):
    (tmp_path / "file").write_text("x")
    result = run_cli("app", "--bundle", "nowhere", "--source", "synthetic", "--screenshot", tmp_path / shot)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(err) == 1 and message in err[0], err  # before the bundle is read


def test_a_tampered_bundle_in_the_app_is_one_line_and_the_json(bundle, tmp_path):
    import shutil
    copy = Path(shutil.copytree(bundle[0], tmp_path / "bundle"))
    for model in [*copy.rglob("*.onnx"), *copy.rglob("*.tflite")]:
        with open(model, "ab") as f:
            f.write(b"x")
    result = run_cli("app", "--bundle", copy, "--source", "synthetic", "--frames", 2, "--threads", 1)
    assert result.returncode == 1
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert "modified or corrupted" in summary["error"] and summary["frames"] == 0
    err = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(err) == 1 and "modified or corrupted" in err[0], err


def test_the_app_bench_says_whether_auto_held_the_best_level_that_sustains_the_target():
    from animeedge.app_bench import auto_verdict

    def run(width, fps):
        return {"backend": "tflite", "precision": "int8", "width": width, "resolution": 256, "fps": fps}
    levels = [run(0.25, 90.0), run(0.5, 41.0), run(1.0, 12.0)]
    assert auto_verdict(levels, run(0.5, 38.0), 30)["holds"]
    low = auto_verdict(levels, run(0.25, 80.0), 30)
    assert not low["holds"] and (low["auto_level"], low["best_sustaining_level"]) == (0, 1)
    assert not auto_verdict(levels, run(1.0, 12.0), 30)["holds"]
    assert auto_verdict([run(1.0, 12.0)], run(1.0, 11.0), 30) == {
        "target_fps": 30, "auto_level": 0, "best_sustaining_level": None, "holds": True}
