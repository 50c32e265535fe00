"""The staged phone folder (mobile_app.package) running its app on the emulated ARM64 Python
(animeedge/arm64.py): the Kivy UI headless (SDL offscreen, Mesa's llvmpipe), TFLite only, a
video source, N frames, then the app's one JSON line.

    python -m animeedge.phone_arm64 --bundle B [--cpu cortex-a76] [--frames 20]

stages the folder and writes the demo's pan-and-zoom video in a temporary folder under the
cache (not /tmp: see arm64's docstring), runs it, prints the JSON line and the time taken.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from animeedge.runtimes.errors import UserError

from . import arm64

KIVY_ENV = {"KIVY_NO_ARGS": "1", "KIVY_NO_CONFIG": "1", "KIVY_NO_FILELOG": "1", "KIVY_LOG_MODE": "PYTHON",
            "SDL_VIDEODRIVER": "offscreen", "SDL_AUDIODRIVER": "dummy"}


def _check_visible(path, cache: Path):
    top = Path(path).resolve().parts[1]
    if (cache / "rootfs" / top).exists():
        raise UserError(f"{path}: the emulated Python sees /{top} from its rootfs; use a folder outside it")


def run_phone_folder(folder, video, cpu="cortex-a76", frames=20, cache=arm64.CACHE, timeout=3600) -> dict:
    """Run FOLDER/main.py on `video` for `frames` frames with TFLite on the emulated `cpu`;
    return the app's JSON summary."""
    cache = Path(cache).resolve()
    if not arm64.app_ready(cache):
        raise arm64.EmulationUnavailable(f"no app set-up under {cache}: run `make arm64` (arm64.setup_app)")
    for path in (folder, video, cache):
        _check_visible(path, cache)
    args = [Path(folder).resolve() / "main.py", "--source", Path(video).resolve(), "--frames", frames,
            "--backend", "tflite"]
    with tempfile.TemporaryDirectory(dir=cache, prefix="kivy-") as home:
        done = arm64.run_emulated(cpu, args, cache, timeout, paths=[cache / "site-app"],
                                  env=arm64.app_env(cache) | KIVY_ENV | {"KIVY_HOME": home}, cwd=home)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise UserError(f"the phone app on emulated {cpu} exited {done.returncode}: "
                        f"{(done.stderr.strip() or done.stdout.strip())[-2000:]}")
    return json.loads(lines[-1])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m animeedge.phone_arm64", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True, help="a bundle with TFLite files")
    p.add_argument("--cpu", default="cortex-a76", choices=arm64.CPUS)
    p.add_argument("--frames", type=int, default=20)
    args = p.parse_args(argv)
    import skimage.data

    from animeedge.mobile_app.package import stage

    from .demo import write_pan_video
    try:
        cache = arm64.setup_app().resolve()
        with tempfile.TemporaryDirectory(dir=cache, prefix="phone-") as tmp:
            folder = stage(args.bundle, Path(tmp) / "phone")
            video = write_pan_video(skimage.data.astronaut(), Path(tmp) / "astronaut_pan.avi")
            start = time.perf_counter()
            summary = run_phone_folder(folder, video, args.cpu, args.frames, cache)
            seconds = time.perf_counter() - start
    except UserError as exc:
        print(f"animeedge: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    print(f"time: {seconds:.1f} s for the whole run on emulated {args.cpu} (start-up, probe and "
          f"{summary['frames']} frames at {summary['fps']} FPS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
