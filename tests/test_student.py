"""The deploy student (compress/student.py): static normalization folded away, one input pad,
and exported files whose op set phone runtimes fuse."""
import collections

import numpy as np
import onnx
import pytest
import torch

from conftest import _folder
from animeedge.compress.export import BundleExporter
from animeedge.compress.student import match_affines, deploy_student
from animeedge.generator.checkpoint import save_generator
from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
from animeedge.generator.norm import SlimAffine
from animeedge.generator.slicing import sliced_copy
from animeedge.runtimes.backends import litert_interpreter
from animeedge.runtimes.manifest import load_manifest


def _teacher():
    torch.manual_seed(0)
    teacher = DoubleTailGenerator(GeneratorConfig(base_channels=8, tail_blocks=1)).eval()
    with torch.no_grad():
        for name, p in teacher.named_parameters():
            if name.endswith("weight") and p.dim() == 4:
                p.normal_(0, 0.4)
    return teacher.requires_grad_(False)


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@torch.no_grad()
def test_slicing_folds_the_affines_into_the_convs_exactly(float64):
    student = deploy_student(_teacher()).eval()
    for affine in [m for m in student.modules() if isinstance(m, SlimAffine)]:
        affine.gain.normal_(1, 0.3)
        affine.bias.normal_(0, 0.3)
    x = torch.rand(2, 3, 37, 29) * 2 - 1
    for width in (0.25, 0.5, 1.0):
        plain = sliced_copy(student, width)
        assert not any(isinstance(m, SlimAffine) for m in plain.modules())
        torch.testing.assert_close(plain(x), student.set_width(width)(x), atol=1e-10, rtol=1e-10)


@torch.no_grad()
def test_calibration_brings_the_student_toward_the_teacher():
    teacher = _teacher()
    x = torch.rand(4, 3, 48, 48) * 2 - 1
    target = teacher(x)
    student = deploy_student(teacher).eval()
    before = float((student(x) - target).square().mean())
    match_affines(student, teacher, x, (0.5, 1.0))
    after = float((student.set_width(1.0)(x) - target).square().mean())
    assert after < 0.6 * before, (before, after)  # LADE's statistics, made static, replace most of it


def test_border_keeps_the_output_size_and_any_shape():
    student = deploy_student(_teacher()).eval()
    with torch.no_grad():
        for h, w in ((1, 1), (5, 300), (33, 17), (64, 64)):
            assert student(torch.zeros(1, 3, h, w)).shape == (1, 3, h, w)


@pytest.fixture(scope="module")
def student_bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("student")
    save_generator(deploy_student(_teacher()), tmp / "s.safetensors", {"trained_widths": [0.5, 1.0]})
    return BundleExporter(tmp / "s.safetensors", tmp / "b", ["onnx", "tflite"], ["fp32", "int8"], [0.5, 1.0], [32],
                          _folder(tmp / "photos", 5, n=4, size=40), progress=False).run()


def _ops(bundle, artifact) -> collections.Counter:
    path = bundle / artifact["file"]
    if artifact["format"] == "onnx":
        return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    interpreter = litert_interpreter()(model_path=str(path))
    return collections.Counter(d["op_name"] for d in interpreter._get_ops_details())


def test_the_students_files_have_no_statistics_and_one_reflect_pad(student_bundle):
    for artifact in load_manifest(student_bundle)["artifacts"]:
        ops = _ops(student_bundle, artifact)
        name = f"{artifact['file']}: {dict(ops)}"
        if artifact["format"] == "onnx":
            assert ops["Conv"] == 13 and ops["Pad"] == 1, name  # the input's reflect pad only
            assert not {"ReduceMean", "Sqrt", "Div", "Mul", "InstanceNormalization"} & set(ops), name
        else:
            assert ops["CONV_2D"] + ops["DEPTHWISE_CONV_2D"] == 13, name
            assert not {"MEAN", "SQRT", "RSQRT", "MUL", "MIRROR_PAD", "SQUARED_DIFFERENCE"} & set(ops), name
            assert ops["PAD"] <= 2, name  # constant pads of the two stride-2 convs (torch pads both sides)


def test_the_students_files_match_torch(student_bundle):
    from animeedge.runtimes.load import load
    from animeedge.generator.checkpoint import load_generator
    model = load_generator(student_bundle.parent / "s.safetensors")
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        reference = sliced_copy(model, 0.5)(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1)
    expected = ((reference[0].permute(1, 2, 0).numpy() + 1) * 127.5).round()
    for backend in ("onnx", "tflite"):
        out = load(student_bundle, 0.5, 32, backend, "fp32")(frame).astype(float)
        assert np.abs(out - expected).max() <= 1, backend


def test_export_teacher_form_flag_picks_the_teacher_form_default(tmp_path):
    from animeedge.cli import build_parser, cmd_export
    from animeedge.generator.checkpoint import TEACHER_FORM_MODEL, read_meta
    args = build_parser().parse_args(["export", "--out", str(tmp_path / "b"), "--teacher-form", "--model", "x"])
    from animeedge.runtimes.errors import UserError
    with pytest.raises(UserError, match="drop --model"):
        cmd_export(args)
    assert read_meta(TEACHER_FORM_MODEL)["generator"]["norm"] == "lade"
