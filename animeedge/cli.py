"""The `animeedge` command line. Heavy imports (torch) happen inside the subcommands."""
import argparse
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

from animeedge.runtimes.console import quiet_libraries
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.files import check_writable_file
from animeedge.runtimes.formats import FORMAT_NAMES, PRECISIONS, RESOLUTIONS, WIDTHS

from .arguments import (choices, cpus, float_from, non_negative_int, positive_float, positive_int, ratios,
                        ratios_with_full, resolution_arg, resolution_list, threads_arg, until_db, width_arg)

def cmd_train(args):
    from animeedge.generator.train import train
    train(args.photos, args.anime, args.out, args.preset, args.config, size=args.size, steps=args.steps,
          batch=args.batch, init=args.init, threads=args.threads, resume=args.resume, cache=args.cache)


def cmd_stylize(args):
    from . import stylize
    jobs = stylize.plan_jobs(args.inputs, args.out)
    stylizer = stylize.make_stylizer(args.model, args.backend, args.precision, args.width, args.resolution,
                                     args.threads)
    failures = stylize.run(stylizer, jobs, overwrite=args.overwrite)
    print(stylize.summary(stylizer, jobs, failures, args.out, args.model))
    return 1 if failures else 0


def cmd_compress(args):
    from animeedge.compress.pipeline import compress
    compress(args)


def cmd_export(args):
    from animeedge.calibration.data import photos_or_samples
    from animeedge.compress.export import BundleExporter
    from animeedge.generator.checkpoint import TEACHER_FORM_MODEL
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
    from animeedge.runtimes.manifest import format_manifest, load_manifest
    print(format_manifest(load_manifest(out)))
    print(f"bundle: {out}")


def cmd_verify(args):
    from .verify import verify_and_report
    verify_and_report(args.bundle, args.cpus, record=not args.no_record, json_path=args.json, formats=args.formats)


def cmd_info(args):
    from .bundle_info import is_bundle_path
    if args.model and is_bundle_path(args.model):  # a bundle or an exported file: no torch needed
        from .bundle_info import bundle_info, format_info, info_json
        info = bundle_info(args.model)
        print(info_json(info) if args.json else format_info(info))
        return
    from animeedge.generator.checkpoint import load_generator, resolve_model_path
    from animeedge.generator.profile import format_table, profile
    report = profile(load_generator(args.model))
    if args.json:
        print(json.dumps(report | {"model": str(resolve_model_path(args.model))}, indent=2))
    else:
        print(f"model: {resolve_model_path(args.model)}  (inference path: encoder + main tail)")
        print(format_table(report))


def cmd_bench(args):
    from animeedge.runtimes.bench_report import table

    from .bench import Bench, write_outputs
    if args.app:
        return _bench_app(args)
    for path in (args.json, args.report, args.plot):  # checked before minutes of timing, not after
        if not path:
            continue
        if Path(path).resolve().is_relative_to(Path(args.bundle).resolve()):
            raise UserError(f"{path}: write reports outside the bundle (its files are checked against the manifest)")
        check_writable_file(path)
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


def _bench_app(args):
    from animeedge.runtimes.atomic import write_text

    from . import app_bench
    if args.json:
        check_writable_file(args.json)
    report = app_bench.run(args.bundle, args.source, args.frames, args.soak, args.threads, args.target_fps)
    print(app_bench.table(report))
    if args.json:
        write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
        print(f"json: {args.json}")


def cmd_quality(args):
    from .quality import check_model, run
    try:
        models = [check_model(m) for m in args.model or []]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        check_writable_file(args.json)
    if args.bundle:  # refused now, not after the portraits are scored
        from .runtimes.load import load
        for width in (0.25, 1.0):
            load(args.bundle, width=width, resolution=256, backend="tflite", precision="int8")
    run(models, args.photos, args.anime, args.n, args.videos, args.judges, args.width, args.sheet, args.json,
        args.public_sheet, args.bundle, args.face_sheet)


def _default_bundle() -> Path:
    for candidate in (Path("demo_out/bundle"), Path("runs/bundle")):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise UserError("no bundle found (demo_out/bundle, runs/bundle): pass --bundle, or make one with "
                    "`make demo` or `animeedge export --out runs/bundle`")


def cmd_app(args):
    from animeedge.mobile_app.session import AppSession, configure_kivy
    configure_kivy()
    if args.screenshot:
        check_writable_file(args.screenshot)
    start = {k: getattr(args, k) for k in ("width", "resolution", "backend", "precision") if getattr(args, k)}
    session = AppSession(args.bundle or _default_bundle(), args.source, auto=not args.manual,
                         target_fps=args.target_fps, threads=args.threads, captures=args.captures, start=start)
    from animeedge.mobile_app.app import AnimeEdgeApp, print_summary
    app = AnimeEdgeApp(session, args.frames, args.screenshot, on_exit=print_summary if args.frames else None)
    app.run()
    return 1 if (app.summary or {}).get("error") else 0


def cmd_demo(args):
    from .demo import run_demo
    run_demo(args.out, args.sheet)


def cmd_package(args):
    from animeedge.mobile_app.package import stage
    out = stage(args.bundle, args.out, tuple(args.formats))
    print(f"staged: {out} (then: cd {out} && buildozer android debug)")


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
    "info": ["animeedge info --json", "animeedge info --model runs/student/default.safetensors",
             "animeedge info --model demo_out/bundle"],
    "bench": ["animeedge bench --bundle runs/bundle --tier auto --json bench.json",
              "animeedge bench --app --bundle demo_out/bundle --frames 100"],
    "quality": ["animeedge quality --n 24 --videos 2", "animeedge quality --model cel runs/cel/student.safetensors"],
    "app": ["animeedge app --bundle runs/bundle", "animeedge app --source clip.mp4 --frames 300 --screenshot app.png"],
    "demo": ["animeedge demo --out demo_out"],
    "package": ["animeedge package --bundle demo_out/bundle --out build/phone"],
    "verify": ["animeedge verify --bundle demo_out/bundle --arch arm64 --cpus cortex-a53,cortex-a76,neoverse-n1",
               "animeedge verify --bundle demo_out/bundle --formats coreml"],
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
    t.add_argument("--size", type=positive_int, help="training crop size (overrides the config)")
    t.add_argument("--steps", type=positive_int, help="total steps (overrides the config)")
    t.add_argument("--batch", type=positive_int, help="batch per process (overrides the config)")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    t.add_argument("--init", help="start from this generator checkpoint, at the step it records")
    t.add_argument("--threads", type=threads_arg, help="torch CPU threads")
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
    s.add_argument("--backend", choices=["auto", "torch", *FORMAT_NAMES],
                   help="runtime (default: torch for a checkpoint, auto for a bundle)")
    s.add_argument("--precision", choices=PRECISIONS,
                   help="artifact precision (default: the fastest on this device of those that meet the "
                   "bundle's fidelity floor, timed once and cached)")
    s.add_argument("--threads", type=threads_arg, help="CPU threads")
    s.add_argument("--width", type=width_arg, help="channel width, e.g. 0.25, 0.5, 0.75 or 1.0 (default: the widest the "
                   "model holds)")
    s.add_argument("--resolution", type=resolution_arg,
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
    c.add_argument("--teacher-multiple", type=positive_int, default=1,
                   help="sizes the teacher needs a multiple of (inputs are reflect-padded to it; default 1)")
    c.add_argument("--teacher-timeout", type=positive_float, metavar="SECONDS",
                   help="how long the teacher may take to load and stylize its first picture, tried in a child "
                   "process, before it is refused as not answering (default 30)")
    c.add_argument("--teacher-weights", help="weights for a module:callable teacher (.safetensors, or a .pt "
                   "read with weights_only)")
    c.add_argument("--teacher-license", help="license text of the teacher, recorded in the checkpoint and bundles")
    c.add_argument("--student-base", type=positive_int, default=32,
                   help="channels of a from-scratch student at width 1.0 (default 32)")
    c.add_argument("--student-init", choices=["default", "scratch"], default="default",
                   help="with --teacher: start the student from the embedded default student, which already maps "
                   "photos to pictures at every width (default; needs --student-base 32), or from scratch")
    c.add_argument("--until-db", type=until_db, metavar="W:DB,...",
                   help="stop once every width named reaches its held-out PSNR to the teacher (e.g. 0.25:22,1.0:28), "
                   "or at --steps; the per-width PSNR is printed every 25 steps")
    c.add_argument("--out", required=True, help="compressed checkpoint to write (.safetensors)")
    c.add_argument("--widths", type=ratios_with_full, default=list(WIDTHS), help="comma-separated ratios")
    c.add_argument("--resolutions", type=resolution_list, default=list(RESOLUTIONS),
                   help="comma-separated training resolutions")
    c.add_argument("--student", choices=["deploy", "teacher"], default="deploy",
                   help="deploy: static normalization folded into the convs, one input pad (what phones fuse; "
                   "default); teacher: the teacher's own Double-Tail + LADE layers")
    c.add_argument("--photos", help="your training photos (default: the research data ../shared/data/photos/train, "
                   "where present)")
    c.add_argument("--calib", help="held-out photos for the report (default: ../shared/data/photos/calib where "
                   "present, else scikit-image's sample pictures)")
    c.add_argument("--steps", type=non_negative_int, default=900, help="distillation steps (default 900)")
    c.add_argument("--batch", type=positive_int, default=2, help="photos per step at <= 256 px (default 2)")
    c.add_argument("--resume", action="store_true", help="continue the distillation in OUT's .work folder")
    c.add_argument("--init", help="start from a student this teacher already distilled (a further phase with other "
                   "settings) instead of the calibrated teacher")
    c.add_argument("--lr", type=positive_float, default=2e-4,
                   help="Adam learning rate, decayed to 10%% by a cosine over the steps (default 2e-4)")
    c.add_argument("--full-weight", type=positive_float, default=2.0,
                   help="loss weight of the full width against each narrower one (default 2)")
    c.add_argument("--ema", type=positive_float, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.995): scored, checkpointed and "
                   "written instead of the last step's weights")
    c.add_argument("--photo-detail", type=non_negative_int, metavar="N",
                   help="with --teacher cel: N channels of a full-resolution path from the photo into the ink head "
                   "(small faces' eyes and lashes; its MACs are paid at every width); default: as the start has it")
    c.add_argument("--small-faces", type=float_from(0.0, 1.0), metavar="SHARE",
                   help="with --teacher cel: the share of 128-px samples that are a portrait made 64 or 96 px, "
                   "framed (the app's small faces; default 0.25)")
    c.add_argument("--report-photos", type=positive_int, default=16, help="held-out photos in the report")
    c.add_argument("--report-json", help="report JSON (default: OUT.report.json)")
    c.add_argument("--grid", help="widths x resolutions grid PNG of astronaut (default: OUT.grid.png)")
    c.add_argument("--threads", type=threads_arg, help="torch CPU threads")
    c.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the student trains: auto takes a CUDA GPU where torch sees one (default auto); "
                   "checkpoints resume on either")
    c.set_defaults(func=cmd_compress)

    e = _command(sub, "export", help="export ONNX / TFLite / Core ML files (fp32, fp16, int8; Core ML "
                 "also int8w) as one bundle")
    e.add_argument("--model", help="generator .safetensors or run folder (default: the embedded default)")
    e.add_argument("--out", required=True, help="bundle folder to write")
    e.add_argument("--formats", type=choices(FORMAT_NAMES), default=list(FORMAT_NAMES),
                   help=f"comma-separated (default {','.join(FORMAT_NAMES)})")
    e.add_argument("--precisions", type=choices(PRECISIONS), default=list(PRECISIONS),
                   help=f"comma-separated (default {','.join(PRECISIONS)})")
    e.add_argument("--widths", type=ratios, help="comma-separated ratios (default: the model's trained widths)")
    e.add_argument("--resolutions", type=resolution_list, default=list(RESOLUTIONS),
                   help=f"comma-separated (default {','.join(map(str, RESOLUTIONS))})")
    e.add_argument("--teacher-form", action="store_true",
                   help="export the default's widths in the teacher's own form (Double-Tail + LADE, a reflect pad "
                   "per conv) instead of the deploy student")
    e.add_argument("--calib", help="photos that calibrate int8 and measure every file (default: "
                   "../shared/data/photos/calib where present, else scikit-image's sample pictures; the manifest "
                   "records which)")
    e.add_argument("--force", action="store_true", help="replace an existing bundle that this tool wrote (a folder "
                   "with its manifest and only the files it lists; never anything else, the current folder or the "
                   "inputs); the new bundle is swapped in when complete")
    e.add_argument("--threads", type=threads_arg, help="torch CPU threads")
    e.set_defaults(func=cmd_export)

    i = _command(sub, "info", help="parameters and MACs per width and resolution; or what a bundle holds and "
                 "whose machine its timings are")
    i.add_argument("--model", help="generator .safetensors or run folder (default: the embedded default): its "
                   "parameters and MACs; or a bundle folder or exported .onnx / .tflite / .mlpackage file: its "
                   "files, widths, resolutions, precisions, recommendation and the machine its timings were "
                   "measured on, compared with this one")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)

    b = _command(sub, "bench", help="latency of every artifact of a bundle, peers, device tier and recommendations")
    b.add_argument("--bundle", required=True, help="bundle folder (from `animeedge export`)")
    b.add_argument("--tier", default="auto", help="auto (probe this device) or the tier this device belongs to: "
                   "low, mid, high, desktop (runtimes/tiers.json)")
    b.add_argument("--warmup", type=non_negative_int, default=5, help="untimed runs before timing (default 5)")
    b.add_argument("--runs", type=positive_int, default=50,
                   help="timed runs, at least (default 50; timing also lasts at least --min-seconds)")
    b.add_argument("--min-seconds", type=float_from(0, 600), default=1.0,
                   help="minimum timing per measurement, 0 to 600 (default 1.0)")
    b.add_argument("--threads", type=threads_arg, help="runtime threads (default: cores, at most 4)")
    b.add_argument("--photo", help="photo for the end-to-end timing (default: a held-out shared photo, "
                   "else scikit-image's astronaut)")
    b.add_argument("--no-peers", action="store_true", help="skip the AnimeGANv2 and torch-eager peers")
    b.add_argument("--rounds", type=positive_int, default=3,
                   help="time the fastest 256-px configuration and the peers this many times, interleaved; "
                   "the speed-up ratios take the best round of each (default 3)")
    b.add_argument("--json", help="write the JSON report here")
    b.add_argument("--report", help="write the Markdown report here")
    b.add_argument("--plot", help="write the latency-vs-quality plot (PNG) here")
    b.add_argument("--app", action="store_true", help="instead: the app's own end-to-end FPS, headless, per "
                   "level of Auto's ladder and in Auto (animeedge/app_bench.py)")
    b.add_argument("--source", help="with --app: a video, folder or synthetic (default: a pan-and-zoom over "
                   "scikit-image's astronaut)")
    b.add_argument("--frames", type=positive_int, default=300, help="with --app: frames per run (default 300)")
    b.add_argument("--soak", type=non_negative_int, default=0, metavar="FRAMES",
                   help="with --app: also one Auto run this long, sampling memory (Linux)")
    b.add_argument("--target-fps", type=float_from(0.5, 240), default=30.0,
                   help="with --app: Auto's frame-rate target, 0.5 to 240 (default 30)")
    b.set_defaults(func=cmd_bench)

    q = _command(sub, "quality", help="score generators on held-out portraits against the project's quality goals")
    q.add_argument("--model", nargs="+", help="checkpoints or run folders, or cel, cartoon, semantic, guide[:STYLE] "
                   "(default: the embedded default)")
    q.add_argument("--photos", help="portraits (default: the research data photos/calib)")
    q.add_argument("--anime", help="anime pictures for the diagnostic classifier (default: the research data "
                   "anime/eval)")
    q.add_argument("--n", type=positive_int, default=100, help="portraits scored (default 100)")
    q.add_argument("--videos", type=non_negative_int, default=6,
                   help="pan-and-zoom videos, one per portrait, for stability (default 6)")
    q.add_argument("--judges", type=positive_int, default=1, help="classifiers (seeds); a stylizer counts by its worst")
    q.add_argument("--width", type=width_arg, default=1.0, help="width scored (default 1.0)")
    q.add_argument("--sheet", help="contact sheet PNG per model, 24 portraits: photo | cartoon filter | cel guide | "
                   "width 1.0 | width 0.25")
    q.add_argument("--public-sheet", help="only write the first model's contact sheet on pictures the project may "
                   "publish, here")
    q.add_argument("--face-sheet", help="only write the public face sheet here: the astronaut's face at full size "
                   "and as the app sees it, photo | cel target | each model")
    q.add_argument("--bundle", help="score the first model's app-scale faces through this bundle's TFLite int8 files "
                   "(widths 0.25 and 1.0 at 256 px), as the app runs them (default: the model in torch)")
    q.add_argument("--json", help="write the figures here")
    q.set_defaults(func=cmd_quality)

    a = _command(sub, "app", help="the live camera app (Kivy): stylize a camera, video or folder as it plays")
    a.add_argument("--bundle", help="bundle folder (default: demo_out/bundle, else runs/bundle)")
    a.add_argument("--source", default="camera",
                   help="camera (or camera:N), a video file (looped), an image folder, or synthetic (default camera)")
    a.add_argument("--frames", type=positive_int, help="show N frames, then exit printing one JSON line")
    a.add_argument("--screenshot", help="save the window as PNG at exit")
    a.add_argument("--manual", action="store_true", help="start with Auto off")
    a.add_argument("--width", type=width_arg, help="start at this width (Auto off)")
    a.add_argument("--resolution", type=resolution_arg, help="start at this resolution (Auto off)")
    a.add_argument("--backend", choices=FORMAT_NAMES, help="start with this runtime (Auto off)")
    a.add_argument("--precision", choices=PRECISIONS, help="start with this precision (Auto off)")
    a.add_argument("--target-fps", type=float_from(0.5, 240),
                   help="Auto's frame-rate target, 0.5 to 240 (default: the device tier's)")
    a.add_argument("--threads", type=threads_arg, help="runtime threads (default: cores, at most 4)")
    a.add_argument("--captures", help="folder for Capture PNGs (default: next to the input, else ./captures)")
    a.set_defaults(func=cmd_app)

    v = _command(sub, "verify", help="run every ONNX/TFLite file on emulated ARM64 CPUs against this host, "
                 "and every Core ML file by the reference evaluator against the fp32 ONNX/TFLite file")
    v.add_argument("--bundle", required=True, help="bundle folder")
    v.add_argument("--arch", choices=["arm64"], default="arm64", help="emulated architecture (arm64)")
    v.add_argument("--cpus", type=cpus, default=["cortex-a53", "cortex-a76", "neoverse-n1"],
                   help="comma-separated qemu CPU models (default cortex-a53,cortex-a76,neoverse-n1)")
    v.add_argument("--formats", type=choices(FORMAT_NAMES), default=list(FORMAT_NAMES),
                   help="comma-separated formats to check (default all; coreml alone needs no ARM64 emulation)")
    v.add_argument("--json", help="write the rows as JSON here")
    v.add_argument("--no-record", action="store_true", help="do not write verified_on into the manifest")
    v.set_defaults(func=cmd_verify)

    d = _command(sub, "demo", help="the main job on the embedded default, headless")
    d.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    d.add_argument("--sheet", help="also write the before/after picture here")
    d.set_defaults(func=cmd_demo)

    k = _command(sub, "package", help="stage the phone app's build folder (buildozer) with a bundle's files")
    k.add_argument("--bundle", required=True, help="exported bundle folder")
    k.add_argument("--out", default="build/phone", help="folder to stage into (default build/phone)")
    k.add_argument("--formats", type=choices(("tflite", "onnx")), default=["tflite"],
                   help="comma-separated formats to ship (default tflite: what the phone runs)")
    k.set_defaults(func=cmd_package)
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
