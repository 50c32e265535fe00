"""Checkpoint I/O: safetensors weights with the JSON config in their metadata (and beside
them as .json for people). Nothing is ever unpickled; optimizer state is read with
torch.load(weights_only=True)."""
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from animeedge.runtimes.atomic import atomic_path, write_text
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import exists, regular_file

from .network import DoubleTailGenerator, GeneratorConfig, inference_state_dict

DEFAULT_MODEL = Path(__file__).parent / "default" / "generator.safetensors"
# the full-width model the default was distilled from: `animeedge compress`'s default teacher
UNCOMPRESSED_MODEL = Path(__file__).parent / "default" / "uncompressed.safetensors"
# the same widths distilled in the teacher's own form (Double-Tail + LADE), for `export --teacher-form`
TEACHER_FORM_MODEL = Path(__file__).parent / "default" / "teacher_form.safetensors"
META_KEY = "animeedge"


class CheckpointError(UserError):
    pass


def save_generator(model: DoubleTailGenerator, path, info: dict | None = None, inference_only=True):
    state = inference_state_dict(model) if inference_only else model.state_dict()
    cfg = model.cfg.to_dict() | ({"support_tail": False} if inference_only else {})
    meta = {"kind": "generator", "generator": cfg} | (info or {})
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")


def read_meta(path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a bad header
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc.__class__.__name__})") from None
    if META_KEY not in meta:
        raise CheckpointError(f"{path}: safetensors file without an animeedge config")
    return json.loads(meta[META_KEY])


def trained_widths(path=None) -> list[float]:
    """Widths the model was trained or distilled for; others run but are not meaningful."""
    return [float(w) for w in read_meta(resolve_model_path(path)).get("trained_widths", [1.0])]


def resolve_model_path(path=None) -> Path:
    """A .safetensors file, or a training run folder (its final or latest generator)."""
    if path is None:
        if not DEFAULT_MODEL.exists():
            raise CheckpointError(f"the embedded default model is missing ({DEFAULT_MODEL}); reinstall animeedge")
        return DEFAULT_MODEL
    path = Path(path)
    if not exists(path):
        raise CheckpointError(f"{path}: no such model file")
    if path.is_dir():
        for candidate in [path / "generator.safetensors", *sorted(path.glob("checkpoints/step_*/generator.safetensors"), reverse=True)]:
            if os.path.lexists(candidate):
                return regular_file(candidate, "model file")  # a FIFO would block the read
        raise CheckpointError(f"{path}: no generator checkpoint in this folder")
    return regular_file(path, "model file")


def load_generator(path=None, inference_only=True) -> DoubleTailGenerator:
    path = resolve_model_path(path)
    meta = read_meta(path)
    if meta.get("kind") != "generator":
        raise CheckpointError(f"{path}: holds a {meta.get('kind')!r}, not a generator")
    cfg = GeneratorConfig.from_dict(meta["generator"])
    if inference_only:
        cfg.support_tail = False
    model = DoubleTailGenerator(cfg)
    state = finite_state(load_file(str(path)), path)
    if inference_only:
        state = {k: v for k, v in state.items() if not k.startswith("support_tail.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # checkpoints from before compression have no per-width LADE affine: it starts as identity
    missing = [k for k in missing if not k.endswith(("width_gain", "width_bias"))]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match their config "
                              f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    return model.eval()


def finite_state(state: dict, path) -> dict:
    """`state`, unless a tensor holds NaN or infinity (a diverged run, a damaged file): such
    weights stylize every picture to one colour, so they are refused where they are read."""
    bad = next((name for name, t in state.items()
                if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise CheckpointError(f"{path}: tensor {bad} holds NaN or infinite values; refused")
    return state


def prune_checkpoints(folder, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step_* folders; returns the remaining ones, oldest first."""
    steps = sorted(Path(folder).glob("step_*"))
    for old in steps[:-keep]:
        shutil.rmtree(old)
    return steps[-keep:]


def save_state(state: dict, path):
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path) -> dict:
    return torch.load(regular_file(path, "training state"), map_location="cpu", weights_only=True)
