"""The ink head (generator/network.py): a fill and an ink matte, composited in the graph, so
every exported format at every width draws the same lines as torch."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import _folder
from animeedge.compress.export import BundleExporter
from animeedge.compress.ink import BALANCE, ink_loss
from animeedge.generator import cel
from animeedge.generator.checkpoint import DEFAULT_MODEL, TEACHER_FORM_MODEL, load_generator, save_generator
from animeedge.generator.network import (INK, MATTE_THRESHOLD, DoubleTailGenerator, GeneratorConfig, InkComposite,
                                         rescale_matte_logit, with_ink_head)
from animeedge.generator.slicing import sliced_copy
from animeedge.runtimes.manifest import load_manifest
from animeedge.runtimes.opset import check_ops

RES = 32


def _ink_student(full_matte=False, photo_skip=False, photo_detail=0):
    torch.manual_seed(0)
    net = DoubleTailGenerator(GeneratorConfig(base_channels=8, tail_blocks=1, norm="affine", padding="input",
                                              support_tail=False, head="ink", photo_skip=photo_skip,
                                              photo_detail=photo_detail)).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight") and p.dim() == 4:
                p.normal_(0, 0.1 if name.startswith("detail.") else 0.4)  # a detail path that adds, not floods
        if full_matte:  # the matte's logit a constant 30: sigmoid 1 everywhere
            net.main_tail[-2].weight[3] = 0
            net.main_tail[-2].bias[3] = 30.0
    return net.requires_grad_(False)


def _export(tmp, net, name, formats=("onnx", "tflite"), precisions=("fp32", "int8"), widths=(0.5, 1.0)):
    save_generator(net, tmp / f"{name}.safetensors", {"trained_widths": [0.5, 1.0]})
    return BundleExporter(tmp / f"{name}.safetensors", tmp / name, list(formats), list(precisions), list(widths),
                          [RES], _folder(tmp / "photos", 5, n=4, size=40), progress=False).run()


@pytest.fixture(scope="module", params=[(False, 0), (True, 4)],
                ids=["ink", "ink-photo-skip-and-detail"])
def ink_bundle(request, tmp_path_factory):
    skip, detail = request.param
    return _export(tmp_path_factory.mktemp("ink"), _ink_student(photo_skip=skip, photo_detail=detail), "b")


def test_the_ink_colour_is_the_cel_targets():
    assert np.allclose((np.array(INK) + 1) * 127.5, cel.INK)


def test_an_rgb_network_gains_an_ink_head_without_changing_its_output():
    rgb = load_generator(TEACHER_FORM_MODEL).eval()  # an rgb network
    ink = with_ink_head(DoubleTailGenerator(replace(rgb.cfg, head="ink")), rgb.state_dict()).eval()
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        for width in (0.25, 1.0):
            assert (rgb.set_width(width)(x) - ink.set_width(width)(x)).abs().max() < 0.01  # sigmoid(-6) of ink
        fill, logit = ink(x, parts=True)
    assert fill.shape == (1, 3, 40, 56) and logit.shape == (1, 1, 40, 56)


def test_with_a_photo_skip_the_output_starts_as_the_photos_colours():
    rgb = load_generator(TEACHER_FORM_MODEL).eval()  # an rgb network
    ink = with_ink_head(DoubleTailGenerator(replace(rgb.cfg, head="ink", photo_skip=True)), rgb.state_dict()).eval()
    x = torch.tensor([0.6, -0.2, -0.5]).view(1, 3, 1, 1).expand(1, 3, 40, 56).clone()
    x[..., 20:, :] = -0.8  # a dark lower half: the low-pass keeps it, softened only at the edge
    with torch.no_grad():
        out, restyled = ink.set_width(0.25)(x), rgb.set_width(0.25)(x)
    assert (out - x)[..., :16, :].abs().max() < 0.01 and (out - x)[..., 24:, :].abs().max() < 0.01
    assert (restyled - x).abs().mean() > 0.05  # the rgb network, by contrast, recolours


def _default_without_its_photo_path():
    default = load_generator(DEFAULT_MODEL)
    state = {k: v for k, v in default.state_dict().items() if not k.startswith("detail.")}
    return with_ink_head(DoubleTailGenerator(replace(default.cfg, photo_detail=0)), state).eval()


def test_a_network_gaining_a_photo_detail_path_keeps_its_output_then_learns_through_it():
    cel = _default_without_its_photo_path()
    detailed = with_ink_head(DoubleTailGenerator(replace(cel.cfg, photo_detail=8)), cel.state_dict()).eval()
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        for width in (0.25, 1.0):
            assert torch.equal(cel.set_width(width)(x), detailed.set_width(width)(x))
    fill, logit = detailed.set_width(0.25).train()(x, parts=True)
    (fill.sum() + logit.sum()).backward()
    assert detailed.detail.out.weight.grad.abs().sum() > 0  # the path starts silent, not dead
    assert detailed.detail.context.weight.shape[1] == cel.cfg.base_channels  # it reads the tail at any width


def test_the_photo_detail_path_costs_the_same_macs_at_every_width():
    from animeedge.generator.profile import profile
    cel = _default_without_its_photo_path()
    detailed = DoubleTailGenerator(replace(cel.cfg, photo_detail=8))
    plain, more = profile(cel, resolutions=(256,))["widths"], profile(detailed, resolutions=(256,))["widths"]
    padded = (256 + 16) ** 2  # the deploy student's reflect border
    for width, row in plain.items():
        tail = -(-cel.cfg.base_channels * float(width) // 1)
        per_pixel = 3 * 8 * 9 + tail * 8 + 8 * 4  # photo 3x3, context 1x1, out 1x1
        assert (more[width]["gmacs"]["256"] - row["gmacs"]["256"]) * 1e9 == pytest.approx(per_pixel * padded, rel=0.01)


def test_an_ink_network_loads_into_another_ink_head_as_it_is():
    cel = load_generator(DEFAULT_MODEL)
    assert cel.cfg.head == "ink" and cel.cfg.photo_skip
    plain = with_ink_head(DoubleTailGenerator(replace(cel.cfg, photo_skip=False)), cel.state_dict()).state_dict()
    for name, tensor in cel.state_dict().items():
        assert torch.equal(plain[name], tensor), name


def test_the_composite_exports_with_torch_s_output_at_every_width(ink_bundle):
    frame = np.random.default_rng(0).integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    from animeedge.runtimes.load import load
    model = load_generator(ink_bundle.parent / "b.safetensors")
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1
    for width in (0.5, 1.0):
        with torch.no_grad():
            _, logit = model.set_width(width)(x, parts=True)
            reference = sliced_copy(model, width)(x)
        a = InkComposite.matte(logit)
        assert 0.05 < a.mean() < 0.95  # both the fill and the ink show in this picture
        expected = ((reference[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
        for backend in ("onnx", "tflite"):
            out = load(ink_bundle, width, RES, backend, "fp32")(frame).astype(float)
            assert np.abs(out - expected).max() <= 1, (backend, width)


def test_every_ink_head_file_passes_the_bundle_allowlist(ink_bundle, tmp_path):
    coreml = _export(tmp_path, _ink_student(photo_skip=True), "c", ("coreml",), ("fp32", "int8"), (1.0,))
    for bundle in (ink_bundle, coreml):
        for artifact in load_manifest(bundle)["artifacts"]:
            check_ops(bundle / artifact["file"], artifact["format"])


def test_a_full_matte_paints_ink_in_every_format(tmp_path):
    from animeedge.runtimes.load import load
    bundle = _export(tmp_path, _ink_student(full_matte=True), "full", precisions=("fp32",), widths=(1.0,))
    frame = np.random.default_rng(1).integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    for backend in ("onnx", "tflite"):  # fp32: int8 calibration cannot quantize a matte that never varies
        out = load(bundle, 1.0, RES, backend, "fp32")(frame).astype(int)
        assert np.abs(out - cel.INK).max() <= 1, backend


def test_the_ink_loss_rewards_the_right_lines():
    target = torch.full((1, 3, 16, 16), 0.5)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 8, :] = 1
    target = target * (1 - mask) + torch.tensor(INK).view(1, 3, 1, 1) * mask
    right = (target.clone(), (mask * 20 - 10))
    missing = (target.clone(), torch.full_like(mask, -10.0))
    none = torch.zeros_like(mask)
    assert ink_loss(right, target, mask, none, 0.5) < ink_loss(missing, target, mask, none, 0.5) - 0.5


def test_the_ink_loss_weighs_the_eyes_and_lips_more():
    target = torch.full((1, 3, 16, 16), 0.5)
    mask, features = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    features[..., :4, :4] = 1
    matte = torch.full_like(mask, -10.0)
    wrong_there, wrong_elsewhere = target.clone(), target.clone()
    wrong_there[..., :4, :4] = -0.5
    wrong_elsewhere[..., -4:, -4:] = -0.5
    assert (ink_loss((wrong_there, matte), target, mask, features, 0.0)
            > 1.5 * ink_loss((wrong_elsewhere, matte), target, mask, features, 0.0))


class _Targets:
    """A teacher whose target of any photo at `side` px is a picture of that size (the photo a
    ramp, the target its negative, the lines a row), recording the sizes asked for."""

    def __init__(self):
        self.sides = []

    def target(self, path, side):
        self.sides.append(side)
        photo = np.broadcast_to(np.linspace(0, 255, side, dtype=np.uint8)[None, :, None], (side, side, 3)).copy()
        lines = np.zeros((side, side), bool)
        lines[side // 2] = True
        return photo, 255 - photo, lines, lines.copy()


def test_a_cel_batch_mixes_whole_pictures_with_small_framed_portraits():
    from types import SimpleNamespace

    from animeedge.compress.ink import CROP, SMALL_SHARE, SMALL_SIDES, InkDistiller
    ns = SimpleNamespace(rng=np.random.default_rng(0), files=["a", "b"], teacher=_Targets(), teacher_res=256, batch=32,
                         device="cpu", _tensors=InkDistiller._tensors, small_share=SMALL_SHARE)
    ns._sample = lambda res, flip: InkDistiller._sample(ns, res, flip)
    x, (target, mask, features) = InkDistiller._batch(ns, 128)
    assert x.shape == target.shape == (32, 3, CROP, CROP) and mask.shape == features.shape == (32, 1, CROP, CROP)
    assert set(ns.teacher.sides) == {256, *SMALL_SIDES}  # whole pictures (made at 256, shrunk) and small ones
    assert torch.allclose(x + target, torch.ones_like(x) * (x + target)[0, 0, 0, 0], atol=2 / 255)  # aligned
    ns.teacher.sides.clear()
    x, _ = InkDistiller._batch(ns, 256)
    assert x.shape == (32, 3, CROP, CROP) and set(ns.teacher.sides) == {256}  # crops of the 256-px target
    for share, sides in ((1.0, set(SMALL_SIDES)), (0.0, {256})):  # --small-faces
        ns.small_share = share
        ns.teacher.sides.clear()
        InkDistiller._batch(ns, 128)
        assert set(ns.teacher.sides) == sides


def test_the_default_says_it_was_trained_at_every_width_and_its_json_agrees():
    import json

    from animeedge.generator.checkpoint import read_meta
    meta = read_meta(DEFAULT_MODEL)
    assert meta["trained_widths"] == [0.25, 0.5, 0.75, 1.0]  # the demo, export and app read them from here
    assert json.loads(DEFAULT_MODEL.with_suffix(".json").read_text()) == meta


def test_a_cel_student_gains_the_photo_detail_path_which_learns_at_its_own_rate(photo_dir, tmp_path):
    from animeedge.compress.ink import DETAIL_LR, CelTeacher, InkDistiller
    d = InkDistiller(CelTeacher(tmp_path / "cache"), tmp_path / "s.safetensors", photo_dir, steps=10,
                     progress=False, student_init="default", photo_detail=8)
    assert d.student.cfg.photo_detail == 8 and d.student.cfg.photo_skip
    d._set_lr()
    rest, detail = d.opt.param_groups
    assert {id(p) for p in detail["params"]} == {id(p) for p in d.student.detail.parameters()}
    assert detail["lr"] == pytest.approx(DETAIL_LR * rest["lr"]) and rest["lr"] == pytest.approx(d.lr)
    kept = InkDistiller(CelTeacher(tmp_path / "cache"), tmp_path / "t.safetensors", photo_dir, steps=1,
                        progress=False, student_init="default")
    assert kept.student.cfg.photo_detail == load_generator(DEFAULT_MODEL).cfg.photo_detail  # as the start has it


@pytest.mark.parametrize("ink_share, inked", [(0.1, False), (0.3, False), (0.7, True), (0.9, True)])
def test_the_composite_draws_ink_where_the_balanced_matte_says_it_is_more_likely_than_not(ink_share, inked):
    """A pixel the matte cannot place (ink in `ink_share` of its samples) trains, under the
    class-balanced BCE, to a logit whose plain sigmoid says ink even at one in ten; the composite
    covers it by its ink share, so it is ink only where ink is the likelier."""
    logit = torch.zeros(1, requires_grad=True)
    mask = (torch.arange(100) < 100 * ink_share).float()
    optimizer = torch.optim.Adam([logit], lr=0.05)
    for _ in range(600):
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(logit.expand(100), mask, pos_weight=torch.tensor(BALANCE)).backward()
        optimizer.step()
    assert torch.sigmoid(logit).item() > 0.5  # the balanced odds, inflated
    a = InkComposite.matte(logit).item()
    assert (a > 0.5) == inked and abs(a - ink_share) < 0.02


def test_the_export_copy_folds_the_composites_reading_of_the_matte_into_its_convs():
    net = _ink_student(photo_skip=True, photo_detail=4)
    x = torch.rand(1, 3, RES, RES) * 2 - 1
    with torch.no_grad():  # a matte logit about MATTE_THRESHOLD +- 2: where its reading decides
        _, logit = net.set_width(1.0)(x, parts=True)
        k = 2 / logit.std()
        rescale_matte_logit(net, k, MATTE_THRESHOLD - k * logit.mean())
    for width in (0.5, 1.0):
        copy = sliced_copy(net, width)
        assert copy.main_tail[-1].folded and not net.main_tail[-1].folded  # a plain sigmoid in the graph
        with torch.no_grad():
            _, logit = net.set_width(width)(x, parts=True)
            a = InkComposite.matte(logit)
            if width == 1.0:
                assert 0.05 < a.mean() < 0.95 and (a - torch.sigmoid(logit)).abs().max() > 0.3  # the reading matters
            assert (copy(x) - net.set_width(width)(x)).abs().max() < 1e-5
