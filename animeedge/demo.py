"""`animeedge demo`: the main job on the embedded default, end to end and headless.

Publishable inputs only (scikit-image's public-domain sample images): writes them, stylizes
them with the default at every width through the same path as `animeedge stylize`, prints
parameters, MACs and measured latency, and draws a before/after sheet. Then exports the
default as a bundle (ONNX, TFLite, Core ML; fp32, fp16, int8; the smallest and the full width
at DEMO_RESOLUTION), stylizes the astronaut through it with each backend that runs here, and
runs `animeedge bench` on that bundle (Markdown report, JSON and plot in the output folder), and
ends with the app, headless, on a pan-and-zoom video of the astronaut (a screenshot and the
app's own FPS line)."""
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from animeedge.generator.checkpoint import DEFAULT_MODEL, load_generator, trained_widths
from animeedge.generator.inference import TorchStylizer
from animeedge.generator.profile import format_table, profile
from animeedge.runtimes.atomic import atomic_path
from animeedge.runtimes.imageio import read_image, write_image

from . import stylize

SAMPLES = ("astronaut", "chelsea", "coffee")
WIDTHS = (1.0, 0.5, 0.25)
DEMO_RESOLUTION = 256
DEMO_BUNDLE_WIDTHS = (0.25, 1.0)  # the full bundle (every width, 128-512 px) is `animeedge export`


def write_samples(folder: Path) -> list[Path]:
    import skimage.data
    paths = []
    for name in SAMPLES:
        path = folder / f"{name}.png"
        write_image(path, getattr(skimage.data, name)())
        paths.append(path)
    return paths


def _label(img: np.ndarray, text: str) -> Image.Image:
    tile = Image.fromarray(img)
    draw = ImageDraw.Draw(tile)
    draw.rectangle([0, 0, 8 * len(text) + 10, 22], fill=(0, 0, 0))
    draw.text((5, 5), text, fill=(255, 255, 255))
    return tile


def before_after_sheet(rgb: np.ndarray, outputs: dict, path: Path):
    tiles = [_label(rgb, "input")] + [_label(img, f"width {w}") for w, img in outputs.items()]
    h, w = rgb.shape[:2]
    sheet = Image.new("RGB", (w * len(tiles), h))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (i * w, 0))
    with atomic_path(path) as tmp:
        sheet.save(tmp)


def run_demo(out="demo_out", sheet=None):
    out = Path(out)
    model = load_generator()
    print(f"embedded default: {DEFAULT_MODEL}")
    print(format_table(profile(model)))
    inputs = write_samples(out / "inputs")
    astronaut = read_image(inputs[0])[0]
    outputs = {}
    trained = trained_widths()
    for width in WIDTHS:
        stylizer = TorchStylizer(model, width)
        stylizer(astronaut)  # warm-up
        start = time.perf_counter()
        result = stylizer(astronaut)
        ms = (time.perf_counter() - start) * 1000
        if width not in trained:
            print(f"width {width}: {ms:.0f} ms for astronaut 512x512 (torch eager, this CPU); "
                  "cost only: the model is not trained for this width yet")
            continue
        outputs[width] = result
        failures = stylize.run(stylizer, stylize.plan_jobs([out / "inputs"], out / f"width_{width}"), progress=False,
                               overwrite=True)  # the demo's own outputs, from its own inputs
        print(f"width {width}: {ms:.0f} ms for astronaut 512x512 (torch eager, this CPU); "
              f"{len(inputs) - failures}/{len(inputs)} images -> {out / f'width_{width}'}")
    sheet_path = Path(sheet) if sheet else out / "astronaut_before_after.png"
    before_after_sheet(astronaut, outputs, sheet_path)
    print(f"before/after sheet: {sheet_path}")
    bundle = export_demo_bundle(out, astronaut)
    bench_demo_bundle(bundle, out, inputs[0])
    run_app(bundle, write_pan_video(astronaut, out / "inputs" / "astronaut_pan.avi"), out / "app_screenshot.png")


def write_pan_video(rgb: np.ndarray, path: Path, frames: int = 48) -> Path:
    """A camera-like clip made from a still: panning and zooming over it."""
    from animeedge.generator.metrics import pan_zoom_frames
    from animeedge.runtimes.video import VideoWriter
    with atomic_path(path) as tmp:
        writer = VideoWriter(tmp, 24, (360, 360))
        for frame in pan_zoom_frames(rgb, frames, 360):
            writer.write(frame)
        writer.close()
    return path


def run_app(bundle: Path, video: Path, screenshot: Path, frames: int = 150):
    """The app, unattended, in its own process (Kivy owns the process's window)."""
    import subprocess
    import sys
    print(f"app: {frames} frames of {video.name}, Auto mode")
    done = subprocess.run([sys.executable, "-m", "animeedge", "app", "--bundle", str(bundle), "--source", str(video),
                           "--frames", str(frames), "--screenshot", str(screenshot)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"app: failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
        return
    print(f"app: {done.stdout.strip().splitlines()[-1]}")
    print(f"app screenshot: {screenshot}")


def bench_demo_bundle(bundle: Path, out: Path, photo: Path):
    from animeedge.runtimes.bench_report import table

    from .bench import Bench, write_outputs
    print("benchmarking the bundle and the peers (a few minutes)")
    report = Bench(bundle, photo=photo).run()
    print(table(report))
    paths = out / "bench.json", out / "bench.md", out / "bench.png"
    write_outputs(report, *paths)
    print("bench: " + "  ".join(map(str, paths)))


def export_demo_bundle(out: Path, astronaut: np.ndarray):
    from animeedge.calibration.data import photos_or_samples
    from animeedge.compress.export import BundleExporter
    from animeedge.runtimes.load import load
    from animeedge.runtimes.errors import UserError
    from animeedge.runtimes.manifest import format_manifest, load_manifest
    calib, source = photos_or_samples(None, "photos/calib")
    print(f"calibration photos: {source}")
    bundle = BundleExporter(DEFAULT_MODEL, out / "bundle", widths=DEMO_BUNDLE_WIDTHS, resolutions=(DEMO_RESOLUTION,),
                            calib=calib, force=True, calib_source=source).run()
    manifest = load_manifest(bundle)
    print(format_manifest(manifest))
    for backend, precision in manifest["recommended_precision"].items():
        try:
            stylizer = load(bundle, 1.0, DEMO_RESOLUTION, backend, precision)
        except UserError as exc:  # Core ML off macOS: say so and go on
            print(f"{backend}: {exc}")
            continue
        stylizer(astronaut)
        start = time.perf_counter()
        result = stylizer(astronaut)
        ms = (time.perf_counter() - start) * 1000
        path = out / f"astronaut_{backend}_{precision}.png"
        write_image(path, result)
        print(f"{backend} {precision} width 1.0 at {DEMO_RESOLUTION} px: {ms:.1f} ms end to end -> {path}")
    return bundle
