"""`animeedge compress` end to end: pick the teacher, distill every width, then write the
consistency report and the astronaut grid beside the checkpoint."""
import json
import sys
from pathlib import Path

from animeedge.runtimes.errors import UserError

CEL_TEACHER = "cel"  # --teacher cel: the clean cel target itself (compress/ink.py)


def pick_teacher(generator=None, teacher=None, cache=None, layout=None, value_range="-1,1", multiple=1,
                 weights=None, seconds=None):
    """(teacher, the Distiller class for it): this project's checkpoint (a path), the cel
    target, or any generator behind compress/teacher.py's convention."""
    from .distill import Distiller
    from .teacher import load_teacher
    if generator and teacher:
        raise UserError("give --generator (this project's checkpoint) or --teacher (any generator), not both")
    if teacher == CEL_TEACHER:
        from .ink import CelTeacher, InkDistiller
        return CelTeacher(cache), InkDistiller
    if teacher:
        return load_teacher(teacher, layout, value_range, multiple, weights, seconds=seconds), Distiller
    from animeedge.generator.checkpoint import UNCOMPRESSED_MODEL
    return generator or UNCOMPRESSED_MODEL, Distiller


def report(out, teacher, calib, photos: int, report_json=None, grid=None) -> tuple[str, str]:
    """The consistency report of the checkpoint `out` against its teacher, printed and written
    with the grid; returns their paths."""
    import skimage.data
    from tqdm import tqdm

    from animeedge.generator.checkpoint import load_generator

    from .report import consistency_report, format_report, grid_png, write_report
    model = load_generator(out)
    foreign = not isinstance(teacher, (str, Path))
    bar = tqdm(total=photos, desc="report", unit="photo")
    result = consistency_report(model, calib, photos, teacher if foreign else load_generator(teacher),
                                progress=bar.update)
    bar.close()
    result |= {"model": str(out), "teacher": teacher.describe if foreign else str(teacher)}
    print(format_report(result))
    stem = Path(out).with_suffix("")
    report_json, grid = report_json or f"{stem}.report.json", grid or f"{stem}.grid.png"
    write_report(result, report_json)
    grid_png(model, skimage.data.astronaut(), grid)
    return report_json, grid


def training_device(asked: str) -> str:
    """"cpu" or "cuda" for --device auto/cpu/cuda (cuda only where torch sees a GPU)."""
    import torch
    if asked != "auto":
        if asked == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no CUDA GPU on this machine; pass --device cpu")
        return asked
    return "cuda" if torch.cuda.is_available() else "cpu"


def compress(args) -> None:
    """What `animeedge compress` does with its parsed arguments."""
    import torch

    from animeedge.calibration.data import photos_or_samples, shared_data
    device = training_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher, distiller = pick_teacher(args.generator, args.teacher, args.cache, args.teacher_layout,
                                      args.teacher_range, args.teacher_multiple, args.teacher_weights,
                                      args.teacher_timeout)
    if args.teacher:
        print("teacher: " + json.dumps(teacher.describe), file=sys.stderr)
    photos = args.photos or shared_data("photos/train", "--photos")
    calib, source = photos_or_samples(args.calib, "photos/calib")
    print(f"report photos: {source}", file=sys.stderr)
    extra = {k: v for k, v in (("photo_detail", args.photo_detail), ("small_share", args.small_faces)) if v is not None}
    if extra and args.teacher != CEL_TEACHER:
        raise UserError("--photo-detail and --small-faces shape the cel student's training: they need --teacher cel")
    out = distiller(teacher, args.out, photos, args.widths, args.resolutions, steps=args.steps, batch=args.batch,
                    resume=args.resume, student=args.student, student_base=args.student_base,
                    teacher_license=args.teacher_license, init=args.init, full_weight=args.full_weight, lr=args.lr,
                    student_init=args.student_init, held_out=calib, until_db=args.until_db,
                    device=device, ema=args.ema, **extra).run()
    print(f"compressed model: {out}")
    report_json, grid = report(out, teacher, calib, args.report_photos, args.report_json, args.grid)
    print(f"report: {report_json}  grid: {grid}")
