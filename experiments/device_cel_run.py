"""`compress --teacher cel` on a lent GPU machine, which has torch but neither this package nor
the face models, and takes at most 64 MiB of files along.

pack:  `python experiments/device_cel_run.py pack --out .gpu [--photos 800] [--init CKPT]`
       picks training photos whose cel targets are cached (`.cache/cel-targets`, made by an
       earlier `compress --teacher cel` run; it makes more where too few are). It writes them
       and their targets as OUT/pack.tar.xz (xz packs a flat target to about 48 kB), a copy of
       the fastjsonschema package (not on the machine), and the --init student if given.
train: `bash experiments/device_cel_run.sh BUDGET_S` on the machine (carry OUT): it unpacks
       the pack and runs `python3 experiments/device_cel_run.py train`, which times a few
       steps at each batch size, takes the one with the most photos per second, sizes the
       steps to the budget, and trains the same InkDistiller as the CLI. No held-out watch and
       no report there (both need the face models); score the result here with
       `animeedge quality --model STUDENT`.
"""
import argparse
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np

PACK = "pack.tar.xz"
SIDE = 256
BATCHES = (32, 64, 128)


def pack(args):
    import fastjsonschema

    from animeedge.calibration.data import shared_data
    from animeedge.compress.ink import CelTeacher
    from animeedge.runtimes.imageio import list_images
    photos = Path(args.train) if args.train else shared_data("photos/train", "--train")
    teacher, out = CelTeacher(args.cache), Path(args.out)
    files = list_images(photos)
    cached = [f for f in files if teacher.cache_file(f, SIDE).is_file()]
    rng = np.random.default_rng(0)
    picked = [cached[i] for i in sorted(rng.choice(len(cached), min(args.photos, len(cached)), replace=False))]
    have = set(cached)
    for f in [f for f in files if f not in have][:args.photos - len(picked)]:
        teacher.target(f, SIDE)  # too few cached: make the rest (about half a second each)
        picked.append(f)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / PACK, "w:xz") as tar:
        for photo in picked:
            target = teacher.cache_file(photo, SIDE)
            tar.add(photo, f"photos/{photo.name}")
            with np.load(target) as saved:  # uncompressed inside: xz packs flat pictures better than zip
                buffer = io.BytesIO()
                np.savez(buffer, target=saved["target"], lines=saved["lines"])
            info = tarfile.TarInfo(f"cel-targets/{target.name}")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
    shutil.rmtree(out / "py", ignore_errors=True)
    shutil.copytree(Path(fastjsonschema.__file__).parent, out / "py" / "fastjsonschema")
    if args.init:
        shutil.copy(args.init, out / "init.safetensors")
    print(f"{len(picked)} photos ({len(cached)} were cached): {out / PACK} "
          f"({(out / PACK).stat().st_size / 2 ** 20:.1f} MiB)")


def _rate(make, batch, device) -> float:
    """Training steps per second at `batch`, after three warm-up steps."""
    import torch
    probe = make(batch, 10 ** 6)
    for _ in range(3):
        probe.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        probe.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
    return 10 / (time.perf_counter() - start)


def train(args):
    import torch

    from animeedge.compress.ink import CelTeacher, InkDistiller
    from animeedge.runtimes.imageio import list_images
    torch.backends.cudnn.benchmark = True
    data, out = Path(args.data), Path(args.out)
    teacher = CelTeacher(data / "cel-targets")
    start = time.perf_counter()
    for f in list_images(data / "photos"):
        teacher.target(f, SIDE)
    print(f"targets in memory in {time.perf_counter() - start:.1f} s", flush=True)

    def make(batch, steps, path=Path(args.out) / "probe" / "s.safetensors"):
        return InkDistiller(teacher, path, data / "photos", resolutions=[128, 256], steps=steps, batch=batch,
                            lr=args.lr, init=args.init, student_init="default", device=args.device,
                            ckpt_every=1000, progress=False)

    rates = {b: _rate(make, b, args.device) for b in args.batches}
    batch = max(rates, key=lambda b: b * rates[b])
    steps = max(10, int(rates[batch] * args.budget) // 100 * 100)
    print("steps/s by batch: " + ", ".join(f"{b}: {r:.1f}" for b, r in rates.items())
          + f"; batch {batch}, {steps} steps", flush=True)
    start = time.perf_counter()
    make(batch, steps, out / "student.safetensors").run()
    print(json.dumps({"steps": steps, "batch": batch, "lr": args.lr, "seconds": round(time.perf_counter() - start, 1),
                      "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", default=".gpu")
    p.add_argument("--photos", type=int, default=800, help="training photos to take (800: about 48 MiB)")
    p.add_argument("--train", help="training photos (default: the research data photos/train)")
    p.add_argument("--cache", default=".cache/cel-targets")
    p.add_argument("--init", help="a student of the cel target to continue (compress --init)")
    p.set_defaults(func=pack)
    t = sub.add_parser("train")
    t.add_argument("--data", default="/tmp/data")
    t.add_argument("--out", default="/tmp/run")
    t.add_argument("--budget", type=float, default=300, help="seconds of training")
    t.add_argument("--device", default="cuda")
    t.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=list(BATCHES))
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--init", help="a student of the cel target to continue (the pack's init.safetensors)")
    t.set_defaults(func=train)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
