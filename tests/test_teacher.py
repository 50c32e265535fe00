"""Bring your own generator: an ONNX file or a torch module as the teacher of `compress`."""
import re
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import run_cli
from animeedge.compress.distill import Distiller
from animeedge.compress.fixed_filter import FixedFilter
from animeedge.compress.fixed_filter import onnx_file as _onnx
from animeedge.compress.quality import psnr_signed
from animeedge.compress.teacher import load_teacher
from animeedge.generator.data import list_images, load_square, to_tensor

RES = 32


@pytest.fixture
def filter_teacher(tmp_path):
    return _onnx(FixedFilter().eval(), tmp_path / "filter.onnx", (1, 256, 256, 3))


def _psnr_to_teacher(model, teacher, photo_dir) -> float:
    x = torch.stack([to_tensor(load_square(f, 256)) for f in list_images(photo_dir)])
    with torch.no_grad():
        target = F.interpolate(teacher(x), size=RES, mode="area")
        out = model.set_width(1.0)(F.interpolate(x, size=RES, mode="area"))
    return psnr_signed(float((out - target).square().mean()))


def _distill(teacher, out, photo_dir, steps):
    torch.manual_seed(0)
    d = Distiller(teacher, out, photo_dir, widths=(0.5, 1.0), resolutions=(RES,), steps=steps, batch=2, lr=5e-3,
                  progress=False, student_base=8)
    before = _psnr_to_teacher(d.student.eval(), teacher, photo_dir)
    d.student.train()
    d.run()
    return d, before, _psnr_to_teacher(d.student.eval(), teacher, photo_dir)


def test_a_fixed_filter_onnx_teacher_is_read_distilled_and_exported(filter_teacher, photo_dir, tmp_path):
    teacher = load_teacher(filter_teacher, value_range="0,1")
    assert teacher.describe["layout"] == "nhwc" and teacher.describe["input_size"] == [256, 256]
    assert "resized" in teacher.describe["at_other_sizes"]
    d, before, after = _distill(teacher, tmp_path / "s.safetensors", photo_dir, steps=120)
    assert after > before + 3, (before, after)
    from animeedge.compress.report import consistency_report
    report = consistency_report(d.student.eval(), photo_dir, n=2, teacher_model=teacher, widths=(0.5, 1.0),
                                resolutions=(RES,))
    for row in report["rows"]:  # every width against the teacher: PSNR, blurred PSNR, delta-E
        assert row["teacher_psnr"] > 10 and row["teacher_blur_psnr"] >= row["teacher_psnr"] - 1
        assert 0 < row["teacher_delta_e"] < 60

    from animeedge.compress.export import BundleExporter
    from animeedge.runtimes.load import load
    from animeedge.runtimes.manifest import load_manifest
    bundle = BundleExporter(tmp_path / "s.safetensors", tmp_path / "b", ["onnx"], ["fp32"], [0.5, 1.0], [RES],
                            photo_dir, progress=False).run()
    assert load_manifest(bundle)["model"]["teacher"]["sha256"] == teacher.describe["sha256"]
    frame = np.random.default_rng(0).integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    assert load(bundle, 0.5, RES, "onnx", "fp32")(frame).shape == frame.shape


def test_animeganv2_as_a_module_teacher(photo_dir, tmp_path):
    teacher = load_teacher("animeedge.generator.animeganv2:animeganv2")
    assert teacher.describe == teacher.describe | {"kind": "module", "layout": "nchw", "input_size": "dynamic"}
    d = Distiller(teacher, tmp_path / "s.safetensors", photo_dir, widths=(0.5, 1.0), resolutions=(RES,), steps=2,
                  progress=False, student_base=8, teacher_res=64)
    assert d.run().is_file()


def test_our_default_as_onnx_distills_like_our_checkpoint(photo_dir, tmp_path):
    from animeedge.compress.export_onnx import fp32_model
    from animeedge.generator.checkpoint import DEFAULT_MODEL, load_generator
    from animeedge.generator.slicing import sliced_copy
    onnx_path = tmp_path / "default.onnx"
    fp32_model(sliced_copy(load_generator(DEFAULT_MODEL), 1.0), onnx_path)
    teachers = [load_teacher(onnx_path), load_teacher(DEFAULT_MODEL)]
    x = torch.stack([to_tensor(load_square(f, 64)) for f in list_images(photo_dir)])
    with torch.no_grad():  # the distiller is shown the same targets by either
        assert psnr_signed(float((teachers[0](x) - teachers[1](x)).square().mean())) > 40
    # 15 steps at this learning rate end 1.2 dB apart under one CPU's kernels and 0.05 dB under
    # another's, so each run is held to learning, not to the other's figure
    for name, teacher in zip(("onnx", "ckpt"), teachers):
        _, before, after = _distill(teacher, tmp_path / f"{name}.safetensors", photo_dir, steps=15)
        assert after > before + 1, (name, before, after)


def _garbage(path):
    path.write_bytes(b"not a graph at all")
    return path


class TwoInputs(nn.Module):
    def forward(self, a, b):
        return a + b


class Halves(nn.Module):
    def forward(self, x):
        return F.avg_pool2d(x, 2)


@pytest.mark.parametrize("make, message", [
    (lambda p: _garbage(p), "not an ONNX model"),
    (lambda p: _onnx(TwoInputs(), p, (1, 3, 64, 64), inputs=2), "2 inputs"),
    (lambda p: _onnx(nn.Conv2d(4, 3, 1), p, (1, 4, 64, 64)), "4 channels where 3"),
    (lambda p: _onnx(Halves(), p, (1, 3, 64, 64)), "must return a 3-channel picture of its input's size"),
])
def test_bad_teachers_are_one_line_errors(tmp_path, photo_dir, make, message):
    path = make(tmp_path / "bad.onnx")
    result = run_cli("compress", "--teacher", path, "--out", tmp_path / "s.safetensors", "--photos", photo_dir,
                     "--calib", photo_dir, "--steps", 1)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.safetensors").exists()


# ---- the user's code runs guarded, tried in a child process; NaN is an error ----

TEACHERS = '''
import torch


class Scaled(torch.nn.Module):
    def __init__(self, by):
        super().__init__()
        self.by = by

    def forward(self, x):
        return x * self.by


def nan():
    return Scaled(float("nan"))


def inf():
    return Scaled(float("inf"))


def raises():
    raise ValueError("no weights here")


def not_a_module():
    return 42


def quiet_exit():
    import os
    os._exit(0)
'''


@pytest.fixture
def in_module_folder(tmp_path, monkeypatch):
    """The working folder holds teachers31.py (module teachers are imported from there)."""
    (tmp_path / "teachers31.py").write_text(TEACHERS)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("spec, message", [
    ("sys:exit", "sys:exit: calling it: it exited (status 0)"),
    ("builtins:input", "builtins:input: calling it: EOFError"),  # stdin is at its end: no wait
    ("builtins:breakpoint", "it started a debugger"),
    ("teachers31:raises", "teachers31:raises: calling it: ValueError: no weights here"),
    ("teachers31:not_a_module", "returned int, not a torch nn.Module"),
    ("teachers31:nothing", "teachers31 has no callable 'nothing'"),
    ("teachers31:nan", "on a 72x72 picture, the teacher returned NaN or infinite values"),
    ("teachers31:inf", "on a 72x72 picture, the teacher returned NaN or infinite values"),
])
def test_a_module_teacher_that_misbehaves_is_one_line(in_module_folder, spec, message):
    from animeedge.runtimes.errors import UserError
    with pytest.raises(UserError, match=re.escape(message)):
        load_teacher(spec, probe=False)


@pytest.mark.parametrize("spec, message", [
    ("os:abort", "killed its process (Aborted"),
    ("teachers31:quiet_exit", "ended its process early (exit status 0"),  # os._exit(0): no report is a failure
    ("pdb:set_trace", "it started a debugger (pdb)"),
])
def test_a_teacher_that_aborts_exits_or_debugs_is_stopped_in_the_child(in_module_folder, spec, message):
    from animeedge.runtimes.errors import UserError
    with pytest.raises(UserError, match=re.escape(message)):
        load_teacher(spec)


def _loop_teacher(path, trips=2 ** 62):
    """y = x + (v - v), where v counts the iterations of a Loop: 2^62 of them never end."""
    from onnx import TensorProto as T, helper as h, numpy_helper as nh, save
    scalar = lambda name, kind: h.make_tensor_value_info(name, kind, [])  # noqa: E731
    body = h.make_graph([h.make_node("Add", ["v_in", "one"], ["v_out"]), h.make_node("Identity", ["c_in"], ["c_out"])],
                        "body", [scalar("i", T.INT64), scalar("c_in", T.BOOL), scalar("v_in", T.FLOAT)],
                        [scalar("c_out", T.BOOL), scalar("v_out", T.FLOAT)],
                        [nh.from_array(np.array(1.0, np.float32), "one")])
    nodes = [h.make_node("Loop", ["trips", "cond", "v0"], ["v"], body=body), h.make_node("Sub", ["v", "v"], ["zero"]),
             h.make_node("Add", ["x", "zero"], ["y"])]
    picture = lambda name: h.make_tensor_value_info(name, T.FLOAT, [1, 3, "h", "w"])  # noqa: E731
    graph = h.make_graph(nodes, "loop", [picture("x")], [picture("y")],
                         [nh.from_array(np.array(trips, np.int64), "trips"), nh.from_array(np.array(True), "cond"),
                          nh.from_array(np.array(0.0, np.float32), "v0")])
    save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def test_a_teacher_that_runs_forever_is_stopped_in_the_child(tmp_path):
    from animeedge.runtimes.errors import UserError
    assert load_teacher(_loop_teacher(tmp_path / "three.onnx", trips=3), probe=False)  # a Loop as such is fine
    with pytest.raises(UserError, match="has not answered: it did not load and stylize one 72x72 picture in 8 s"):
        load_teacher(_loop_teacher(tmp_path / "forever.onnx"), seconds=8)


def test_a_stuck_teacher_is_one_line_naming_the_option_that_gives_it_longer(tmp_path):
    forever = _loop_teacher(tmp_path / "forever.onnx")
    result = run_cli("compress", "--teacher", forever, "--teacher-timeout", "6", "--out", tmp_path / "s.safetensors")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"animeedge: error: {forever}: the teacher has not answered: it did not load and stylize one 72x72 picture "
        "in 6 s (tried in a child process, now stopped); refused. A teacher that is only slow can have longer: "
        "--teacher-timeout 24")


@pytest.mark.slow
def test_a_stuck_teacher_is_refused_within_30_seconds_by_default(tmp_path):
    start = time.monotonic()
    result = run_cli("compress", "--teacher", _loop_teacher(tmp_path / "forever.onnx"), "--out", tmp_path / "s.safetensors")
    assert "in 30 s" in result.stderr and "--teacher-timeout 120" in result.stderr
    assert time.monotonic() - start < 60  # 30 s, plus the two processes' start


def test_a_nan_onnx_teacher_is_refused_at_load(tmp_path):
    from animeedge.runtimes.errors import UserError

    class Nan(nn.Module):
        def forward(self, x):
            return x * torch.tensor(float("nan"))
    with pytest.raises(UserError, match="the teacher returned NaN or infinite values"):
        load_teacher(_onnx(Nan(), tmp_path / "nan.onnx", (1, 3, 64, 64)), probe=False)


def test_a_teacher_whose_output_turns_nan_in_training_stops_naming_the_step(photo_dir, tmp_path):
    from animeedge.compress.teacher import Teacher
    from animeedge.runtimes.errors import UserError
    sizes = []

    def nan_at_64(x):  # fine on the load check's 72x72, NaN on the distillation's 64x64 batches
        sizes.append(x.shape[-1])
        return x * float("nan") if x.shape[-1] == 64 else x
    d = Distiller(Teacher(nan_at_64), tmp_path / "s.safetensors", photo_dir, widths=(0.5, 1.0), resolutions=(RES,),
                  steps=3, progress=False, student_base=8, teacher_res=64)
    with pytest.raises(UserError, match="distillation step 1: the teacher returned NaN or infinite values"):
        d.run()
    assert sizes == [64] and not (tmp_path / "s.safetensors").exists()


@pytest.mark.parametrize("spec", ["sys:exit", "os:abort"])
def test_cli_teacher_that_exits_or_aborts_is_one_line(tmp_path, photo_dir, spec):
    result = run_cli("compress", "--teacher", spec, "--out", tmp_path / "s.safetensors", "--photos", photo_dir,
                     "--calib", photo_dir, "--steps", 1)
    assert result.returncode == 2 and f"animeedge: error: {spec}: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.safetensors").exists()
