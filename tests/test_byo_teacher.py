"""Bring your own generator: every width learns a foreign teacher, and
`compress --until-db` stops once every width is good enough."""
import re

import pytest
import torch

from conftest import _folder, run_cli
from animeedge.compress.distill import Distiller
from animeedge.compress.fixed_filter import FixedFilter, onnx_file
from animeedge.compress.teacher import load_teacher
from animeedge.generator.checkpoint import read_meta

RES = 32


@pytest.fixture(autouse=True)
def one_thread():
    """32-px tensors gain nothing from a second thread, and lose much when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _one_line_error(result, message):
    """Exit 2 and one error line, the last on stderr (after the teacher's description or the usage)."""
    errors = [line for line in result.stderr.splitlines() if re.match(r"animeedge( compress)?: error: ", line)]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().splitlines()[-1] == errors[0]


@pytest.fixture
def filter_onnx(tmp_path):
    return onnx_file(FixedFilter().eval(), tmp_path / "filter.onnx", (1, 256, 256, 3))


@pytest.fixture
def held_out_dir(tmp_path):
    return _folder(tmp_path / "held_out", 2, n=4)


def _gains(teacher, photo_dir, held_out_dir, out, student_init, student_base, steps=20):
    d = Distiller(teacher, out, photo_dir, resolutions=(RES,), steps=steps, progress=False, teacher_res=RES,
                  student_init=student_init, student_base=student_base, held_out=held_out_dir, eval_every=steps)
    d.run()
    first, last = d.held_out.history[0]["psnr"], d.held_out.history[-1]["psnr"]
    return {w: last[w] - first[w] for w in first}


def test_the_narrowest_width_learns_a_fixed_filter_like_the_widest(filter_onnx, photo_dir, held_out_dir, tmp_path):
    # From scratch (the only start before --student-init default) the signal shrinks layer after layer, most at
    # width 0.25: in 20 steps it gains ~0.3 dB where width 1.0 gains ~2.5. The embedded default
    # student starts every width from a working photo-to-picture map (width 0.25 gained 4.3 dB where
    # width 1.0 gained 6.5 on the 2-core AMD EPYC with AVX-512).
    teacher = load_teacher(filter_onnx, value_range="0,1")
    gains = _gains(teacher, photo_dir, held_out_dir, tmp_path / "s.safetensors", "default", 32)
    assert gains["0.25"] > 2 and gains["0.25"] >= 0.5 * gains["1.0"], gains


def test_the_default_start_needs_the_default_students_size(filter_onnx, photo_dir, tmp_path):
    result = run_cli("compress", "--teacher", filter_onnx, "--teacher-range", "0,1", "--student-base", 8,
                     "--out", tmp_path / "s.safetensors", "--photos", photo_dir, "--calib", photo_dir, "--steps", 1)
    _one_line_error(result, "--student-init scratch")
    assert not (tmp_path / "s.safetensors").exists()


@pytest.mark.parametrize("until, message", [
    ("0.25-22", "expected WIDTH:DB pairs"),
    ("0.25:nan", "expected WIDTH:DB pairs"),
    ("0.3:22", "names width 0.3, which is not among the widths"),
])
def test_bad_until_db_is_one_line(filter_onnx, photo_dir, held_out_dir, tmp_path, until, message):
    result = run_cli("compress", "--teacher", filter_onnx, "--teacher-range", "0,1", "--until-db", until,
                     "--out", tmp_path / "s.safetensors", "--photos", photo_dir, "--calib", held_out_dir, "--steps", 1)
    _one_line_error(result, message)
    assert not (tmp_path / "s.safetensors").exists() and not (tmp_path / "s.work").exists()


def test_until_db_needs_photos_it_does_not_train_on(filter_onnx, photo_dir, tmp_path):
    result = run_cli("compress", "--teacher", filter_onnx, "--teacher-range", "0,1", "--until-db", "1.0:20",
                     "--out", tmp_path / "s.safetensors", "--photos", photo_dir, "--calib", photo_dir, "--steps", 1)
    _one_line_error(result, "held-out photos that are not training photos")
    assert not (tmp_path / "s.safetensors").exists()


def test_until_db_stops_once_every_width_meets_its_figure(filter_onnx, photo_dir, held_out_dir, tmp_path):
    out, goal = tmp_path / "s.safetensors", 24.0  # the default student starts at 20.7-21.7 dB, and is past 26 in 25 steps
    d = Distiller(load_teacher(filter_onnx, value_range="0,1"), out, photo_dir, resolutions=(RES,), steps=200,
                  progress=False, student_init="default", held_out=held_out_dir, until_db={0.25: goal, 1.0: goal})
    d.run()
    meta = read_meta(out)
    watch = meta["held_out"]
    assert 0 < meta["distill_steps"] < 200 and meta["distill_steps"] % watch["every"] == 0
    assert [h["step"] for h in watch["history"]] == list(range(0, meta["distill_steps"] + 1, watch["every"]))
    assert all(watch["history"][-1]["psnr"][w] >= goal for w in ("0.25", "1.0"))
    assert not all(watch["history"][-2]["psnr"][w] >= goal for w in ("0.25", "1.0"))  # it stopped at the first chance
    for width, reached in watch["until_db"].items():  # the step and time at which each width first met its figure
        first = next(h for h in watch["history"] if h["psnr"][width] >= goal)
        assert reached == {"goal": goal, "step": first["step"], "seconds": first["seconds"]} and first["seconds"] > 0
    assert meta["student_init"] == "default" and meta["trained_widths"] == [0.25, 0.5, 0.75, 1.0]


def test_a_resumed_run_keeps_its_held_out_history_and_clock(filter_onnx, photo_dir, held_out_dir, tmp_path):
    teacher, out = load_teacher(filter_onnx, value_range="0,1"), tmp_path / "s.safetensors"
    kwargs = dict(resolutions=(RES,), progress=False, teacher_res=RES, student_base=8, held_out=held_out_dir,
                  eval_every=5, ckpt_every=5)
    Distiller(teacher, out, photo_dir, steps=5, **kwargs).run()
    first = read_meta(out)["held_out"]["history"]
    Distiller(teacher, out, photo_dir, steps=10, resume=True, **kwargs).run()
    history = read_meta(out)["held_out"]["history"]
    assert history[:2] == first and [h["step"] for h in history] == [0, 5, 10]
    assert history[0]["seconds"] < history[1]["seconds"] < history[2]["seconds"] <= read_meta(out)["seconds"]
