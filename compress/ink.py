"""Distilling an ink-head student straight from the clean cel target (`compress --teacher cel`).

The clean cel target (generator/cel.py) is a function of the whole photo: its face models
need the face. It is the teacher here, computed once per training photo and size and cached
(keyed by the file, the size and cel.CODE_KEY) rather than run at every step. The student is
the deploy form with an ink head (generator/network.py: a fill and an ink matte, composited
in the graph), started from the embedded default student: its rgb conv becomes the fill and
the matte starts empty. At each width of the sandwich:
- the fill learns L1 to the target off the target's lines (a line pixel is ink, not the fill
  beneath it), plus L1 of 8x-pooled composites (region colour) and SSIM of the composite;
- the matte learns a class-balanced BCE (ink pixels weighed up to BALANCE times: more makes
  the lines too wide) plus a dice loss, against the target's line mask.
The eyes, brows and lips (cached with the target) weigh FACE_WEIGHT more in the fill's L1 and the
matte's BCE. A sample is at most CROP px square, so a step costs the same at 128 px and above: at 256 px
and above a random crop of the target (a network of ~100 px receptive field learns from crops
what it learns from the whole picture, for a quarter of the time), at 128 px the whole
picture, its target and mask made at 256 px and area-downsampled (the mask becomes a soft
coverage), as the rgb distillation does with its teacher's output; or, for a share of
those, the portrait made 64 or 96 px with its own target (1-px lines, as the app's small faces
need), framed by its mirror image to 128 px.
"""
import functools
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from animeedge.generator import cel
from animeedge.generator.data import load_square, to_tensor
from animeedge.generator.faces import FaceFinder
from animeedge.generator.network import INK, MATTE_BALANCE, DoubleTailGenerator, InkComposite, with_ink_head
from animeedge.runtimes.atomic import atomic_path
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.processing import from_nchw

from .distill import COLOUR_POOL, Distiller
from .quality import ssim_torch
from .teacher import Teacher

BALANCE = MATTE_BALANCE  # the composite takes back the odds this adds (network.MATTE_THRESHOLD)
CROP = 128
MEMORY_ENTRIES = 4096  # targets kept in memory: about 0.45 MB each at 256 px
MATTE_BCE, MATTE_DICE = 0.5, 0.5
FACE_WEIGHT = 4.0  # extra weight of the eyes, brows and lips in the fill's L1 and the matte's BCE
SMALL_SIDES = (64, 96)  # portraits this small (faces 30-70 px) framed in a crop: the faces the app sees
SMALL_SHARE = 0.25  # of the samples at 128 px, by default (--small-faces)
DETAIL_LR = 10.0  # the photo detail path's learning rate against the rest's: it starts at zero, the rest trained


class CelTeacher(Teacher):
    """The clean cel target behind the teacher convention, with a per-file cache of the
    target and its line mask for training."""

    def __init__(self, cache_dir):
        self._finder = None
        self.cache_dir = Path(cache_dir)
        self.target = functools.lru_cache(maxsize=MEMORY_ENTRIES)(self._target)  # this teacher's own memory
        super().__init__(self._run, describe={"callable": f"animeedge.generator.cel:cel_target@{cel.CODE_KEY}"})

    @property
    def finder(self) -> FaceFinder:
        """The face models, loaded on first use: a run whose targets are all cached needs none."""
        if self._finder is None:
            self._finder = FaceFinder()
        return self._finder

    def _run(self, x):
        pictures = [cel.cel_target(from_nchw(img[None].numpy()), self.finder)[0] for img in x]
        return torch.stack([to_tensor(p) for p in pictures])

    def cache_file(self, path, side: int) -> Path:
        """Where the target of the photo `path` at `side` px is cached: keyed by the file's
        bytes, the size and the target's code."""
        key = hashlib.sha1(Path(path).read_bytes() + f":{side}:{cel.CODE_KEY}:features".encode()).hexdigest()[:16]
        return self.cache_dir / f"{key}.npz"

    def _target(self, path, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(photo, target, line mask, face features mask) of a training photo at `side` px,
        cached on disk (a copied photo folder keeps its cache) and in memory."""
        photo = load_square(path, side)
        cached = self.cache_file(path, side)
        if cached.is_file():
            with np.load(cached) as saved:
                return photo, saved["target"], saved["lines"], saved["features"]
        regions = cel.find_regions(photo, self.finder)
        target, lines = cel.cel_target(photo, regions=regions)
        features = cel.features(regions[1], photo.shape, side / cel.SIDE)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, target=target, lines=lines, features=features)
        return photo, target, lines, features


def _flipped(a: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(a[:, ::-1] if flip else a)


def ink_loss(parts, target, mask, features, ssim_weight: float) -> torch.Tensor:
    fill, logit = parts
    weight = 1 + FACE_WEIGHT * features  # the eyes, brows and lips count more
    off = (1 - mask) * weight
    fill_l1 = ((fill - target).abs() * off).sum() / (3 * off.sum()).clamp_min(1)
    out = fill + InkComposite.matte(logit) * (torch.tensor(INK, device=fill.device).view(1, 3, 1, 1) - fill)
    colour = F.l1_loss(F.avg_pool2d(out, COLOUR_POOL), F.avg_pool2d(target, COLOUR_POOL))
    inked = mask.sum()
    balance = ((mask.numel() - inked) / inked.clamp_min(1)).clamp(1, BALANCE)
    bce = (F.binary_cross_entropy_with_logits(logit, mask, pos_weight=balance, reduction="none") * weight).mean()
    a = torch.sigmoid(logit)
    dice = 1 - (2 * (a * mask).sum() + 1) / (a.sum() + inked + 1)
    return fill_l1 + colour + ssim_weight * (1 - ssim_torch(out, target)) + MATTE_BCE * bce + MATTE_DICE * dice


class InkDistiller(Distiller):
    """Distiller for a CelTeacher: an ink-head student, cached targets, ink_loss."""

    photo_skip = True  # the fill adds the photo's low-pass: docs/research/cel-default.md, "The photo skip"

    def __init__(self, *args, photo_detail: int | None = None, small_share: float = SMALL_SHARE, **kwargs):
        if not 0.0 <= small_share <= 1.0:
            raise UserError(f"--small-faces must be a share from 0 to 1, got {small_share}")
        self.photo_detail = photo_detail  # None: as the start has it
        self.small_share = small_share
        super().__init__(*args, **kwargs)

    def _for_teacher(self, teacher, base, student_init):
        super()._for_teacher(teacher, base, student_init)
        start = self.student
        detail = start.cfg.photo_detail if self.photo_detail is None else self.photo_detail
        cfg = replace(start.cfg, head="ink", photo_skip=self.photo_skip, photo_detail=detail)
        if start.cfg != cfg:  # from scratch (rgb), or another head: see with_ink_head
            self.student = with_ink_head(DoubleTailGenerator(cfg), start.state_dict())

    def _param_groups(self) -> list[dict]:
        if self.student.detail is None:
            return super()._param_groups()
        rest = [p for name, p in self.student.named_parameters() if not name.startswith("detail.")]
        return [{"params": rest, "lr_scale": 1.0},
                {"params": list(self.student.detail.parameters()), "lr_scale": DETAIL_LR}]

    def _sample(self, res: int, flip: bool):
        """(photo, target, lines, features) of one training photo for a batch at `res` px: a
        random crop at 256 px and above, else the whole picture, or (small_share of them) the
        portrait made small with its own target and framed by its mirror image."""
        i = self.rng.integers(0, len(self.files))
        if res <= CROP and self.rng.random() < self.small_share:
            side = int(self.rng.choice(SMALL_SIDES))
            pad = [((CROP - side) // 2, CROP - side - (CROP - side) // 2)] * 2
            arrays = [np.pad(a, pad + [(0, 0)] * (a.ndim - 2), mode="reflect") for a in self.teacher.target(self.files[i], side)]
        else:
            side = max(res, self.teacher_res)
            arrays = self.teacher.target(self.files[i], side)
            if res >= CROP * 2:
                y, x = self.rng.integers(0, side - CROP + 1, 2)
                arrays = [a[y:y + CROP, x:x + CROP] for a in arrays]
        return [_flipped(a, flip) for a in arrays]

    def _batch(self, res: int):
        tensors = [self._tensors(self._sample(res, bool(self.rng.random() < 0.5)), min(res, CROP))
                   for _ in range(self.batch)]
        x, target, mask, features = (torch.cat(t).to(self.device) for t in zip(*tensors))
        return x, (target, mask, features)

    @staticmethod
    def _tensors(sample, size: int) -> list[torch.Tensor]:
        """A sample's arrays as 1 x C x size x size tensors (area-downsampled where larger)."""
        photo, target, lines, features = sample
        out = [to_tensor(photo)[None], to_tensor(target)[None]]
        out += [torch.from_numpy(m[None, None].astype(np.float32)) for m in (lines, features)]
        return [F.interpolate(t, size=size, mode="area") if t.shape[-1] > size else t for t in out]

    def _forward(self, width, x):
        return self.student.set_width(width)(x, parts=True)

    def loss(self, out, target):
        return ink_loss(out, *target, self.ssim_weight)
