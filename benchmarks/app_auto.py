"""Auto mode's end-to-end FPS on two videos: the demo's pan-and-zoom over `astronaut` and a
pan-and-zoom over held-out portraits (photos/calib; written under runs/, never committed).
Runs `animeedge app --frames N` in Auto on each and prints the app's own JSON line (issue
21's goal: >= 30 FPS end to end, the target a floor).

    python benchmarks/app_auto.py --bundle demo_out/bundle [--frames 300] [--portraits 6]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import skimage.data

from animeedge.demo import write_pan_video
from animeedge.calibration.data import shared_data
from animeedge.generator.data import evenly_spaced, list_images
from animeedge.runtimes.imageio import load_square


def portraits_video(path: Path, n: int) -> Path:
    photos = [load_square(f, 360) for f in evenly_spaced(list_images(shared_data("photos/calib")), n)]
    return write_pan_video(np.concatenate(photos, axis=1), path, frames=24 * n)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--portraits", type=int, default=6)
    p.add_argument("--out", default="runs/app_auto")
    args = p.parse_args()
    out = Path(args.out)
    videos = {"astronaut pan": write_pan_video(skimage.data.astronaut(), out / "astronaut_pan.avi"),
              "portraits pan": portraits_video(out / "portraits_pan.avi", args.portraits)}
    for name, video in videos.items():
        done = subprocess.run([sys.executable, "-m", "animeedge", "app", "--bundle", args.bundle, "--source", str(video),
                               "--frames", str(args.frames)], capture_output=True, text=True)
        line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-300:]
        print(f"{name}: {line}", flush=True)
        if done.returncode == 0:
            summary = json.loads(line)
            print(f"  -> {summary['fps']} FPS end to end at width {summary['width']}, {summary['resolution']} px, "
                  f"{summary['backend']} {summary['precision']}: {'meets' if summary['fps'] >= 30 else 'misses'} 30 FPS")


if __name__ == "__main__":
    main()
