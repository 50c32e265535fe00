"""The frame pipeline off the UI thread: a reader thread takes frames from the source, a
worker thread stylizes the most recent one. Each hand-over is a one-item slot where the
newest item replaces the old one (latest frame wins), so pending work never grows; the UI
polls the result slot. No torch, no Kivy.

Live sources (a camera) are read continuously so that their buffer never lags; files and
synthetic frames are read only when the worker has taken the previous one (no decoding of
frames that would be dropped).
"""
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from animeedge.runtimes.backends import first_line
from animeedge.runtimes.errors import UserError


CACHED = 3  # stylizers kept loaded


class LatestSlot:
    def __init__(self):
        self._item, self._cond, self.dropped = None, threading.Condition(), 0

    def put(self, item):
        with self._cond:
            self.dropped += self._item is not None
            self._item = item
            self._cond.notify_all()

    def take(self, timeout=None):
        """The item, waiting up to `timeout` for one (None if there is none)."""
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def wait_empty(self, timeout):
        with self._cond:
            if self._item is not None:
                self._cond.wait(timeout)
            return self._item is None

    @property
    def pending(self) -> int:
        return int(self._item is not None)


@dataclass(frozen=True)
class Config:
    width: float
    resolution: int
    backend: str
    precision: str


@dataclass
class Result:
    frame: np.ndarray
    output: np.ndarray
    config: Config
    model_ms: float
    stylize_ms: float


class Pipeline:
    def __init__(self, source, make_stylizer, config: Config):
        """make_stylizer(config) -> a runtimes Stylizer (prepare / invoke / finish)."""
        self.source, self.make_stylizer, self.config = source, make_stylizer, config
        self.inputs, self.results = LatestSlot(), LatestSlot()
        self.status, self.error = "", None
        self.stylizers, self._stop = OrderedDict(), threading.Event()
        self._threads = [threading.Thread(target=self._guard(self._read), name="reader", daemon=True),
                         threading.Thread(target=self._guard(self._stylize), name="stylizer", daemon=True)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        self.inputs.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self.source.close()

    def _guard(self, loop):
        def run():
            try:
                loop()
            except Exception as exc:  # shown on screen and logged in one line; the UI decides what to do
                reason = str(exc) if isinstance(exc, UserError) else first_line(exc)
                self.error = f"{threading.current_thread().name} stopped: {reason}"
                log = logging.getLogger("animeedge.app")
                log.error(f"animeedge: error: {self.error}")
                log.debug("traceback", exc_info=True)
        return run

    def _read(self):
        live = getattr(self.source, "live", False)
        while not self._stop.is_set():
            if not live and not self.inputs.wait_empty(0.1):
                continue
            frame = self.source.read()
            self.status = self.source.status
            if frame is None:
                time.sleep(0.05)
                continue
            self.inputs.put(frame)

    def stylizer(self, config: Config):
        """Loaded once per configuration; the CACHED most recent stay (Auto moves between
        neighbours), older ones are dropped so memory stays bounded on a phone."""
        if config in self.stylizers:
            self.stylizers.move_to_end(config)
        else:
            self.stylizers[config] = self.make_stylizer(config)
            while len(self.stylizers) > CACHED:
                self.stylizers.popitem(last=False)
        return self.stylizers[config]

    def _stylize(self):
        while not self._stop.is_set():
            frame = self.inputs.take(timeout=0.1)
            if frame is None:
                continue
            config = self.config
            stylizer = self.stylizer(config)
            start = time.perf_counter()
            x, geometry = stylizer.prepare(frame)
            t = time.perf_counter()
            y = stylizer.invoke(x)
            model_ms = (time.perf_counter() - t) * 1000
            output = stylizer.finish(y, geometry, to_frame=False)  # the display scales it, not the CPU
            self.results.put(Result(frame, output, config, model_ms, (time.perf_counter() - start) * 1000))
