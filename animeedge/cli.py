"""The `animeedge` command line. Heavy imports (torch) happen inside the subcommands."""
import argparse
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

from runtimes.console import quiet_libraries
from runtimes.errors import UserError

def _width(text: str) -> float:
    """Any channel ratio in (0, 1]: which ones a model holds is the model's to say."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"width must be a channel ratio in (0, 1] such as 0.25 or 0.5, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _threads(text: str) -> int:
    """--threads: bounded as runtimes.load bounds its `threads` (100000 crashed LiteRT)."""
    from runtimes.processing import check_threads
    try:
        return check_threads(int(text) if text.isdigit() else text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _float_from(low: float, high: float):
    """A number in [low, high] (nan and inf are not)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number from {low:g} to {high:g}, got {text!r}")
        return value
    return parse


def _resolution(text: str) -> int:
    from runtimes.manifest import RESOLUTION_RANGE
    low, high = RESOLUTION_RANGE
    if not text.isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"resolution must be an integer from {low} to {high} px, got {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def cmd_train(args):
    import torch

    from generator.checkpoint import resolve_model_path
    from generator.train import Trainer, load_config
    cfg = load_config(args.preset, args.config)
    for key in ("size", "steps", "batch"):
        if getattr(args, key) is not None:
            cfg["train"][key] = getattr(args, key)
    if args.size is not None and "load_size" in cfg["train"]:
        cfg["train"]["load_size"] = max(cfg["train"]["load_size"], args.size)
    if args.init:
        cfg["train"]["init"] = str(resolve_model_path(args.init))
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = Trainer(cfg, args.photos, args.anime, args.out, resume=args.resume, cache_dir=args.cache)
    step = trainer.run()
    if trainer.rank == 0:
        print(f"trained to step {step}: {args.out}/generator.safetensors")


def _bundle_stylizer(args):
    from runtimes.load import load
    if args.backend == "torch":
        raise UserError("--backend torch runs a generator checkpoint (.safetensors), not an exported bundle")
    return load(args.model, args.width, args.resolution, args.backend or "auto", args.precision, args.threads)


def _torch_stylizer(args):
    from generator.checkpoint import trained_widths
    from generator.inference import TorchStylizer
    if args.backend not in (None, "torch") or args.precision not in (None, "fp32"):
        raise UserError(f"--backend {args.backend or 'torch'} --precision {args.precision or 'fp32'} needs an "
                        "exported bundle as --model (make one with `animeedge export`)")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.width is None:
        args.width = 1.0
    trained = trained_widths(args.model)
    if args.width not in trained:
        print(f"animeedge: warning: this model was trained for widths {trained} only; "
              f"width {args.width} runs at its cost but its output is not meaningful until the model "
              "is distilled for it", file=sys.stderr)
    return TorchStylizer(args.model, args.width, args.resolution)


def cmd_stylize(args):
    from runtimes.load import SUFFIXES
    from runtimes.manifest import MANIFEST

    from . import stylize
    jobs = stylize.plan_jobs(args.inputs, args.out)
    model = Path(args.model or "")
    is_bundle = args.model and (os.path.lexists(model / MANIFEST) or model.suffix in SUFFIXES)
    stylizer = _bundle_stylizer(args) if is_bundle else _torch_stylizer(args)
    failures = stylize.run(stylizer, jobs, overwrite=args.overwrite)
    resolution = f"{stylizer.resolution} px" if stylizer.resolution else "each input's size (at most 1024 px)"
    print(f"stylized {len(jobs) - failures} of {len(jobs)} file(s) into {args.out}: model "
          f"{args.model or 'embedded default'}, {stylizer.backend} {stylizer.precision}, width {stylizer.width}, "
          f"{resolution}")
    return 1 if failures else 0


def _ratios(text: str) -> list[float]:
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated ratios in (0, 1], got {text!r}")
    return values


def _ratios_with_full(text: str) -> list[float]:
    """compress's widths: the sandwich rule distills every width from the full one."""
    values = _ratios(text)
    if values[-1] != 1.0:
        raise argparse.ArgumentTypeError(f"compress needs the full width 1.0 among its widths, got {text!r}")
    return values


def _until_db(text: str) -> dict[float, float]:
    """compress --until-db W:DB,...: the held-out PSNR each width must reach."""
    try:
        goals = {float(w): float(db) for w, db in (part.split(":") for part in text.split(",") if part.strip())}
    except ValueError:
        goals = {}
    if not goals or not all(0 < w <= 1 and 0 < db < 100 for w, db in goals.items()):
        raise argparse.ArgumentTypeError(f"expected WIDTH:DB pairs such as 0.25:22,1.0:28, got {text!r}")
    return goals


def _int_list(text: str) -> list[int]:
    parts = [v.strip() for v in text.split(",") if v.strip()]
    try:
        values = sorted({_resolution(v) for v in parts})
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated resolutions from 16 to 4096 px, got {text!r}")
    return values


def cmd_compress(args):
    import skimage.data
    import torch
    from tqdm import tqdm

    from calibration.data import photos_or_samples, shared_data
    from compress.distill import Distiller
    from compress.report import consistency_report, format_report, grid_png, write_report
    from compress.teacher import load_teacher
    from generator.checkpoint import UNCOMPRESSED_MODEL, load_generator
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.generator and args.teacher:
        raise UserError("give --generator (this project's checkpoint) or --teacher (any generator), not both")
    distiller = Distiller
    if args.teacher == "cel":
        from compress.ink import CelTeacher, InkDistiller
        teacher, distiller = CelTeacher(args.cache), InkDistiller
    elif args.teacher:
        teacher = load_teacher(args.teacher, args.teacher_layout, args.teacher_range, args.teacher_multiple,
                               args.teacher_weights)
    if args.teacher:
        print("teacher: " + json.dumps(teacher.describe), file=sys.stderr)
    else:
        teacher = args.generator or UNCOMPRESSED_MODEL
    photos = args.photos or shared_data("photos/train", "--photos")
    calib, source = photos_or_samples(args.calib, "photos/calib")
    print(f"report photos: {source}", file=sys.stderr)
    out = distiller(teacher, args.out, photos, args.widths, args.resolutions, steps=args.steps, batch=args.batch,
                    resume=args.resume, student=args.student, student_base=args.student_base,
                    teacher_license=args.teacher_license, init=args.init, full_weight=args.full_weight, lr=args.lr,
                    student_init=args.student_init, held_out=calib, until_db=args.until_db).run()
    print(f"compressed model: {out}")
    model = load_generator(out)
    bar = tqdm(total=args.report_photos, desc="report", unit="photo")
    reference = teacher if args.teacher else load_generator(teacher)
    report = consistency_report(model, calib, args.report_photos, reference, progress=bar.update)
    bar.close()
    report |= {"model": str(out), "teacher": teacher.describe if args.teacher else str(teacher)}
    print(format_report(report))
    stem = Path(args.out).with_suffix("")
    report_json, grid = args.report_json or f"{stem}.report.json", args.grid or f"{stem}.grid.png"
    write_report(report, report_json)
    grid_png(model, skimage.data.astronaut(), grid)
    print(f"report: {report_json}  grid: {grid}")


def _choices(allowed):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(allowed)}, got {text!r}")
        return list(dict.fromkeys(values))
    return parse


def cmd_export(args):
    from calibration.data import photos_or_samples
    from compress.export import BundleExporter
    from generator.checkpoint import TEACHER_FORM_MODEL
    if args.teacher_form and args.model:
        raise UserError("--teacher-form exports the embedded default's teacher-form widths; drop --model")
    if args.teacher_form:
        args.model = TEACHER_FORM_MODEL
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    calib, source = photos_or_samples(args.calib, "photos/calib")
    if not args.calib and "int8" in args.precisions:
        print(f"int8 calibrated on {source}: pass --calib MY_PHOTOS/ to calibrate on photos like yours",
              file=sys.stderr)
    out = BundleExporter(args.model, args.out, args.formats, args.precisions, args.widths, args.resolutions,
                         calib, force=args.force, calib_source=source).run()  # --out, --force checked before any work
    from runtimes.manifest import format_manifest, load_manifest
    print(format_manifest(load_manifest(out)))
    print(f"bundle: {out}")


def _cpus(text: str) -> list[str]:
    from .arm64 import CPUINFO
    cpus = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in cpus if c.split(",")[0] not in CPUINFO]
    if not cpus or unknown:
        raise argparse.ArgumentTypeError(f"unknown CPU model {', '.join(unknown) or text!r}; one of {', '.join(CPUINFO)}")
    return cpus


def cmd_verify(args):
    from runtimes.atomic import write_text

    from .verify import verify
    rows = verify(args.bundle, args.cpus, record=not args.no_record)
    print(f"{'file':<36} {'cpu':<12} {'max abs':>9} {'PSNR dB':>8}  result")
    for r in rows:
        print(f"{r['file']:<36} {r['cpu']:<12} {r['max_abs_error']:>9.2g} {r['psnr_db']:>8.1f}  {r['result']}")
    runtime = rows[0]["runtime"]
    print(f"aarch64 runtimes under qemu: onnxruntime {runtime['onnxruntime']}, ai-edge-litert {runtime['ai_edge_litert']}")
    if args.json:
        write_text(Path(args.json), json.dumps(rows, indent=2) + "\n")
    failed = [r for r in rows if r["result"].startswith("failed")]
    if failed:
        raise UserError(f"{len(failed)} of {len(rows)} checks failed on emulated ARM64 (see the table)")


def cmd_info(args):
    from generator.checkpoint import load_generator, resolve_model_path
    from generator.profile import format_table, profile
    report = profile(load_generator(args.model))
    if args.json:
        print(json.dumps(report | {"model": str(resolve_model_path(args.model))}, indent=2))
    else:
        print(f"model: {resolve_model_path(args.model)}  (inference path: encoder + main tail)")
        print(format_table(report))


def _creatable(folder: Path) -> bool:
    """Whether a missing folder could be made: a file can be made in its nearest existing parent."""
    parent = next(p for p in folder.parents if p.exists())
    return parent.is_dir() and _can_create_in(parent)


def _check_output(path):
    """Refused before a run, not after it: an output that is a folder, or in a folder that
    cannot be written or made."""
    if Path(path).is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    folder = Path(path).resolve().parent
    if not (_can_create_in(folder) if folder.exists() else _creatable(folder)):
        raise UserError(f"{path}: cannot write there")


def _can_create_in(folder: Path) -> bool:
    """A file can be made there: tried, as permissions alone do not say it (root, /proc,
    a read-only mount)."""
    import tempfile
    try:
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


def cmd_bench(args):
    from runtimes.bench_report import table

    from .bench import Bench, write_outputs
    for path in (args.json, args.report, args.plot):  # checked before minutes of timing, not after
        if not path:
            continue
        if Path(path).resolve().is_relative_to(Path(args.bundle).resolve()):
            raise UserError(f"{path}: write reports outside the bundle (its files are checked against the manifest)")
        _check_output(path)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UserError("--plot needs matplotlib: pip install 'animeedge[bench]'")
    bench = Bench(args.bundle, args.tier, args.warmup, args.runs, args.min_seconds, args.threads,
                  peers=not args.no_peers, photo=args.photo, rounds=args.rounds)
    report = bench.run()
    print(table(report))
    write_outputs(report, args.json, args.report, args.plot)
    for label, path in (("json", args.json), ("report", args.report), ("plot", args.plot)):
        if path:
            print(f"{label}: {path}")


def _default_bundle() -> Path:
    for candidate in (Path("demo_out/bundle"), Path("runs/bundle")):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise UserError("no bundle found (demo_out/bundle, runs/bundle): pass --bundle, or make one with "
                    "`make demo` or `animeedge export --out runs/bundle`")


def cmd_app(args):
    from mobile_app.session import AppSession, configure_kivy
    configure_kivy()
    if args.screenshot:
        _check_output(args.screenshot)
    start = {k: getattr(args, k) for k in ("width", "resolution", "backend", "precision") if getattr(args, k)}
    session = AppSession(args.bundle or _default_bundle(), args.source, auto=not args.manual,
                         target_fps=args.target_fps, threads=args.threads, captures=args.captures, start=start)
    from mobile_app.app import AnimeEdgeApp, print_summary
    app = AnimeEdgeApp(session, args.frames, args.screenshot, on_exit=print_summary if args.frames else None)
    app.run()
    return 1 if (app.summary or {}).get("error") else 0


def cmd_demo(args):
    from .demo import run_demo
    run_demo(args.out, args.sheet)


def _version() -> str:
    from importlib import metadata
    try:
        return metadata.version("animeedge")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


EXAMPLES = {  # each `animeedge COMMAND --help` ends with these lines (the README's test parses them too)
    "train": ["animeedge train --photos ../shared/data/photos/train --anime ../shared/data/anime/train "
              "--out runs/semantic --preset semantic --threads 2",
              "animeedge train --photos ../shared/data/photos/train --anime ../shared/data/anime/train "
              "--out runs/semantic --preset semantic --resume"],
    "stylize": ["animeedge stylize photo.jpg holiday/ clip.mp4 --out styled/",
                "animeedge stylize photo.jpg --out styled/ --model runs/bundle --width 0.5 --resolution 256"],
    "compress": ["animeedge compress --out runs/student/default.safetensors --steps 1200 --threads 2",
                 "animeedge compress --init runs/student/default.safetensors --full-weight 4 --lr 1e-4 --steps 400 "
                 "--resolutions 256 --out runs/student/phase2.safetensors"],
    "export": ["animeedge export --out runs/bundle --threads 2",
               "animeedge export --out runs/small --formats onnx,tflite --precisions fp32,int8 --widths 0.25,0.5 "
               "--resolutions 256"],
    "info": ["animeedge info --json", "animeedge info --model runs/student/default.safetensors"],
    "bench": ["animeedge bench --bundle runs/bundle --tier auto --json bench.json"],
    "app": ["animeedge app --bundle runs/bundle", "animeedge app --source clip.mp4 --frames 300 --screenshot app.png"],
    "demo": ["animeedge demo --out demo_out"],
    "verify": ["animeedge verify --bundle demo_out/bundle --arch arm64 --cpus cortex-a53,cortex-a76,neoverse-n1"],
}


def _command(sub, name: str, help: str):
    lines = EXAMPLES.get(name, [])
    epilog = ("example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join("  " + x for x in lines)) if lines else None
    parser = sub.add_parser(name, help=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own messages and warnings")
    return parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="animeedge", description="Photo-to-anime generator for phones.")
    p.add_argument("--version", action="version", version=f"animeedge {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = _command(sub, "train", help="train the Double-Tail generator on unpaired photos and anime images")
    t.add_argument("--photos", required=True, help="folder of photos (domain A)")
    t.add_argument("--anime", required=True, help="folder of anime images (domain B)")
    t.add_argument("--out", required=True, help="run folder: config, checkpoints, samples, log")
    t.add_argument("--preset", default="default", help="named config in generator/presets (default: default)")
    t.add_argument("--config", help="a config JSON file instead of a preset")
    t.add_argument("--size", type=_positive_int, help="training crop size (overrides the config)")
    t.add_argument("--steps", type=_positive_int, help="total steps (overrides the config)")
    t.add_argument("--batch", type=_positive_int, help="batch per process (overrides the config)")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    t.add_argument("--init", help="start from this generator checkpoint, at the step it records")
    t.add_argument("--threads", type=_threads, help="torch CPU threads")
    t.add_argument("--cache", default=".cache/superpixels", help="superpixel label cache folder")
    t.set_defaults(func=cmd_train)

    s = _command(sub, "stylize", help="stylize images, folders of images or video files")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder or video file")
    s.add_argument("--out", required=True, help="output folder (names mirror the inputs; a folder input's walk "
                   "skips it)")
    s.add_argument("--overwrite", action="store_true", help="replace output files that already exist (without it, "
                   "each existing output is left as it is and reported as that file's error)")
    s.add_argument("--model", help="generator .safetensors, run folder, exported bundle, or one exported "
                   ".onnx / .tflite file (default: the embedded default)")
    s.add_argument("--backend", choices=["auto", "torch", "onnx", "tflite", "coreml"],
                   help="runtime (default: torch for a checkpoint, auto for a bundle)")
    s.add_argument("--precision", choices=["fp32", "fp16", "int8"],
                   help="artifact precision (default: the bundle's recommended one for the backend)")
    s.add_argument("--threads", type=_threads, help="CPU threads")
    s.add_argument("--width", type=_width, help="channel width, e.g. 0.25, 0.5, 0.75 or 1.0 (default: the widest the "
                   "model holds)")
    s.add_argument("--resolution", type=_resolution,
                   help="longer side the network runs at (default: the input's, capped at 1024)")
    s.set_defaults(func=cmd_stylize)

    c = _command(sub, "compress", help="Anycost: sort channels, distill every width and resolution, report")
    c.add_argument("--generator", help="full-width teacher checkpoint (default: the embedded uncompressed default)")
    c.add_argument("--teacher", help="any generator as the teacher: FILE.onnx or package.module:callable (returning "
                   "a torch nn.Module); the student starts as --student-init says. --teacher imports the module and "
                   "runs the callable: use only code you trust (it is tried first in a child process, with a time "
                   "limit). `--teacher cel`: the clean cel target itself, learnt by a student with an ink head")
    c.add_argument("--cache", default=".cache/cel-targets", help="with --teacher cel: the folder that caches each "
                   "training photo's target (default .cache/cel-targets)")
    c.add_argument("--teacher-layout", choices=["nchw", "nhwc"], help="the ONNX teacher's input layout "
                   "(default: read from the graph)")
    c.add_argument("--teacher-range", default="-1,1", choices=["-1,1", "0,1", "0,255"],
                   help="the teacher's input and output value range (default -1,1)")
    c.add_argument("--teacher-multiple", type=_positive_int, default=1,
                   help="sizes the teacher needs a multiple of (inputs are reflect-padded to it; default 1)")
    c.add_argument("--teacher-weights", help="weights for a module:callable teacher (.safetensors, or a .pt "
                   "read with weights_only)")
    c.add_argument("--teacher-license", help="license text of the teacher, recorded in the checkpoint and bundles")
    c.add_argument("--student-base", type=_positive_int, default=32,
                   help="channels of a from-scratch student at width 1.0 (default 32)")
    c.add_argument("--student-init", choices=["default", "scratch"], default="default",
                   help="with --teacher: start the student from the embedded default student, which already maps "
                   "photos to pictures at every width (default; needs --student-base 32), or from scratch")
    c.add_argument("--until-db", type=_until_db, metavar="W:DB,...",
                   help="stop once every width named reaches its held-out PSNR to the teacher (e.g. 0.25:22,1.0:28), "
                   "or at --steps; the per-width PSNR is printed every 25 steps")
    c.add_argument("--out", required=True, help="compressed checkpoint to write (.safetensors)")
    c.add_argument("--widths", type=_ratios_with_full, default=[0.25, 0.5, 0.75, 1.0], help="comma-separated ratios")
    c.add_argument("--resolutions", type=_int_list, default=[128, 256, 512], help="comma-separated training resolutions")
    c.add_argument("--student", choices=["deploy", "teacher"], default="deploy",
                   help="deploy: static normalization folded into the convs, one input pad (what phones fuse; "
                   "default); teacher: the teacher's own Double-Tail + LADE layers")
    c.add_argument("--photos", help="your training photos (default: the research data ../shared/data/photos/train, "
                   "where present)")
    c.add_argument("--calib", help="held-out photos for the report (default: ../shared/data/photos/calib where "
                   "present, else scikit-image's sample pictures)")
    c.add_argument("--steps", type=_non_negative_int, default=900, help="distillation steps (default 900)")
    c.add_argument("--batch", type=_positive_int, default=2, help="photos per step at <= 256 px (default 2)")
    c.add_argument("--resume", action="store_true", help="continue the distillation in OUT's .work folder")
    c.add_argument("--init", help="start from a student this teacher already distilled (a further phase with other "
                   "settings) instead of the calibrated teacher")
    c.add_argument("--lr", type=_positive_float, default=2e-4,
                   help="Adam learning rate, decayed to 10%% by a cosine over the steps (default 2e-4)")
    c.add_argument("--full-weight", type=_positive_float, default=2.0,
                   help="loss weight of the full width against each narrower one (default 2)")
    c.add_argument("--report-photos", type=_positive_int, default=16, help="held-out photos in the report")
    c.add_argument("--report-json", help="report JSON (default: OUT.report.json)")
    c.add_argument("--grid", help="widths x resolutions grid PNG of astronaut (default: OUT.grid.png)")
    c.add_argument("--threads", type=_threads, help="torch CPU threads")
    c.set_defaults(func=cmd_compress)

    e = _command(sub, "export", help="export ONNX / TFLite / Core ML files (fp32, fp16, int8) as one bundle")
    e.add_argument("--model", help="generator .safetensors or run folder (default: the embedded default)")
    e.add_argument("--out", required=True, help="bundle folder to write")
    e.add_argument("--formats", type=_choices(("onnx", "tflite", "coreml")), default=["onnx", "tflite", "coreml"],
                   help="comma-separated (default onnx,tflite,coreml)")
    e.add_argument("--precisions", type=_choices(("fp32", "fp16", "int8")), default=["fp32", "fp16", "int8"],
                   help="comma-separated (default fp32,fp16,int8)")
    e.add_argument("--widths", type=_ratios, help="comma-separated ratios (default: the model's trained widths)")
    e.add_argument("--resolutions", type=_int_list, default=[128, 256, 512],
                   help="comma-separated (default 128,256,512)")
    e.add_argument("--teacher-form", action="store_true",
                   help="export the default's widths in the teacher's own form (Double-Tail + LADE, a reflect pad "
                   "per conv) instead of the deploy student")
    e.add_argument("--calib", help="photos that calibrate int8 and measure every file (default: "
                   "../shared/data/photos/calib where present, else scikit-image's sample pictures; the manifest "
                   "records which)")
    e.add_argument("--force", action="store_true", help="replace an existing bundle that this tool wrote (a folder "
                   "with its manifest and only the files it lists; never anything else, the current folder or the "
                   "inputs); the new bundle is swapped in when complete")
    e.add_argument("--threads", type=_threads, help="torch CPU threads")
    e.set_defaults(func=cmd_export)

    i = _command(sub, "info", help="parameters and MACs per width and resolution")
    i.add_argument("--model", help="generator .safetensors or run folder (default: the embedded default)")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)

    b = _command(sub, "bench", help="latency of every artifact of a bundle, peers, device tier and recommendations")
    b.add_argument("--bundle", required=True, help="bundle folder (from `animeedge export`)")
    b.add_argument("--tier", default="auto", help="auto (probe this device) or the tier this device belongs to: "
                   "low, mid, high, desktop (calibration/tiers.json)")
    b.add_argument("--warmup", type=_non_negative_int, default=5, help="untimed runs before timing (default 5)")
    b.add_argument("--runs", type=_positive_int, default=50,
                   help="timed runs, at least (default 50; timing also lasts at least --min-seconds)")
    b.add_argument("--min-seconds", type=_float_from(0, 600), default=1.0,
                   help="minimum timing per measurement, 0 to 600 (default 1.0)")
    b.add_argument("--threads", type=_threads, help="runtime threads (default: cores, at most 4)")
    b.add_argument("--photo", help="photo for the end-to-end timing (default: a held-out shared photo, "
                   "else scikit-image's astronaut)")
    b.add_argument("--no-peers", action="store_true", help="skip the AnimeGANv2 and torch-eager peers")
    b.add_argument("--rounds", type=_positive_int, default=3,
                   help="time the fastest 256-px configuration and the peers this many times, interleaved; "
                   "the speed-up ratios take the best round of each (default 3)")
    b.add_argument("--json", help="write the JSON report here")
    b.add_argument("--report", help="write the Markdown report here")
    b.add_argument("--plot", help="write the latency-vs-quality plot (PNG) here")
    b.set_defaults(func=cmd_bench)

    a = _command(sub, "app", help="the live camera app (Kivy): stylize a camera, video or folder as it plays")
    a.add_argument("--bundle", help="bundle folder (default: demo_out/bundle, else runs/bundle)")
    a.add_argument("--source", default="camera",
                   help="camera (or camera:N), a video file (looped), an image folder, or synthetic (default camera)")
    a.add_argument("--frames", type=_positive_int, help="show N frames, then exit printing one JSON line")
    a.add_argument("--screenshot", help="save the window as PNG at exit")
    a.add_argument("--manual", action="store_true", help="start with Auto off")
    a.add_argument("--width", type=_width, help="start at this width (Auto off)")
    a.add_argument("--resolution", type=_resolution, help="start at this resolution (Auto off)")
    a.add_argument("--backend", choices=["onnx", "tflite", "coreml"], help="start with this runtime (Auto off)")
    a.add_argument("--precision", choices=["fp32", "fp16", "int8"], help="start with this precision (Auto off)")
    a.add_argument("--target-fps", type=_float_from(0.5, 240),
                   help="Auto's frame-rate target, 0.5 to 240 (default: the device tier's)")
    a.add_argument("--threads", type=_threads, help="runtime threads (default: cores, at most 4)")
    a.add_argument("--captures", help="folder for Capture PNGs (default: next to the input, else ./captures)")
    a.set_defaults(func=cmd_app)

    v = _command(sub, "verify", help="run every ONNX/TFLite file on emulated ARM64 CPUs and compare with this host")
    v.add_argument("--bundle", required=True, help="bundle folder")
    v.add_argument("--arch", choices=["arm64"], default="arm64", help="emulated architecture (arm64)")
    v.add_argument("--cpus", type=_cpus, default=["cortex-a53", "cortex-a76", "neoverse-n1"],
                   help="comma-separated qemu CPU models (default cortex-a53,cortex-a76,neoverse-n1)")
    v.add_argument("--json", help="write the rows as JSON here")
    v.add_argument("--no-record", action="store_true", help="do not write verified_on into the manifest")
    v.set_defaults(func=cmd_verify)

    d = _command(sub, "demo", help="the main job on the embedded default, headless")
    d.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    d.add_argument("--sheet", help="also write the before/after picture here")
    d.set_defaults(func=cmd_demo)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that cleanup (`finally`) runs as for Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries(args.verbose)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return code
    except (UserError, FileNotFoundError) as exc:
        print(f"animeedge: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("animeedge: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("animeedge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `animeedge info --json | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exit's flush does not fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
