"""Soak test of the app: N frames unattended (default 10,000), sampling resident memory and
pending work once a second; memory growth is measured after a warm-up.

    python benchmarks/app_soak.py --bundle runs/bundle [--source synthetic] [--frames 10000]
                                  [--warmup-frames 500] [--json runs/soak.json]

Prints (and writes) one JSON object: frames, fps, rss_mb at warm-up and at the end, growth %,
the largest number of pending frames, dropped frames. Linux (reads /proc/self/statm).
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from animeedge.mobile_app.session import AppSession, configure_kivy  # noqa: E402


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--source", default="synthetic")
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--warmup-frames", type=int, default=500)
    p.add_argument("--threads", type=int)
    p.add_argument("--json")
    args = p.parse_args()
    configure_kivy()
    from kivy.clock import Clock
    from animeedge.mobile_app.app import AnimeEdgeApp
    app = AnimeEdgeApp(AppSession(args.bundle, args.source, threads=args.threads), frames=args.frames)
    samples = []

    def sample(_dt):
        if app.pipeline is not None:
            pending = app.pipeline.inputs.pending + app.pipeline.results.pending
            samples.append({"frame": app.shown, "rss_mb": round(rss_mb(), 1), "pending": pending})
    def start(*_):  # returns None: a truthy return would stop the app's own on_start
        Clock.schedule_interval(sample, 1.0)
    app.bind(on_start=start)
    app.run()
    warm = next(s for s in samples if s["frame"] >= args.warmup_frames)
    end = samples[-1]
    report = {"frames": app.summary["frames"], "fps": app.summary["fps"], "config": app.summary,
              "rss_mb_after_warmup": warm["rss_mb"], "rss_mb_end": end["rss_mb"],
              "rss_mb_max": max(s["rss_mb"] for s in samples),
              "rss_growth_pct": round(100 * (end["rss_mb"] / warm["rss_mb"] - 1), 2),
              "max_pending": max(s["pending"] for s in samples), "samples": len(samples)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
