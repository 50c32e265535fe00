"""`animeedge bench --app`: the app's own end-to-end figures (source read -> inference ->
texture), headless.

- Per level: `animeedge app --frames N` once per level of Auto's ladder (each served by the
  file the app picks for it on this device), Auto off; the FPS and model p50 of each.
- Auto: one run in Auto mode on the same source at the same target; where it ended, and
  whether that is the best-quality level that sustained the target when tried alone.
- Soak (`soak_frames`): one Auto run of that many frames in this process, sampling resident
  memory and pending work once a second; the growth after a warm-up (Linux: /proc/self/statm).

The default source is the demo's pan-and-zoom video over scikit-image's astronaut.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from animeedge.runtimes.errors import UserError

SOAK_WARMUP = 0.05  # of the soak's frames, before memory growth is measured


def _app(bundle, source, frames, *options) -> dict:
    done = subprocess.run([sys.executable, "-m", "animeedge", "app", "--bundle", str(bundle), "--source", str(source),
                           "--frames", str(frames), *map(str, options)], capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"the app failed: {(done.stderr.strip().splitlines() or ['no message'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def per_level(bundle, source, frames, target_fps, threads=None) -> list[dict]:
    from animeedge.mobile_app.session import AppSession
    session = AppSession(bundle, str(source), target_fps=target_fps, threads=threads)
    configs = [session.config_for(level) for level in session.levels()]
    session.source.close()
    return [_app(bundle, source, frames, "--backend", c.backend, "--precision", c.precision, "--width", c.width,
                 "--resolution", c.resolution, *_threads(threads)) for c in configs]


def _threads(threads) -> list:
    return ["--threads", threads] if threads else []


def auto_verdict(levels: list[dict], auto: dict, target_fps: float) -> dict:
    """Whether Auto ended on the best level (the ladder is cheapest and worst first) that
    sustained the target when run alone; None for the best where none did."""
    key = lambda r: (r["backend"], r["precision"], r["width"], r["resolution"])  # noqa: E731
    sustained = [i for i, r in enumerate(levels) if r["fps"] >= target_fps]
    best = sustained[-1] if sustained else None
    ended = next((i for i, r in enumerate(levels) if key(r) == key(auto)), None)
    return {"target_fps": target_fps, "auto_level": ended, "best_sustaining_level": best,
            "holds": ended == (best if best is not None else 0)}


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(bundle, source, frames, threads=None) -> dict:
    if not Path("/proc/self/statm").is_file():
        raise UserError("the soak reads resident memory from /proc/self/statm: Linux only")
    from animeedge.mobile_app.session import AppSession, configure_kivy
    configure_kivy()
    from kivy.clock import Clock

    from animeedge.mobile_app.app import AnimeEdgeApp
    app = AnimeEdgeApp(AppSession(bundle, str(source), threads=threads), frames=frames)
    samples = []

    def sample(_dt):
        if app.pipeline is not None:
            pending = app.pipeline.inputs.pending + app.pipeline.results.pending
            samples.append({"frame": app.shown, "rss_mb": round(_rss_mb(), 1), "pending": pending})

    def start(*_):  # returns None: a truthy return would stop the app's own on_start
        Clock.schedule_interval(sample, 1.0)
    app.bind(on_start=start)
    app.run()
    if not samples:
        raise UserError("the soak ended before its first sample: give more frames")
    warm = next((s for s in samples if s["frame"] >= SOAK_WARMUP * frames), samples[0])
    end = samples[-1]
    return {"frames": app.summary["frames"], "fps": app.summary["fps"], "config": app.summary,
            "rss_mb_after_warmup": warm["rss_mb"], "rss_mb_end": end["rss_mb"],
            "rss_mb_max": max(s["rss_mb"] for s in samples),
            "rss_growth_pct": round(100 * (end["rss_mb"] / warm["rss_mb"] - 1), 2),
            "max_pending": max(s["pending"] for s in samples), "samples": len(samples)}


def run(bundle, source=None, frames=300, soak_frames=0, threads=None, target_fps=30.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            import skimage.data

            from .demo import write_pan_video
            source = write_pan_video(skimage.data.astronaut(), Path(tmp) / "astronaut_pan.avi")
        levels = per_level(bundle, source, frames, target_fps, threads)
        auto = _app(bundle, source, frames, "--target-fps", target_fps, *_threads(threads))
        report = {"source": str(source), "frames": frames, "levels": levels, "auto": auto,
                  "auto_verdict": auto_verdict(levels, auto, target_fps)}
        if soak_frames:
            report["soak"] = soak(bundle, source, soak_frames, threads)
    return report


def table(report) -> str:
    lines = [f"the app, headless, {report['frames']} frames of {report['source']}:",
             f"{'backend':<8} {'precision':<9} {'width':>5} {'res':>5} {'FPS':>6} {'model p50 ms':>12}"]
    for r in report["levels"] + [report["auto"]]:
        mode = "  (Auto: where it ended; p50 over the whole run)" if r is report["auto"] else ""
        lines.append(f"{r['backend']:<8} {r['precision']:<9} {r['width']:>5} {r['resolution']:>5} {r['fps']:>6.1f} "
                     f"{r['model_p50_ms']:>12.2f}{mode}")
    v = report["auto_verdict"]
    best = "none" if v["best_sustaining_level"] is None else f"level {v['best_sustaining_level']}"
    lines.append(f"Auto at {v['target_fps']:g} FPS ended on level {v['auto_level']}; the best level that sustained it "
                 f"alone: {best} ({'held' if v['holds'] else 'NOT held'})")
    if "soak" in report:
        s = report["soak"]
        lines.append(f"soak: {s['frames']} frames at {s['fps']} FPS; resident memory {s['rss_mb_after_warmup']} -> "
                     f"{s['rss_mb_end']} MB ({s['rss_growth_pct']:+.1f}%), at most {s['max_pending']} frames pending")
    return "\n".join(lines)
