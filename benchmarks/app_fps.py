"""End-to-end FPS measured by the app itself (source read -> inference -> texture), per
configuration: runs `animeedge app --frames N` once per (width, resolution) of one runtime,
headless, and collects the JSON line each run prints.

    python benchmarks/app_fps.py --bundle runs/bundle [--backend tflite --precision int8]
                                 [--source synthetic] [--frames 300] [--json runs/app_fps.json]
"""
import argparse
import json
import subprocess
import sys

from animeedge.runtimes.manifest import load_manifest


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--backend", default="tflite")
    p.add_argument("--precision", default="int8")
    p.add_argument("--source", default="synthetic")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--json")
    args = p.parse_args()
    arts = [a for a in load_manifest(args.bundle)["artifacts"]
            if (a["format"], a["precision"]) == (args.backend, args.precision)]
    rows = []
    for width, res in sorted({(a["width"], a["resolution"]) for a in arts}, key=lambda c: (c[1], c[0])):
        cmd = [sys.executable, "-m", "animeedge", "app", "--bundle", args.bundle, "--source", args.source,
               "--frames", str(args.frames), "--backend", args.backend, "--precision", args.precision,
               "--width", str(width), "--resolution", str(res)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{args.backend} {args.precision} width {width} {res} px: {r['fps']:.1f} FPS end to end, "
              f"model p50 {r['model_p50_ms']:.2f} ms", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
