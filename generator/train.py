"""`animeedge train`: the Double-Tail GAN training loop, single process or torchrun DDP.

Phase 1 (init_steps) trains both tails to reconstruct the photo, as AnimeGAN does, so the
GAN starts from a generator that already keeps content. Phase 2 is the GAN: one patch
discriminator judges anime images (real) against both tails' outputs and edge-smoothed anime
images (fake); the tails get the loss family of losses.py with weights from the config.

A config may list `stages`: from step `from` on, a stage overrides the crop `size`, the
`batch`, the generator's learning rate `lr_g` and any loss weights, and with
`reset_discriminator` starts a fresh discriminator
and fresh optimizers at that step (a new loss balance against an old, confident
discriminator collapses). `init` starts from a generator checkpoint at the step it records.
"""
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from animeedge.runtimes.atomic import atomic_dir, atomic_path, write_text
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import regular_file
from animeedge.runtimes.processing import from_nchw

from . import losses as L
from .checkpoint import load_generator, load_state, prune_checkpoints, read_meta, save_generator, save_state
from .data import ImageStream, evenly_spaced, load_square, to_tensor
from .discriminator import PatchDiscriminator
from .guidance import SEMANTIC, STYLES
from .network import DoubleTailGenerator, GeneratorConfig

PRESETS = Path(__file__).parent / "presets"


class TrainError(UserError):
    pass


def load_config(preset: str | None = "default", path=None) -> dict:
    src = Path(path) if path else PRESETS / f"{preset}.json"
    if not src.exists():
        names = ", ".join(p.stem for p in sorted(PRESETS.glob("*.json")))
        raise TrainError(f"no config {src}" + ("" if path else f"; presets: {names}"))
    cfg = json.loads(regular_file(src, "config").read_text())  # a FIFO would block
    if "extends" in cfg:  # a preset that continues another: its sections merged, stages appended
        base = load_config(cfg.pop("extends"))
        stages = base.pop("stages", []) + cfg.pop("stages", [])
        cfg = {k: base.get(k, {}) | cfg.get(k, {}) for k in base.keys() | cfg.keys()} | {"stages": stages}
    _check_stages(src, cfg.get("stages", []))
    _check_losses(src, [cfg.get("loss", {})] + [st.get("loss", {}) for st in cfg.get("stages", [])])
    return cfg


STAGE_KEYS = {"from", "size", "batch", "guide_style", "lr_g", "loss", "reset_discriminator"}
GENERATOR_LOSSES = ("adv", "structure", "structure_corr", "color", "region", "revision", "guide", "guide_main",
                    "guide_chroma", "guide_ink", "consistency", "tv")
GUIDE_LOSSES = ("guide", "guide_main", "guide_chroma", "guide_ink")  # the losses that need the guide
LOSS_KEYS = set(GENERATOR_LOSSES) | {"init_recon", "d_real", "d_fake", "d_smooth", "structure_scales"}


def _check_stages(src, stages):
    allowed = ", ".join(sorted(STAGE_KEYS))
    for i, stage in enumerate(stages):
        unknown = ", ".join(sorted(set(stage) - STAGE_KEYS))
        if not isinstance(stage.get("from"), int) or unknown:
            raise TrainError(f"{src}: stage {i} needs an integer 'from' and only the keys {allowed}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        if stage.get("guide_style", "sketch") not in (*STYLES, SEMANTIC):
            raise TrainError(f"{src}: stage {i} has guide_style {stage['guide_style']!r}; "
                             f"styles: {', '.join(STYLES)}, {SEMANTIC}")


def _check_losses(src, weight_sets):
    unknown = sorted({k for weights in weight_sets for k in weights} - LOSS_KEYS)
    if unknown:  # a misspelt weight would otherwise be silently ignored
        raise TrainError(f"{src}: unknown loss {', '.join(unknown)}; losses: {', '.join(sorted(LOSS_KEYS))}")


def _world():
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    def __init__(self, cfg: dict, photos, anime, out, resume=False, cache_dir=None, progress=True):
        self.cfg, self.t, self.w = cfg, cfg["train"], cfg["loss"]
        self.out = Path(out)
        self.rank, self.world = _world()
        torch.manual_seed(self.t["seed"])  # identical initial weights on every rank
        self.G = DoubleTailGenerator(GeneratorConfig.from_dict(cfg["generator"] | {"support_tail": True}))
        self.D = PatchDiscriminator(self.t["d_channels"])
        for name, p in self.G.named_parameters():  # per-width LADE affines belong to `compress`
            p.requires_grad_(not name.endswith(("width_gain", "width_bias")))
        self._make_optimizers()
        seed = self.t["seed"] * 1000 + self.rank
        load = self.t.get("load_size")
        self.photos = ImageStream(photos, self.t["size"], seed, cache_dir, load)
        self.anime = ImageStream(anime, self.t["size"], seed + 500, None, load)
        self.step = 0
        self.progress = progress and self.rank == 0
        self._prepare_run_dir(resume)
        self.g, self.d = self._parallel(self.G), self._parallel(self.D)

    def _stage(self) -> dict:
        """The settings of the stage the current step is in (the base config before any)."""
        current = {"size": self.t["size"], "batch": self.t["batch"], "guide_style": self.t.get("guide_style", "sketch"),
                   "lr_g": self.t["lr_g"], "loss": self.cfg["loss"]}
        for stage in self.cfg.get("stages", []):
            if self.step >= stage["from"]:
                current = current | {k: stage[k] for k in ("size", "batch", "guide_style", "lr_g") if k in stage}
                current["loss"] = current["loss"] | stage.get("loss", {})
        return current

    def _apply_stage(self):
        stage = self._stage()
        self.w, self.batch = stage["loss"], stage["batch"]
        self.photos.size = self.anime.size = stage["size"]
        self.photos.guide_style = stage["guide_style"]
        for group in self.opt_g.param_groups:
            group["lr"] = stage["lr_g"]
        for s in self.cfg.get("stages", []):
            if s["from"] == self.step and s.get("reset_discriminator"):
                self._reset_discriminator()

    def _reset_discriminator(self):
        torch.manual_seed(self.t["seed"] + self.step)
        self.D = PatchDiscriminator(self.t["d_channels"])
        self.d = self._parallel(self.D)
        self._make_optimizers()

    def _make_optimizers(self):
        self.opt_g = torch.optim.Adam([p for p in self.G.parameters() if p.requires_grad], self.t["lr_g"],
                                      betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), self.t["lr_d"], betas=(0.5, 0.999))

    def _init_from(self, path):
        """Start from a generator checkpoint (a missing support tail starts as a copy of the
        main tail) at the step it records."""
        meta = read_meta(path)
        loaded = load_generator(path, inference_only=not meta["generator"].get("support_tail"))
        state = loaded.state_dict()
        if loaded.support_tail is None:
            state |= {"support_tail." + k[len("main_tail."):]: v for k, v in state.items() if k.startswith("main_tail.")}
        self.G.load_state_dict(state)
        self.step = int(meta.get("step", 0))

    def _parallel(self, model):
        if self.world == 1:
            return model
        return torch.nn.parallel.DistributedDataParallel(model)

    def _checkpoints(self):
        return sorted((self.out / "checkpoints").glob("step_*"))

    def _prepare_run_dir(self, resume):
        ckpts = self._checkpoints()
        if ckpts and not resume:
            raise TrainError(f"{self.out} already holds checkpoints; pass --resume to continue or choose another --out")
        if ckpts:
            self._load(ckpts[-1])
            return
        if self.t.get("init"):
            self._init_from(self.t["init"])
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text(self.out / "config.json", json.dumps(self.cfg, indent=2) + "\n")

    def _load(self, ckpt: Path):
        self.G.load_state_dict(load_file(ckpt / "generator.safetensors"))
        self.D.load_state_dict(load_file(ckpt / "discriminator.safetensors"))
        state = load_state(ckpt / "state.pt")
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])
        rngs = json.loads((ckpt / "rng.json").read_text())
        self.photos.rng.bit_generator.state = rngs["photos"][self.rank % len(rngs["photos"])]
        self.anime.rng.bit_generator.state = rngs["anime"][self.rank % len(rngs["anime"])]
        torch.manual_seed(self.t["seed"] + self.step)
        if self.rank == 0:
            self._truncate_log()

    def _truncate_log(self):
        """Drops the log lines of steps after the checkpoint: they are about to be run again."""
        log = self.out / "log.jsonl"
        if log.exists():
            kept = [line for line in log.read_text().splitlines(keepends=True)
                    if line.strip() and json.loads(line)["step"] <= self.step]
            write_text(log, "".join(kept))

    def _save(self):
        rngs = {"photos": [self.photos.rng.bit_generator.state], "anime": [self.anime.rng.bit_generator.state]}
        if self.world > 1:
            gathered = [None] * self.world
            dist.all_gather_object(gathered, rngs)
            rngs = {k: [g[k][0] for g in gathered] for k in rngs}
        if self.rank != 0:
            return
        final = self.out / "checkpoints" / f"step_{self.step:07d}"
        with atomic_dir(final) as tmp:
            save_generator(self.G, tmp / "generator.safetensors", {"step": self.step}, inference_only=False)
            save_file({k: v.contiguous() for k, v in self.D.state_dict().items()}, str(tmp / "discriminator.safetensors"))
            save_state({"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "step": self.step},
                       tmp / "state.pt")
            (tmp / "rng.json").write_text(json.dumps(rngs))
        prune_checkpoints(self.out / "checkpoints", self.t["keep_checkpoints"])
        self._save_samples()

    @torch.no_grad()
    def _save_samples(self, n: int = 4):
        photos = torch.stack([to_tensor(load_square(f, self.photos.side)) for f in evenly_spaced(self.photos.files, n)])
        self.G.eval()
        main, support = self.G(photos, with_support=True)
        self.G.train()
        rows = torch.cat([torch.cat(list(t), dim=2) for t in (photos, support, main)], dim=1)
        img = from_nchw(rows[None].numpy())
        with atomic_path(self.out / "samples" / f"step_{self.step:07d}.png") as tmp:
            Image.fromarray(img).save(tmp)

    def _init_step(self, photo):
        main, support = self.g(photo, with_support=True)
        loss = self.w["init_recon"] * (F.l1_loss(main, photo) + F.l1_loss(support, photo))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return {"recon": loss.item()}

    def _discriminator_step(self, main, support):
        """One LSGAN step: anime real; both tails and edge-smoothed anime fake."""
        n = main.shape[0]
        anime, smooth = self.anime.anime_batch(n)
        logits = self.d(torch.cat([anime, support.detach(), main.detach(), smooth]))
        real, fake_s, fake_m, fake_smooth = logits.split(n)
        d_loss = (self.w["d_real"] * (real - 1).square().mean()
                  + self.w["d_fake"] * (fake_s.square().mean() + fake_m.square().mean()) / 2
                  + self.w["d_smooth"] * fake_smooth.square().mean())
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        return d_loss.item()

    def _adversarial(self, main, support):
        """The generator's LSGAN loss, through the discriminator's plain module, frozen, so
        DDP does not reduce its grads."""
        self.D.requires_grad_(False)
        adv_s, adv_m = self.D(torch.cat([support, main])).split(main.shape[0])
        self.D.requires_grad_(True)
        return L.lsgan_g(adv_s) + L.lsgan_g(adv_m)

    def _gan_step(self, photo, labels, guide):
        main, support = self.g(photo, with_support=True)
        # a stage without the adversarial loss is supervised: the discriminator rests
        d_loss = self._discriminator_step(main, support) if self.w.get("adv") else None
        # the move depends on (seed, step, rank) only, so --resume stays exact
        move = torch.Generator().manual_seed((self.t["seed"] * 1_000_003 + self.step) * 1024 + self.rank)
        scales = self.w.get("structure_scales", (2, 4, 8))
        losses = {  # computed only where the current stage weighs them
            "adv": lambda: self._adversarial(main, support),
            "structure": lambda: sum(L.structure_loss(photo, x, scales) for x in (support, main)),
            "structure_corr": lambda: sum(L.structure_corr_loss(photo, x) for x in (support, main)),
            "color": lambda: L.color_loss(photo, support) + L.color_loss(photo, main),
            "region": lambda: L.region_loss(support, labels),
            "revision": lambda: L.revision_loss(main, support, photo),
            "guide": lambda: F.l1_loss(support, guide),
            "guide_main": lambda: F.l1_loss(main, guide),
            "guide_chroma": lambda: L.chroma_l1(support, guide) + L.chroma_l1(main, guide),
            "guide_ink": lambda: L.ink_l1(main, guide),
            "consistency": lambda: L.consistency_loss(self.g, photo, main, move),
            "tv": lambda: L.tv_loss(support) + L.tv_loss(main),
        }
        terms = {k: losses[k]() for k in GENERATOR_LOSSES if self.w.get(k)}
        g_loss = sum(self.w.get(k, 0.0) * v for k, v in terms.items())
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        stats = {"g": g_loss.item()} | {k: v.item() for k, v in terms.items()}
        return stats if d_loss is None else {"d": d_loss} | stats

    def run(self, steps: int | None = None):
        steps = steps or self.t["steps"]
        bar = tqdm(total=steps, initial=self.step, disable=not self.progress, desc="train", dynamic_ncols=True)
        log = self.out / "log.jsonl"
        self.G.train()
        while self.step < steps:
            self._apply_stage()
            gan = self.step >= self.t["init_steps"]
            with_guide = gan and any(self.w.get(k) for k in GUIDE_LOSSES)
            photo, labels, guide = self.photos.photo_batch(self.batch, with_guide=with_guide)
            stats = self._gan_step(photo, labels, guide) if gan else self._init_step(photo)
            self.step += 1
            if self.rank == 0:
                with open(log, "a") as f:
                    f.write(json.dumps({"step": self.step, "time": round(time.time(), 2)} | stats) + "\n")
                bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
            bar.update()
            if self.step % self.t["ckpt_every"] == 0 or self.step == steps:
                self._save()
        bar.close()
        if self.rank == 0:
            save_generator(self.G, self.out / "generator.safetensors", {"step": self.step})
        return self.step


def train(photos, anime, out, preset="default", config=None, size=None, steps=None, batch=None, init=None,
          threads=None, resume=False, cache=None) -> int:
    """What `animeedge train` does: the preset or config, with the options given overriding it."""
    from .checkpoint import resolve_model_path
    cfg = load_config(preset, config)
    for key, value in (("size", size), ("steps", steps), ("batch", batch)):
        if value is not None:
            cfg["train"][key] = value
    if size is not None and "load_size" in cfg["train"]:
        cfg["train"]["load_size"] = max(cfg["train"]["load_size"], size)
    if init:
        cfg["train"]["init"] = str(resolve_model_path(init))
    if threads:
        torch.set_num_threads(threads)
    trainer = Trainer(cfg, photos, anime, out, resume=resume, cache_dir=cache)
    step = trainer.run()
    if trainer.rank == 0:
        print(f"trained to step {step}: {out}/generator.safetensors")
    return step
