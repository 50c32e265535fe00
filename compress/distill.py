"""Adaptive-channel, multi-resolution distillation (Anycost GAN for an image-to-image net).

The student is the channel-sorted teacher in deploy form (compress/student.py: static
normalization, one input pad), or with `student="teacher"` the channel-sorted teacher
itself (LADE, the seeds' design). A foreign teacher (compress/teacher.py: an ONNX file or a
torch module) has no weights to start from: the student is a deploy-form network of
`student_base` channels, trained from scratch toward it. Each step draws one resolution (the
batch shrinks above 256 px to keep the step's pixels bounded) and the sandwich of widths: the
full width, the smallest, and one random middle width. Every width is pulled toward the
frozen teacher's output, computed at max(resolution, 256) and area-downsampled, so a
low-resolution output also agrees with the downsampled high-resolution one. The loss is
L1 + 0.5 (1 - SSIM) + L1 of 8x-pooled outputs (the colour of regions, which delta-E measures
and a narrow width loses first), with the full width weighted FULL_WEIGHT: the narrow
widths share its weights and would otherwise pull it off the teacher. `init` starts from a
student this teacher already distilled (a further phase with other settings) instead.
"""
import copy
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from generator.checkpoint import (CheckpointError, load_generator, load_state, prune_checkpoints,
                                  read_meta, resolve_model_path, save_generator, save_state)
from generator.data import evenly_spaced, list_images, load_square, to_tensor
from generator.network import DoubleTailGenerator, GeneratorConfig
from runtimes.atomic import atomic_dir, write_text
from runtimes.errors import UserError
from runtimes.manifest import sha256_path

from .quality import ssim_torch
from .sorting import sort_channels
from .student import DEPLOY, calibrate_affines, deploy_student
from .teacher import Teacher, finite
from .width_affine import calibrate_width_affine

STUDENTS = ("deploy", "teacher")

TEACHER_RES = 256
COLOUR_POOL, FULL_WEIGHT = 8, 2.0
CALIBRATION_PHOTOS = 16


def sandwich(widths, rng) -> list[float]:
    widths = sorted(widths)
    middle = widths[1:-1]
    return [widths[-1], widths[0]] + ([float(rng.choice(middle))] if middle else [])


class Distiller:
    def __init__(self, teacher, out, photos, widths=(0.25, 0.5, 0.75, 1.0), resolutions=(128, 256, 512),
                 steps=600, batch=2, lr=2e-4, ssim_weight=0.5, ckpt_every=50, seed=0, resume=False, progress=True,
                 teacher_res=TEACHER_RES, student="deploy", student_base=32, teacher_license=None, init=None,
                 full_weight=FULL_WEIGHT):
        if student not in STUDENTS:
            raise ValueError(f"unknown student {student!r}; choose {' or '.join(STUDENTS)}")
        self.kind, self.license = student, teacher_license
        if isinstance(teacher, Teacher):
            self._from_scratch(teacher, student_base)
        else:
            self._from_checkpoint(teacher)
        self.student.requires_grad_(True).train()
        self.widths, self.resolutions = sorted(widths), sorted(resolutions)
        self.steps, self.batch, self.lr, self.ssim_weight = steps, batch, lr, ssim_weight
        self.full_weight, self.init = full_weight, None
        self.ckpt_every, self.progress, self.teacher_res = ckpt_every, progress, teacher_res
        self.files = list_images(photos)
        self.rng = np.random.default_rng(seed)
        self.opt = torch.optim.Adam(self.student.parameters(), lr, betas=(0.5, 0.999))
        self.out = Path(out)
        self.work = self.out.with_name(self.out.stem + ".work")
        self.step = 0
        self._prepare(resume, init)

    def _from_checkpoint(self, teacher):
        """The student starts as the channel-sorted teacher (in deploy form unless kind is "teacher")."""
        path = resolve_model_path(teacher)
        self.teacher_hash = sha256_path(path)
        self.teacher = load_generator(path).requires_grad_(False).set_width(1.0)
        self.sorted_teacher = sort_channels(copy.deepcopy(self.teacher))
        self.student = deploy_student(self.sorted_teacher) if self.kind == "deploy" else self.sorted_teacher
        meta = read_meta(path)
        self.source = {"file": path.name, "sha256": self.teacher_hash,
                       "meta": {k: v for k, v in meta.items() if k != "generator"}}

    def _from_scratch(self, teacher: Teacher, base: int):
        self.teacher, self.sorted_teacher = teacher, None
        self.teacher_hash = teacher.describe.get("sha256") or teacher.describe.get("callable")
        self.student = DoubleTailGenerator(GeneratorConfig(base_channels=base, **DEPLOY))
        self.source = teacher.describe | ({"license": self.license} if self.license else {})

    def _load_init(self, init):
        """Start from a student this teacher already distilled (another run's output), not
        from the calibrated teacher: a further phase with other settings."""
        path = resolve_model_path(init)
        if path.resolve() == self.out.resolve():
            raise CheckpointError(f"{path}: --out would overwrite the student given to --init; write elsewhere")
        meta = read_meta(path)
        source = meta.get("compressed_from", {})
        if (source.get("sha256") or source.get("callable")) != self.teacher_hash:
            raise CheckpointError(f"{path}: was not distilled from this teacher; "
                                  "--init continues a student of the same teacher")
        model = load_generator(path)
        if model.cfg != self.student.cfg:
            raise CheckpointError(f"{path}: its network ({meta['generator']}) is not this run's student")
        self.student.load_state_dict(model.state_dict())
        self.init = {"file": path.name, "sha256": sha256_path(path)} | {
            k: meta[k] for k in ("distill_steps", "trained_resolutions", "lr", "full_weight", "initialized_from")
            if k in meta}

    def _checkpoints(self):
        return sorted(self.work.glob("step_*"))

    def _prepare(self, resume, init):
        if init is not None:
            self._load_init(init)
        ckpts = self._checkpoints()
        if ckpts and not resume:
            raise CheckpointError(f"{self.work} holds a distillation in progress; pass --resume or remove it")
        if not ckpts:
            self.work.mkdir(parents=True, exist_ok=True)
            write_text(self.work / "teacher.json", json.dumps({"sha256": self.teacher_hash}) + "\n")
            if init is not None:
                return
            x = torch.stack([to_tensor(load_square(f, self.teacher_res))
                             for f in evenly_spaced(self.files, CALIBRATION_PHOTOS)])
            self.student.train(False)
            if self.sorted_teacher is None:
                pass  # from scratch: nothing to calibrate against
            elif self.kind == "deploy":
                calibrate_affines(self.student, self.sorted_teacher.eval(), x, self.widths)
            else:
                calibrate_width_affine(self.student, x, self.widths)
            self.student.train(True)
            return
        expected = json.loads((self.work / "teacher.json").read_text())["sha256"]
        if expected != self.teacher_hash:
            raise CheckpointError(f"{self.work} was distilled from another teacher; the teacher given does not match it")
        last = ckpts[-1]
        self.student.load_state_dict(load_generator(last / "student.safetensors").state_dict())
        state = load_state(last / "state.pt")
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = json.loads((last / "rng.json").read_text())

    def _save(self):
        with atomic_dir(self.work / f"step_{self.step:07d}") as tmp:
            save_generator(self.student, tmp / "student.safetensors", {"step": self.step})
            save_state({"opt": self.opt.state_dict(), "step": self.step}, tmp / "state.pt")
            (tmp / "rng.json").write_text(json.dumps(self.rng.bit_generator.state))
        prune_checkpoints(self.work, 2)

    def _batch(self, res: int):
        n = max(1, round(self.batch * min(1.0, (self.teacher_res / res) ** 2)))
        side = max(res, self.teacher_res)
        imgs = [load_square(self.files[i], side) for i in self.rng.integers(0, len(self.files), n)]
        x = torch.stack([to_tensor(im[:, ::-1] if self.rng.random() < 0.5 else im) for im in imgs])
        target = self._teach(x)
        if side != res:
            x, target = F.interpolate(x, size=res, mode="area"), F.interpolate(target, size=res, mode="area")
        return x, target

    def _teach(self, x):
        """The teacher's output; a non-finite one (any kind of teacher) stops the run, naming the step."""
        try:
            with torch.no_grad():
                return finite(self.teacher(x))
        except UserError as exc:
            raise UserError(f"distillation step {self.step + 1}: {exc}") from None

    def _set_lr(self):
        for group in self.opt.param_groups:  # cosine decay to 10%
            group["lr"] = self.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, self.step / self.steps))))

    def loss(self, out, target):
        colour = F.l1_loss(F.avg_pool2d(out, COLOUR_POOL), F.avg_pool2d(target, COLOUR_POOL))
        return F.l1_loss(out, target) + self.ssim_weight * (1 - ssim_torch(out, target)) + colour

    def train_step(self) -> dict:
        res = int(self.rng.choice(self.resolutions))
        x, target = self._batch(res)
        self._set_lr()
        self.opt.zero_grad(set_to_none=True)
        stats = {"res": res}
        for width in sandwich(self.widths, self.rng):
            out = self.student.set_width(width)(x)
            loss = self.loss(out, target) * (self.full_weight if width == self.widths[-1] else 1.0)
            loss.backward()
            stats[f"w{width}"] = loss.item()
        self.opt.step()
        self.student.set_width(1.0)
        return stats

    def run(self) -> Path:
        bar = tqdm(total=self.steps, initial=self.step, desc="distill", disable=not self.progress, dynamic_ncols=True)
        while self.step < self.steps:
            stats = self.train_step()
            self.step += 1
            bar.set_postfix({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in stats.items()}, refresh=False)
            bar.update()
            if self.step % self.ckpt_every == 0 or self.step == self.steps:
                self._save()
        bar.close()
        self.student.eval().set_width(1.0)
        distilled = self.step > 0
        save_generator(self.student, self.out, {
            "trained_widths": self.widths if distilled else [1.0],
            "trained_resolutions": self.resolutions if distilled else [],
            "distill_steps": self.step, "lr": self.lr, "full_weight": self.full_weight,
            "student": self.kind, "compressed_from": self.source,
        } | ({"initialized_from": self.init} if self.init else {}))
        return self.out
