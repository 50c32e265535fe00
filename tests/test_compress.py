import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from animeedge.compress.distill import Distiller
from animeedge.compress.report import consistency_report
from animeedge.compress.sorting import channel_groups, sort_channels
from conftest import run_cli
from animeedge.generator.checkpoint import CheckpointError, load_generator, save_generator
from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
from animeedge.generator.slicing import sliced_copy
from animeedge.generator.slimmable import SlimConv2d


def _random_generator(norm="lade", seed=0, scale=0.3):
    """Untrained weights map everything to one colour; random weights give a real function."""
    torch.manual_seed(seed)
    g = DoubleTailGenerator(GeneratorConfig(base_channels=8, tail_blocks=2, norm=norm, support_tail=False))
    with torch.no_grad():
        for name, p in g.named_parameters():
            p.normal_(0, scale if name.endswith("weight") else 0.1)
    return g.eval()


@pytest.mark.parametrize("norm", ["lade", "instance", "none"])
def test_sorting_keeps_the_full_width_function(norm):
    # float64: random LADE weights amplify float32 rounding, and only a real error should fail
    g = _random_generator(norm).double()
    x = torch.rand(2, 3, 36, 44, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        before = g(x)
        sort_channels(g)
        torch.testing.assert_close(g(x), before, atol=1e-9, rtol=1e-9)
    for group in channel_groups(g):
        score = group.importance()
        assert torch.all(score[:-1] >= score[1:])


def test_sorting_keeps_an_ink_head_with_a_photo_detail_path():
    from dataclasses import replace
    torch.manual_seed(0)
    g = DoubleTailGenerator(replace(_random_generator().cfg, norm="none", head="ink", photo_skip=True,
                                    photo_detail=4)).double()
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.3)
    x = torch.rand(1, 3, 36, 44, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        before = g(x)
        sort_channels(g)
        torch.testing.assert_close(g(x), before, atol=1e-9, rtol=1e-9)


def test_groups_cover_every_slimmable_conv():
    g = _random_generator()
    covered = {id(c) for grp in channel_groups(g) for c in grp.producers + grp.depthwise}
    covered |= {id(n.proj) for grp in channel_groups(g) for n in grp.norms}
    rgb = g.main_tail[-2]
    slim = [m for m in g.modules() if isinstance(m, SlimConv2d) and m is not rgb]
    assert all(id(m) in covered for m in slim)


def _flop_count(model, res):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, res, res))
    return counter.get_total_flops() / 2e9


def test_each_width_runs_and_costs_what_the_report_says(photo_dir):
    g = _random_generator()
    report = consistency_report(g, photo_dir, n=2, resolutions=(32, 64))
    for row in report["rows"]:
        small = sliced_copy(g, row["width"])
        assert row["params"] == sum(p.numel() for p in small.parameters())
        assert row["gmacs"] == pytest.approx(_flop_count(small, row["resolution"]), abs=1e-4)
        assert row["psnr"] is None if row["width"] == 1.0 else row["psnr"] > 0
    by = {(r["width"], r["resolution"]): r for r in report["rows"]}
    assert by[0.25, 64]["gmacs"] < by[1.0, 64]["gmacs"]


def _psnr_vs_teacher(model, teacher, x, width):
    with torch.no_grad():
        mse = (model.set_width(width)(x) - teacher.set_width(1.0)(x)).square().mean()
    return float(10 * torch.log10(4 / mse))


def test_short_distillation_raises_small_width_consistency(photo_dir, tmp_path):
    teacher = tmp_path / "teacher.safetensors"
    save_generator(_random_generator(scale=0.2), teacher)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    x = torch.nn.functional.avg_pool2d(torch.nn.functional.interpolate(x, scale_factor=4), 4)
    d = Distiller(teacher, tmp_path / "c.safetensors", photo_dir, resolutions=(32, 64), steps=60,
                  batch=4, lr=3e-3, ckpt_every=30, progress=False, teacher_res=64)
    before = _psnr_vs_teacher(d.student, d.teacher, x, 0.25)
    out = d.run()
    student = load_generator(out)
    assert _psnr_vs_teacher(student, d.teacher, x, 0.25) > before + 2.0
    assert _psnr_vs_teacher(student, d.teacher, x, 1.0) > 25
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["trained_widths"] == [0.25, 0.5, 0.75, 1.0] and meta["distill_steps"] == 60


def test_resume_refuses_another_teacher(photo_dir, tmp_path):
    for seed in (0, 1):
        save_generator(_random_generator(seed=seed), tmp_path / f"t{seed}.safetensors")
    Distiller(tmp_path / "t0.safetensors", tmp_path / "c.safetensors", photo_dir, resolutions=(32,), steps=2,
              ckpt_every=1, progress=False, teacher_res=32).run()
    with pytest.raises(CheckpointError, match="--resume"):
        Distiller(tmp_path / "t0.safetensors", tmp_path / "c.safetensors", photo_dir, steps=4, progress=False)
    with pytest.raises(CheckpointError, match="another teacher"):
        Distiller(tmp_path / "t1.safetensors", tmp_path / "c.safetensors", photo_dir, steps=4, resume=True,
                  progress=False)


def test_init_continues_a_student_of_the_same_teacher(photo_dir, tmp_path):
    for seed in (0, 1):
        save_generator(_random_generator(seed=seed), tmp_path / f"t{seed}.safetensors")
    first = Distiller(tmp_path / "t0.safetensors", tmp_path / "a.safetensors", photo_dir, resolutions=(32,), steps=3,
                      progress=False, teacher_res=32).run()
    d = Distiller(tmp_path / "t0.safetensors", tmp_path / "b.safetensors", photo_dir, resolutions=(32,), steps=0,
                  progress=False, teacher_res=32, init=first)
    for name, value in load_generator(first).state_dict().items():
        torch.testing.assert_close(d.student.state_dict()[name], value, atol=0, rtol=0)
    meta = json.loads(d.run().with_suffix(".json").read_text())
    assert meta["initialized_from"]["distill_steps"] == 3
    with pytest.raises(CheckpointError, match="would overwrite"):
        Distiller(tmp_path / "t0.safetensors", first, photo_dir, steps=1, progress=False, init=first)
    with pytest.raises(CheckpointError, match="not distilled from this teacher"):
        Distiller(tmp_path / "t1.safetensors", tmp_path / "c.safetensors", photo_dir, steps=1, progress=False,
                  init=first)


@pytest.mark.parametrize("flag,value,message", [
    ("--widths", "0.25,0.5", "full width 1.0"), ("--full-weight", "nan", "positive number"),
    ("--resolutions", "128,abc", "resolutions from 16 to 4096"),
    ("--generator", "missing.safetensors", "no such model file"),
    ("--photo-detail", "8", "need --teacher cel"), ("--small-faces", "0.5", "need --teacher cel"),
    ("--small-faces", "2", "from 0 to 1"), ("--ema", "1.5", "--ema must be a decay"),
])
def test_compress_cli_bad_input(tmp_path, photo_dir, flag, value, message):
    proc = run_cli("compress", "--out", tmp_path / "c.safetensors", "--photos", photo_dir, "--calib", photo_dir,
                   flag, value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]


def test_width_calibration_restores_the_signal_of_narrow_widths():
    """The default's LADE layers shrink the signal when cut to 1/4 of the channels (the output
    goes flat); calibrating the per-width affine brings its scale back, and width 1.0 is untouched."""
    from animeedge.compress.width_affine import fit_width_affine
    from animeedge.generator.checkpoint import UNCOMPRESSED_MODEL
    g = sort_channels(load_generator(UNCOMPRESSED_MODEL))
    torch.manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8) * 2 - 1, size=64, mode="bilinear")
    with torch.no_grad():
        full, narrow = g.set_width(1.0)(x), g.set_width(0.25)(x).std()
        fit_width_affine(g, x, (0.25, 0.5, 0.75, 1.0))
        assert torch.equal(g.set_width(1.0)(x), full)
        assert g.set_width(0.25)(x).std() > 3 * narrow


@pytest.mark.parametrize("ema", [None, 0.5], ids=["weights", "average"])
def test_a_resumed_run_ends_where_an_unbroken_one_does(photo_dir, tmp_path, ema):
    save_generator(_random_generator(seed=0), tmp_path / "t.safetensors")
    settings = dict(resolutions=(32,), steps=4, ckpt_every=2, progress=False, teacher_res=32, ema=ema)
    unbroken = load_generator(Distiller(tmp_path / "t.safetensors", tmp_path / "a.safetensors", photo_dir,
                                        **settings).run())
    broken = Distiller(tmp_path / "t.safetensors", tmp_path / "b.safetensors", photo_dir, **settings)
    for _ in range(2):  # the run stops after its checkpoint at step 2
        broken.train_step()
        broken.step += 1
    broken._save()
    resumed = load_generator(Distiller(tmp_path / "t.safetensors", tmp_path / "b.safetensors", photo_dir,
                                       resume=True, **settings).run())
    for name, value in unbroken.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, atol=1e-6, rtol=0)


def test_with_ema_the_run_writes_the_average_of_its_weights(photo_dir, tmp_path):
    save_generator(_random_generator(seed=0), tmp_path / "t.safetensors")
    d = Distiller(tmp_path / "t.safetensors", tmp_path / "a.safetensors", photo_dir, resolutions=(32,), steps=3,
                  lr=1e-2, progress=False, teacher_res=32, ema=0.5)
    seen = []
    step = d.train_step
    d.train_step = lambda: (step(), seen.append({k: v.clone() for k, v in d.student.state_dict().items()}))[0]
    written = load_generator(d.run())
    for name, value in written.state_dict().items():
        if value.is_floating_point():  # each update: avg = 0.5 avg + 0.5 weights, from the first step's weights
            expected = 0.25 * seen[0][name] + 0.25 * seen[1][name] + 0.5 * seen[2][name]
            torch.testing.assert_close(value, expected, atol=1e-6, rtol=0)
    assert not torch.equal(written.state_dict()["encoder.0.0.weight"], seen[2]["encoder.0.0.weight"])
    assert json.loads((tmp_path / "a.json").read_text())["ema"] == 0.5


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_gpu_where_there_is_none_is_one_line(tmp_path, photo_dir):
    proc = run_cli("compress", "--out", tmp_path / "c.safetensors", "--photos", photo_dir, "--calib", photo_dir,
                   "--steps", "1", "--device", "cuda")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--device cuda: torch sees no CUDA GPU" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "c.safetensors").exists()
