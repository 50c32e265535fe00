"""Adaptive-channel, multi-resolution distillation (Anycost GAN for an image-to-image net).

The student is the channel-sorted teacher in deploy form (compress/student.py: static
normalization, one input pad), or with `student="teacher"` the channel-sorted teacher
itself (LADE, the seeds' design). A foreign teacher (compress/teacher.py: an ONNX file or a
torch module) has no weights to give: its student starts as the embedded default student
(`student_init="default"`, which already maps photos to pictures at every width), or from
scratch as a deploy-form network of `student_base` channels whose affines are fitted to
unit-std activations at every width (compress/student.standardize_affines). Each step
draws one resolution (the batch shrinks above 256 px to keep the step's pixels bounded) and
the sandwich of widths: the full width, the smallest, and one random middle width. Every width is pulled toward the
frozen teacher's output, computed at max(resolution, 256) and area-downsampled, so a
low-resolution output also agrees with the downsampled high-resolution one. The loss is
L1 + 0.5 (1 - SSIM) + L1 of 8x-pooled outputs (the colour of regions, which delta-E measures
and a narrow width loses first), with the full width weighted FULL_WEIGHT: the narrow
widths share its weights and would otherwise pull it off the teacher. `init` starts from a
student this teacher already distilled (a further phase with other settings) instead.
Every EVAL_EVERY steps the held-out photos (compress/held_out.py) give each width's PSNR to
the teacher; with `until_db` ({width: dB}) the run stops once every width meets its figure.
With `ema` (a decay, e.g. 0.995) the run also keeps an exponential moving average of the
student's weights (torch.optim.swa_utils): the held-out watch scores it, the checkpoints
hold it, and it is what the run writes. Small batches make neighbouring steps differ as
much as a change of recipe; the average does not.
"""
import copy
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from animeedge.generator.checkpoint import (DEFAULT_MODEL, CheckpointError, load_generator, load_state, prune_checkpoints,
                                  read_meta, resolve_model_path, save_generator, save_state)
from animeedge.generator.data import evenly_spaced, list_images, load_square, to_tensor
from animeedge.generator.network import DoubleTailGenerator, GeneratorConfig
from animeedge.runtimes.atomic import atomic_dir, write_text
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.formats import REFERENCE_RESOLUTION, RESOLUTIONS, WIDTHS
from animeedge.runtimes.manifest import sha256_path
from animeedge.runtimes.processing import from_nchw

from .held_out import EVAL_EVERY, HELD_OUT_PHOTOS, HeldOut
from .quality import ssim_torch
from .sorting import sort_channels
from .student import DEPLOY, match_affines, deploy_student, standardize_affines
from .teacher import Teacher, finite
from .width_affine import fit_width_affine

STUDENTS = ("deploy", "teacher")
STUDENT_INITS = ("default", "scratch")

TEACHER_RES = REFERENCE_RESOLUTION
COLOUR_POOL, FULL_WEIGHT = 8, 2.0
AFFINE_PHOTOS = 16


def sandwich(widths, rng) -> list[float]:
    widths = sorted(widths)
    middle = widths[1:-1]
    return [widths[-1], widths[0]] + ([float(rng.choice(middle))] if middle else [])


def _to(t, device):
    """A tensor, or a tuple of them, on `device`."""
    return tuple(_to(a, device) for a in t) if isinstance(t, tuple) else t.to(device)


class Distiller:
    def __init__(self, teacher, out, photos, widths=WIDTHS, resolutions=RESOLUTIONS,
                 steps=600, batch=2, lr=2e-4, ssim_weight=0.5, ckpt_every=50, seed=0, resume=False, progress=True,
                 teacher_res=TEACHER_RES, student="deploy", student_base=32, teacher_license=None, init=None,
                 full_weight=FULL_WEIGHT, student_init="scratch", held_out=None, until_db=None,
                 eval_every=EVAL_EVERY, device="cpu", ema=None):
        if student not in STUDENTS:
            raise ValueError(f"unknown student {student!r}; choose {' or '.join(STUDENTS)}")
        self.clock, self.seconds_before = time.perf_counter(), 0.0
        self.kind, self.license = student, teacher_license
        self.student_init = None
        if isinstance(teacher, Teacher):
            self._for_teacher(teacher, student_base, student_init)
        else:
            self._from_checkpoint(teacher)
        self.device = torch.device(device)
        if isinstance(self.teacher, torch.nn.Module):
            self.teacher.to(self.device)
        self.student.requires_grad_(True).train()
        self.widths, self.resolutions = sorted(widths), sorted(resolutions)
        self.steps, self.batch, self.lr, self.ssim_weight = steps, batch, lr, ssim_weight
        self.full_weight, self.init = full_weight, None
        if ema is not None and not 0.0 < ema < 1.0:
            raise UserError(f"--ema must be a decay between 0 and 1 (e.g. 0.995), got {ema}")
        self.ema_decay, self.ema = ema, None
        self.ckpt_every, self.progress, self.teacher_res = ckpt_every, progress, teacher_res
        self.files = list_images(photos)
        self.step = 0
        self.eval_every, self.held_out = eval_every, self._held_out(held_out, until_db)
        self.rng = np.random.default_rng(seed)
        self.out = Path(out)
        self.work = self.out.with_name(self.out.stem + ".work")
        self.opt = None
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

    def _for_teacher(self, teacher: Teacher, base: int, student_init: str):
        if student_init not in STUDENT_INITS:
            raise ValueError(f"unknown student init {student_init!r}; choose {' or '.join(STUDENT_INITS)}")
        self.teacher, self.sorted_teacher, self.student_init = teacher, None, student_init
        self.teacher_hash = teacher.describe.get("sha256") or teacher.describe.get("callable")
        self.student = DoubleTailGenerator(GeneratorConfig(base_channels=base, **DEPLOY))
        self.source = teacher.describe | ({"license": self.license} if self.license else {})
        if student_init == "default":
            default = load_generator(DEFAULT_MODEL)
            if replace(default.cfg, head="rgb", photo_skip=False, photo_detail=0) != self.student.cfg:
                raise UserError(f"--student-init default starts from the embedded default student "
                                f"({default.cfg.base_channels} channels); pass --student-base "
                                f"{default.cfg.base_channels} or --student-init scratch")
            self.student = default.train()  # its head too: a teacher's pictures are learnt through the ink composite

    def _held_out(self, folder, until_db):
        """The watch on held-out photos: `folder`'s pictures that are not training photos."""
        bad = [w for w in (until_db or {}) if w not in self.widths]
        if bad:
            raise UserError(f"--until-db names width {bad[0]}, which is not among the widths "
                            f"{','.join(map(str, self.widths))}")
        trained = {f.resolve() for f in self.files}
        files = [f for f in list_images(folder) if f.resolve() not in trained] if folder else []
        if not files:
            if until_db:
                raise UserError("--until-db needs held-out photos that are not training photos: pass --calib DIR")
            return None
        x = torch.stack([to_tensor(load_square(f, self.teacher_res)) for f in evenly_spaced(files, HELD_OUT_PHOTOS)])
        return HeldOut(x, [from_nchw(t[None].cpu().numpy()) for t in self._teach(x)], until_db)

    def _seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.clock

    def _load_init(self, init):
        """Start from a student this teacher already distilled (another run's output), not
        from the affine-fitted teacher: a further phase with other settings."""
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
        opt_state = self._resume(ckpts[-1]) if ckpts else self._start(init)
        self.student.to(self.device)
        self.opt = torch.optim.Adam(self._param_groups(), self.lr, betas=(0.5, 0.999))
        if opt_state is not None:
            self.opt.load_state_dict(opt_state)
        if self.ema_decay:
            self._start_ema(ckpts[-1] if ckpts else None)

    def _param_groups(self) -> list[dict]:
        """The optimizer's parameter groups; a group's "lr_scale" multiplies the run's rate."""
        return [{"params": list(self.student.parameters()), "lr_scale": 1.0}]

    def _start_ema(self, last) -> None:
        """The average starts as the student, or as the checkpoint's average on a resume."""
        self.ema = AveragedModel(self.student, multi_avg_fn=get_ema_multi_avg_fn(self.ema_decay), use_buffers=True)
        saved = last / "ema.safetensors" if last is not None else None
        if saved is not None and saved.is_file():
            self.ema.module.load_state_dict(load_generator(saved).state_dict())
            self.ema.n_averaged.fill_(max(1, self.step))

    @property
    def result(self) -> DoubleTailGenerator:
        """The network the run scores and writes: the weights' average where kept, else the student."""
        return self.ema.module if self.ema is not None else self.student

    def _start(self, init) -> None:
        """A new run: the work folder, and the student's affines fitted at every width."""
        self.work.mkdir(parents=True, exist_ok=True)
        write_text(self.work / "teacher.json", json.dumps({"sha256": self.teacher_hash}) + "\n")
        if init is not None or self.student_init == "default":  # already fitted at every width
            return
        x = torch.stack([to_tensor(load_square(f, self.teacher_res))
                         for f in evenly_spaced(self.files, AFFINE_PHOTOS)])
        self.student.train(False)
        if self.student_init == "scratch":
            standardize_affines(self.student, x, self.widths)
        elif self.kind == "deploy":
            match_affines(self.student, self.sorted_teacher.eval(), x, self.widths)
        else:
            fit_width_affine(self.student, x, self.widths)
        self.student.train(True)

    def _resume(self, last) -> dict:
        """Continue from the checkpoint `last`; returns the optimizer's state (loaded once the
        student is on its device)."""
        expected = json.loads((self.work / "teacher.json").read_text())["sha256"]
        if expected != self.teacher_hash:
            raise CheckpointError(f"{self.work} was distilled from another teacher; the teacher given does not match it")
        self.student.load_state_dict(load_generator(last / "student.safetensors").state_dict())
        state = load_state(last / "state.pt")
        self.step = int(state["step"])
        self.rng.bit_generator.state = json.loads((last / "rng.json").read_text())
        progress = json.loads((last / "progress.json").read_text()) if (last / "progress.json").is_file() else {}
        self.seconds_before = progress.get("seconds", 0.0)
        if self.held_out is not None:
            self.held_out.history = progress.get("held_out_history", [])
        return state["opt"]

    def _save(self):
        with atomic_dir(self.work / f"step_{self.step:07d}") as tmp:
            save_generator(self.student, tmp / "student.safetensors", {"step": self.step})
            if self.ema is not None:
                save_generator(self.ema.module, tmp / "ema.safetensors", {"step": self.step, "ema": self.ema_decay})
            save_state({"opt": self.opt.state_dict(), "step": self.step}, tmp / "state.pt")
            (tmp / "rng.json").write_text(json.dumps(self.rng.bit_generator.state))
            (tmp / "progress.json").write_text(json.dumps({"seconds": self._seconds(), "held_out_history":
                                                           self.held_out.history if self.held_out else []}))
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
        """The teacher's output on the run's device; a non-finite one (any kind of teacher) stops
        the run, naming the step. A network teacher runs on the device, any other on the CPU."""
        network = isinstance(self.teacher, torch.nn.Module)
        try:
            with torch.no_grad():
                return finite(self.teacher(x.to(self.device) if network else x.cpu())).to(self.device)
        except UserError as exc:
            raise UserError(f"distillation step {self.step + 1}: {exc}") from None

    def _set_lr(self):
        rate = self.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, self.step / self.steps))))  # cosine to 10%
        for group in self.opt.param_groups:
            group["lr"] = group.get("lr_scale", 1.0) * rate

    def _forward(self, width, x):
        return self.student.set_width(width)(x)

    def loss(self, out, target):
        colour = F.l1_loss(F.avg_pool2d(out, COLOUR_POOL), F.avg_pool2d(target, COLOUR_POOL))
        return F.l1_loss(out, target) + self.ssim_weight * (1 - ssim_torch(out, target)) + colour

    def train_step(self) -> dict:
        res = int(self.rng.choice(self.resolutions))
        x, target = self._batch(res)
        x, target = x.to(self.device), _to(target, self.device)
        self._set_lr()
        self.opt.zero_grad(set_to_none=True)
        stats = {"res": res}
        for width in sandwich(self.widths, self.rng):
            loss = self.loss(self._forward(width, x), target) * (self.full_weight if width == self.widths[-1] else 1.0)
            loss.backward()
            stats[f"w{width}"] = loss.item()
        self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.student)
        self.student.set_width(1.0)
        return stats

    def _watch(self, bar) -> bool:
        """Score the held-out photos now (once per step); True once every width meets its --until-db figure."""
        if self.held_out is None:
            return False
        history = self.held_out.history
        if not history or history[-1]["step"] != self.step:
            self.held_out.check(self.result, self.widths, self.step, self._seconds())
            if self.progress:
                bar.write(self.held_out.line(), file=sys.stderr)
        return self.held_out.met()

    def run(self) -> Path:
        bar = tqdm(total=self.steps, initial=self.step, desc="distill", disable=not self.progress, dynamic_ncols=True)
        met = self._watch(bar)
        while self.step < self.steps and not met:
            stats = self.train_step()
            self.step += 1
            bar.set_postfix({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in stats.items()}, refresh=False)
            bar.update()
            if self.step % self.eval_every == 0 or self.step == self.steps:
                met = self._watch(bar)
            if self.step % self.ckpt_every == 0 or self.step == self.steps or met:
                self._save()
        bar.close()
        if self.held_out is not None and self.held_out.goals and self.progress:
            print(f"--until-db: {self.held_out.summary()}" + ("; every width met its figure: stopped" if met else ""),
                  flush=True)
        result = self.result.eval().set_width(1.0)
        distilled = self.step > 0 or self.student_init == "default"  # the default student is trained at every width
        save_generator(result, self.out, {
            "trained_widths": self.widths if distilled else [1.0],
            "trained_resolutions": self.resolutions if self.step > 0 else [],
            "distill_steps": self.step, "lr": self.lr, "full_weight": self.full_weight,
            "student": self.kind, "compressed_from": self.source, "seconds": round(self._seconds(), 1),
        } | ({"student_init": self.student_init} if self.student_init else {})
          | ({"held_out": self.held_out.report() | {"every": self.eval_every}} if self.held_out else {})
          | ({"initialized_from": self.init} if self.init else {})
          | ({"ema": self.ema_decay} if self.ema is not None else {}))
        return self.out
