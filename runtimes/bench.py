"""Latency of one stylizer, in the conventions of TFLite's benchmark_model: the time to load
(init) and the first inference are reported on their own; then, after `warmup` runs, at
least `runs` runs and at least `min_seconds`, giving mean, std, p50, p90, p99 and FPS.

Two timings per configuration: model-only (the runtime call on a prepared input tensor; for
LiteRT the copy into the interpreter is part of preparing, not of the model) and
end to end (uint8 RGB frame in, resize/pad/normalize, the model, uint8 RGB frame of the
input's size out). Interleaved with the end-to-end calls, call by call, the same frame goes
through the stylizer's stages one by one (`Stylizer.staged`: resize in, to_input, the
session's prepare, invoke, the session's finish, from_output, resize out), each timed on its
own: their p50s ("stages_ms") say where a frame's time beyond the model goes. Each configuration runs in a fresh process (`isolated`), so that its
peak resident memory is its own and one runtime's thread pools do not disturb the next.

No torch here; a torch stylizer can be measured by passing a factory that builds one.
"""
import concurrent.futures
import multiprocessing
import platform
import resource
import time
from pathlib import Path

import numpy as np

WARMUP, RUNS, MIN_SECONDS, MAX_SECONDS = 5, 50, 1.0, 20.0


def summary(times_ms) -> dict:
    t = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    return {"runs": len(t), "mean_ms": round(float(t.mean()), 3), "std_ms": round(float(t.std()), 3),
            "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3),
            "fps": round(1000.0 / float(t.mean()), 1)}


def timed_runs(fn, warmup=WARMUP, runs=RUNS, min_seconds=MIN_SECONDS, max_seconds=MAX_SECONDS,
               between=None) -> list[float]:
    """Milliseconds per call of fn(), after warm-up: at least `runs` calls and `min_seconds`,
    stopping early only at `max_seconds` (with at least 3 calls). `between()`, where given,
    runs untimed after each timed call (and counts towards the seconds)."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        now = time.perf_counter()
        times.append((now - t) * 1000)
        if between is not None:
            between()
            now = time.perf_counter()
        spent = now - start
        if (len(times) >= runs and spent >= min_seconds) or (spent >= max_seconds and len(times) >= 3):
            return times


def best_median_ms(fn, repeats=3, warmup=1, runs=20, min_seconds=0.0) -> float:
    """The lowest of `repeats` medians of timed_runs (ms): a slow spell of a shared VM (2x for
    seconds at a time) spoils one median, not the figure. The one timing helper for every
    figure quoted as "best of N medians"."""
    return round(min(float(np.median(timed_runs(fn, warmup, runs, min_seconds))) for _ in range(repeats)), 3)


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec (ru_maxrss
    would carry over the parent's peak into a spawned worker)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


class StageTimer:
    """Milliseconds per stage of `stylizer.staged(frame, lap)`, one list per stage in the
    stylizer's STAGES order; each lap is the time since the previous one (or the call)."""

    def __init__(self, stylizer, frame: np.ndarray):
        self.stylizer, self.frame = stylizer, frame
        self.times = {stage: [] for stage in stylizer.STAGES}
        self._mark = 0.0

    def _lap(self, stage):
        now = time.perf_counter()
        self.times[stage].append((now - self._mark) * 1000)
        self._mark = now

    def __call__(self):
        self._mark = time.perf_counter()
        self.stylizer.staged(self.frame, self._lap)

    def p50_ms(self) -> dict:
        """{stage: p50 ms}, in stage order."""
        return {stage: round(float(np.percentile(t, 50)), 3) for stage, t in self.times.items() if t}


def staged(stylizer) -> bool:
    """Whether the stylizer can be timed stage by stage (a runtimes.load.Stylizer can; the
    torch peers cannot)."""
    return callable(getattr(stylizer, "staged", None)) and bool(getattr(stylizer, "STAGES", None))


def measure(make_stylizer, frame: np.ndarray, warmup=WARMUP, runs=RUNS, min_seconds=MIN_SECONDS, e2e=True) -> dict:
    """Everything bench reports for one configuration; make_stylizer() builds it (timed as init).
    e2e=False skips the end-to-end timing ("e2e": None) and the stages ("stages_ms": None)."""
    rss_before = peak_rss_mb()
    t = time.perf_counter()
    stylizer = make_stylizer()
    init_ms = (time.perf_counter() - t) * 1000
    x, geometry = stylizer.prepare(frame)
    t = time.perf_counter()
    stylizer.invoke(x)
    first_ms = (time.perf_counter() - t) * 1000
    model = summary(timed_runs(lambda: stylizer.invoke(x), warmup, runs, min_seconds))
    end_to_end = stages = None
    if e2e:
        timer = StageTimer(stylizer, frame) if staged(stylizer) else None
        end_to_end = summary(timed_runs(lambda: stylizer(frame), warmup, runs, min_seconds, between=timer))
        stages = timer.p50_ms() if timer else None
    peak = peak_rss_mb()
    return {"init_ms": round(init_ms, 1), "first_ms": round(first_ms, 2), "model": model, "e2e": end_to_end,
            "stages_ms": stages, "peak_rss_mb": round(peak, 1), "model_rss_mb": round(peak - rss_before, 1)}


def _measure_job(factory, kwargs, frame, settings):
    return measure(lambda: factory(**kwargs), frame, **settings)


def isolated(factory, kwargs: dict, frame: np.ndarray, **settings) -> dict:
    """measure(lambda: factory(**kwargs), ...) in a fresh spawned process. factory must be
    importable by name (a module-level function or class)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_measure_job, factory, kwargs, frame, settings).result()
