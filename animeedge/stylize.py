"""`animeedge stylize`: images, folders and videos through a stylizer, names mirrored."""
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from runtimes.atomic import atomic_path
from runtimes.errors import UserError
from runtimes.imageio import IMAGE_EXTS, extension_for, image_format, read_image, write_image
from runtimes.video import VIDEO_EXTS, VideoError, VideoReader, VideoWriter, output_name

MEDIA_EXTS = IMAGE_EXTS | VIDEO_EXTS


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
    blocking = next((p for p in (out_dir, *out_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"{blocking}: exists and is not a folder; --out takes a folder")


def plan_jobs(inputs, out_dir) -> list[Job]:
    out_dir = Path(out_dir)
    _check_out(out_dir)
    jobs = []
    for raw in inputs:
        src = Path(raw)
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_EXTS)
            if not files:
                raise UserError(f"{src}: no images or videos in this folder")
            jobs += [Job(f, out_dir / f.relative_to(src).parent / name, kind)
                     for f in files for kind, name in [classify(f)]]
        elif src.is_file():
            kind, name = classify(src)
            jobs.append(Job(src, out_dir / name, kind))
        else:
            raise UserError(f"{src}: no such file or folder")
    seen = {}
    for job in jobs:
        if job.dst.resolve() == job.src.resolve():
            raise UserError(f"{job.src}: output would overwrite the input; choose another --out")
        if job.dst in seen:
            raise UserError(f"{job.src} and {seen[job.dst]} would both be written to {job.dst}")
        seen[job.dst] = job.src
    return jobs


def stylize_video(stylizer, job: Job):
    reader = VideoReader(job.src)
    writer = None
    with atomic_path(job.dst) as tmp:
        for rgb in tqdm(reader, total=reader.frames, desc=job.src.name, unit="frame", leave=False):
            out = stylizer(rgb)
            if writer is None:
                writer = VideoWriter(tmp, reader.fps, (out.shape[1], out.shape[0]))
            writer.write(out)
        if writer is None:
            raise VideoError("video has no frames")
        writer.close()


def run(stylizer, jobs: list[Job], progress: bool = True) -> int:
    """Stylize every planned job; returns the number of failures (each reported on one line)."""
    failures = 0
    for job in tqdm(jobs, desc="stylize", unit="file", disable=not progress or len(jobs) < 2):
        try:
            if job.kind == "video":
                stylize_video(stylizer, job)
            elif job.kind == "unknown":
                raise UserError("not a picture or a video this tool reads")
            else:
                rgb, alpha = read_image(job.src)
                write_image(job.dst, stylizer(rgb), alpha)
        except (UserError, OSError) as exc:
            failures += 1
            tqdm.write(f"animeedge: error: {job.src}: {exc}", file=sys.stderr)
    return failures
