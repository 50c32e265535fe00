"""`animeedge stylize`: images, folders and videos through a stylizer, names mirrored."""
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from runtimes.atomic import atomic_path
from runtimes.imageio import IMAGE_EXTS, read_image, write_image
from runtimes.video import VIDEO_EXTS, VideoError, VideoReader, VideoWriter, output_name

from runtimes.errors import UserError


@dataclass
class Job:
    src: Path
    dst: Path
    kind: str  # "image" | "video"


def _kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def plan_jobs(inputs, out_dir) -> list[Job]:
    out_dir = Path(out_dir)
    jobs = []
    for raw in inputs:
        src = Path(raw)
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and _kind(p))
            if not files:
                raise UserError(f"{src}: no images or videos in this folder")
            jobs += [Job(f, out_dir / f.relative_to(src).parent / _out_name(f), _kind(f)) for f in files]
        elif src.is_file():
            jobs.append(Job(src, out_dir / _out_name(src), _kind(src) or "image"))
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


def _out_name(path: Path) -> str:
    return output_name(path) if _kind(path) == "video" else path.name


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
            else:
                rgb, alpha = read_image(job.src)
                write_image(job.dst, stylizer(rgb), alpha)
        except (UserError, OSError) as exc:
            failures += 1
            tqdm.write(f"animeedge: error: {job.src}: {exc}", file=sys.stderr)
    return failures
