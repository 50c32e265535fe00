"""`animeedge stylize`: images, folders and videos through a stylizer, names mirrored.

An existing output file is left alone (that file's error) unless overwrite is asked for,
and a folder input's walk skips the output folder, so a second run into a folder inside
the input neither replaces nor stylizes its own outputs."""
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from animeedge.runtimes.atomic import atomic_path, is_temporary
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import exists, problem
from animeedge.runtimes.formats import SUFFIXES
from animeedge.runtimes.imageio import IMAGE_EXTS, extension_for, image_format, read_frames, write_frames
from animeedge.runtimes.manifest import MANIFEST
from animeedge.runtimes.processing import processing_size
from animeedge.runtimes.video import VIDEO_EXTS, VideoError, VideoReader, VideoWriter, output_name

MEDIA_EXTS = IMAGE_EXTS | VIDEO_EXTS
UPSCALE_WARNING = 2.0


@dataclass
class Job:
    src: Path
    dst: Path
    kind: str  # "image" | "video" | "unknown" (reported as that file's error)


def classify(path: Path) -> tuple[str, str]:
    """(kind, output name). The content decides the kind, not the name: a JPEG named .mp4 is
    an image. An output whose name would not say its content gets the right extension
    appended (clip.mp4 holding a JPEG -> clip.mp4.jpg, an extension-less PNG -> NAME.png), so
    writing never fails on the name and never collides with a sibling's output."""
    fmt = image_format(path)
    if fmt is not None:
        keep = path.suffix.lower() in IMAGE_EXTS
        return "image", path.name if keep else path.name + extension_for(fmt)
    if path.suffix.lower() in VIDEO_EXTS:
        return "video", output_name(path)
    if path.suffix.lower() in IMAGE_EXTS:
        return "image", path.name  # unreadable: reading says why
    return "unknown", path.name


def _check_out(out_dir: Path):
    blocking = next((p for p in (out_dir, *out_dir.parents) if exists(p) and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"{blocking}: exists and is not a folder; --out takes a folder")


def _walk(folder: Path, out_dir: Path) -> list[Path]:
    """The media files under `folder`, links and special files included (stylizing says what
    they are), the output folder and this tool's temporary files left out."""
    skip, files = os.path.realpath(out_dir), []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if os.path.realpath(Path(root, d)) != skip]
        files += [Path(root, n) for n in names if Path(n).suffix.lower() in MEDIA_EXTS and not is_temporary(n)]
    return sorted(files)


def plan_jobs(inputs, out_dir) -> list[Job]:
    out_dir = Path(out_dir)
    _check_out(out_dir)
    jobs = []
    for raw in inputs:
        src = Path(raw)
        if not exists(src):
            jobs.append(Job(src, out_dir / src.name, "missing"))  # that input's error; the others still run
        elif src.is_dir():
            files = _walk(src, out_dir)
            if not files:
                raise UserError(f"{src}: no images or videos in this folder")
            jobs += [Job(f, out_dir / f.relative_to(src).parent / name, kind)
                     for f in files for kind, name in [classify(f)]]
        else:
            kind, name = classify(src)
            jobs.append(Job(src, out_dir / name, kind))
    seen = {}
    for job in jobs:
        if os.path.realpath(job.dst) == os.path.realpath(job.src):  # never raises, a link loop included
            raise UserError(f"{job.src}: output would overwrite the input; choose another --out")
        if job.dst in seen:
            raise UserError(f"{job.src} and {seen[job.dst]} would both be written to {job.dst}")
        seen[job.dst] = job.src
    return jobs


def stylize_video(stylizer, job: Job) -> float:
    reader = VideoReader(job.src)
    writer, upscale = None, 1.0
    with atomic_path(job.dst) as tmp:
        for rgb in tqdm(reader, total=reader.frames, desc=job.src.name, unit="frame", leave=False):
            out = stylizer(rgb)
            if writer is None:
                writer, upscale = VideoWriter(tmp, reader.fps, (out.shape[1], out.shape[0])), _upscale(stylizer, rgb)
            writer.write(out)
        if writer is None:
            raise VideoError("video has no frames")
        writer.close()
    return upscale


def _upscale(stylizer, rgb) -> float:
    """How many times the network's output is enlarged to the picture's size."""
    h, w = rgb.shape[:2]
    return max(h, w) / max(processing_size(h, w, getattr(stylizer, "resolution", None)))


def stylize_file(stylizer, job: Job, overwrite: bool) -> float:
    """Writes the job's output; returns the largest upscale factor it needed."""
    if job.kind == "missing":
        raise UserError("no such file or folder")
    why = problem(job.src)
    if why is not None:
        raise UserError(why)
    if exists(job.dst) and not overwrite:
        raise UserError(f"{job.dst} exists: left as it is (pass --overwrite to replace it)")
    if job.kind == "video":
        return stylize_video(stylizer, job)
    if job.kind == "unknown":
        raise UserError("not a picture or a video this tool reads")
    upscale = 1.0
    outputs = []
    for rgb, alpha, info in read_frames(job.src):
        upscale = max(upscale, _upscale(stylizer, rgb))
        outputs.append((stylizer(rgb), alpha, info))
    write_frames(job.dst, outputs)
    return upscale


def run(stylizer, jobs: list[Job], progress: bool = True, overwrite: bool = False) -> int:
    """Stylize every planned job; returns the number of failures (each reported on one line).
    An existing output is a failure and is left alone unless `overwrite`. Warns once when a
    picture is enlarged more than UPSCALE_WARNING times from what the network made."""
    failures, warned = 0, False
    for job in tqdm(jobs, desc="stylize", unit="file", disable=not progress or len(jobs) < 2):
        try:
            upscale = stylize_file(stylizer, job, overwrite)
        except (UserError, OSError) as exc:
            failures += 1
            tqdm.write(f"animeedge: error: {job.src}: {exc}", file=sys.stderr)
            continue
        if upscale > UPSCALE_WARNING and not warned:
            warned = True
            tqdm.write(f"animeedge: warning: {job.src} was stylized at {stylizer.resolution} px and enlarged "
                       f"{upscale:.1f}x to its size: pass --resolution (or a bundle with a larger one) for detail",
                       file=sys.stderr)
    return failures


def _bundle_stylizer(model, backend, precision, width, resolution, threads):
    from animeedge.runtimes.load import load
    if backend == "torch":
        raise UserError("--backend torch runs a generator checkpoint (.safetensors), not an exported bundle")
    return load(model, width, resolution, backend or "auto", precision or "auto", threads)


def _torch_stylizer(model, backend, precision, width, resolution, threads):
    from animeedge.generator.checkpoint import trained_widths
    from animeedge.generator.inference import TorchStylizer
    if backend not in (None, "torch") or precision not in (None, "fp32"):
        raise UserError(f"--backend {backend or 'torch'} --precision {precision or 'fp32'} needs an "
                        "exported bundle as --model (make one with `animeedge export`)")
    if threads:
        import torch
        torch.set_num_threads(threads)
    width = 1.0 if width is None else width
    trained = trained_widths(model)
    if width not in trained:
        print(f"animeedge: warning: this model was trained for widths {trained} only; "
              f"width {width} runs at its cost but its output is not meaningful until the model "
              "is distilled for it", file=sys.stderr)
    return TorchStylizer(model, width, resolution)


def make_stylizer(model=None, backend=None, precision=None, width=None, resolution=None, threads=None):
    """A bundle or an exported file runs through runtimes.load; a checkpoint (or the embedded
    default, model None) through torch."""
    path = Path(model or "")
    if model and (os.path.lexists(path / MANIFEST) or path.suffix in SUFFIXES):
        return _bundle_stylizer(model, backend, precision, width, resolution, threads)
    return _torch_stylizer(model, backend, precision, width, resolution, threads)


def summary(stylizer, jobs, failures: int, out, model) -> str:
    resolution = f"{stylizer.resolution} px" if stylizer.resolution else "each input's size (at most 1024 px)"
    return (f"stylized {len(jobs) - failures} of {len(jobs)} file(s) into {out}: model "
            f"{model or 'embedded default'}, {stylizer.backend} {stylizer.precision}, width {stylizer.width}, "
            f"{resolution}")
