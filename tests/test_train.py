import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from generator.checkpoint import CheckpointError, load_generator, save_generator
from generator.network import DoubleTailGenerator, GeneratorConfig
from generator.train import Trainer, TrainError


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_reconstruction_steps_reduce_the_loss(tiny_config, photo_dir, anime_dir, tmp_path):
    tiny_config["train"] |= {"steps": 40, "init_steps": 40, "ckpt_every": 40}
    Trainer(tiny_config, photo_dir, anime_dir, tmp_path / "run", progress=False).run()
    recon = [r["recon"] for r in _log(tmp_path / "run")]
    assert np.mean(recon[-5:]) < 0.7 * np.mean(recon[:5])


def test_gan_steps_reduce_the_generator_losses(tiny_config, photo_dir, anime_dir, tmp_path):
    tiny_config["train"] |= {"steps": 45, "init_steps": 5, "ckpt_every": 45}
    Trainer(tiny_config, photo_dir, anime_dir, tmp_path / "run", progress=False).run()
    gan = [r for r in _log(tmp_path / "run") if "g" in r]
    assert all(np.isfinite(list(r.values())).all() for r in gan)
    for term in ("structure", "tv"):
        assert np.mean([r[term] for r in gan[-5:]]) < np.mean([r[term] for r in gan[:5]])
    assert (tmp_path / "run" / "samples" / "step_0000045.png").exists()
    assert load_generator(tmp_path / "run").cfg.base_channels == 8


def test_resume_continues_exactly(tiny_config, photo_dir, anime_dir, tmp_path):
    """6 steps straight == 3 steps, stop, --resume to 6 (data order, optimizers, D all restored)."""
    Trainer(tiny_config, photo_dir, anime_dir, tmp_path / "a", progress=False).run(6)
    Trainer(tiny_config, photo_dir, anime_dir, tmp_path / "b", progress=False).run(3)
    with pytest.raises(TrainError, match="--resume"):
        Trainer(tiny_config, photo_dir, anime_dir, tmp_path / "b", progress=False)
    Trainer(tiny_config, photo_dir, anime_dir, tmp_path / "b", resume=True, progress=False).run(6)
    a = load_file(tmp_path / "a" / "checkpoints" / "step_0000006" / "generator.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "step_0000006" / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    g = DoubleTailGenerator(GeneratorConfig(base_channels=8, norm="instance")).eval()
    save_generator(g, tmp_path / "g.safetensors", {"step": 7})
    loaded = load_generator(tmp_path / "g.safetensors")
    assert loaded.cfg.norm == "instance" and loaded.support_tail is None
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), loaded(x))
    assert json.loads((tmp_path / "g.json").read_text())["step"] == 7


def test_bad_checkpoints_are_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_generator(junk)
    with pytest.raises(CheckpointError, match="no such model"):
        load_generator(tmp_path / "missing.safetensors")
