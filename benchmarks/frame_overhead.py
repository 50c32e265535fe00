"""What a frame costs beyond the model: per configuration of a bundle, the p50 of each stage of
the end-to-end path (runtimes.load.Stylizer.STAGES: resize in, to_input, the session's
prepare, invoke, the session's finish, from_output, resize out), the end-to-end and
model-only p50 and their difference, on the camera frame `animeedge bench` uses (a held-out
photo as 640x480). Each configuration is timed in a fresh process, as `bench` does
(runtimes/bench.py), `--rounds` times; the table shows the round with the lowest end-to-end
p50 (a slow spell of a shared VM spoils one round, not the table).

    python benchmarks/frame_overhead.py --bundle /tmp/fo_bundle [--resolution 256] [--rounds 3]
        [--runs 200] [--min-seconds 2] [--threads 2] [--json out.json]

Prints a Markdown table; --json also writes every round.
"""
import argparse
import json
import sys

from animeedge.bench import bench_frame
from animeedge.runtimes.atomic import write_text
from animeedge.runtimes.bench import isolated
from animeedge.runtimes.bench_report import stage_table
from animeedge.runtimes.formats import runs_here
from animeedge.runtimes.load import load
from animeedge.runtimes.manifest import load_manifest
from animeedge.runtimes.probe import cpu_description


def cpu_flags() -> str:
    """The vector extensions that decide these figures (x86 Linux; '' elsewhere)."""
    try:
        words = open("/proc/cpuinfo").read().split()
    except OSError:
        return ""
    wanted = sorted({w for w in words if w.startswith(("avx512", "amx")) or w in ("avx2", "avx_vnni", "fma")})
    return " ".join(wanted)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--formats", default="onnx,tflite")
    parser.add_argument("--widths", default=None, help="comma-separated (default: every width at --resolution)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--photo", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    manifest = load_manifest(args.bundle)
    frame, frame_name = bench_frame(manifest, args.photo)
    threads = args.threads or cpu_description()["threads"]
    widths = {float(w) for w in args.widths.split(",")} if args.widths else None
    configs = [a for a in manifest["artifacts"] if a["resolution"] == args.resolution
               and a["format"] in args.formats.split(",") and runs_here(a["format"])
               and (widths is None or a["width"] in widths)]
    settings = {"warmup": args.warmup, "runs": args.runs, "min_seconds": args.min_seconds}
    rows = []
    for a in configs:
        kwargs = {"path": args.bundle, "width": a["width"], "resolution": a["resolution"], "backend": a["format"],
                  "precision": a["precision"], "threads": threads}
        rounds = []
        for r in range(args.rounds):
            print(f"{a['format']} {a['precision']} width {a['width']}: round {r + 1}/{args.rounds}", file=sys.stderr)
            m = isolated(load, kwargs, frame, **settings)
            rounds.append({"p50_ms": m["model"]["p50_ms"], "e2e_p50_ms": m["e2e"]["p50_ms"],
                           "stages_ms": m["stages_ms"]})
        best = min(rounds, key=lambda m: m["e2e_p50_ms"])
        rows.append({k: a[k] for k in ("format", "precision", "width", "resolution")} | best | {"rounds": rounds})
    cpu = cpu_description(threads)
    print(f"{cpu['model']} ({cpu_flags() or cpu['arch']}), {threads} threads; end to end on {frame_name}; "
          f"best of {args.rounds} rounds by e2e p50\n")
    print("\n".join(stage_table(rows)))
    if args.json:
        write_text(args.json, json.dumps({"machine": cpu | {"flags": cpu_flags()}, "frame": frame_name,
                                          "settings": settings | {"threads": threads, "rounds": args.rounds},
                                          "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
