"""What the app runs: the bundle's configurations, the current one, the frame source, and Auto
mode's starting point from the tier probe. No Kivy, no torch."""
import logging
import os
import platform
from pathlib import Path

from animeedge.runtimes.autotune import tune
from animeedge.runtimes.probe import run_probe
from animeedge.runtimes.tiers import load_tiers, place
from animeedge.runtimes.choose import FASTEST, choose
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.formats import runs_here
from animeedge.runtimes.load import load
from animeedge.runtimes.manifest import load_manifest

from .auto import AutoController, ladder, starting_level
from .pipeline import Config
from .sources import open_source

PROBE_SECONDS = 1.0
SAME_QUALITY_DB = 0.5  # files whose quality differs by less are one level of Auto's ladder
INVISIBLE_DB = 50.0  # past this PSNR to the reference no difference can be seen: all such files are equal


def _quality(artifact: dict) -> float:
    return min((artifact.get("quality") or {}).get("psnr_db") or 0.0, INVISIBLE_DB)


def configure_kivy():
    """Environment Kivy reads at import: no argument parsing, config or log files, and the
    offscreen video driver where there is no display. Call before importing kivy."""
    for key, value in (("KIVY_NO_ARGS", "1"), ("KIVY_NO_CONFIG", "1"), ("KIVY_NO_FILELOG", "1"),
                       ("KIVY_LOG_MODE", "PYTHON"), ("SDL_AUDIODRIVER", "dummy")):
        os.environ.setdefault(key, value)
    kivy_log = logging.getLogger("kivy")
    kivy_log.setLevel(logging.WARNING)
    kivy_log.addFilter(lambda record: "MTDev" not in record.getMessage())  # no touch device here: harmless
    if platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")


class AppSession:
    def __init__(self, bundle, source=None, auto=True, target_fps=None, threads=None, captures=None, start=None):
        """start: a dict with any of width, resolution, backend, precision to begin with
        (Auto off); otherwise Auto's starting point."""
        self.bundle = Path(bundle)
        self.manifest = load_manifest(self.bundle)
        self.artifacts = [a for a in self.manifest["artifacts"] if runs_here(a["format"])]
        if not self.artifacts:
            raise UserError(f"{bundle}: nothing in this bundle runs on {platform.system()}")
        self.threads, self.auto, self._captures = threads, auto, captures
        self.probe = run_probe(threads, seconds=PROBE_SECONDS)
        tiers = load_tiers()
        self.placement = place(self.probe, tiers)
        self.target_fps = target_fps or tiers["tiers"][self.placement["tier"]]["fps"]
        start = start or {}
        if "backend" in start and start["backend"] not in {a["format"] for a in self.artifacts}:
            raise UserError(f"no {start['backend']} files in {bundle} that run on {platform.system()} "
                            "(Core ML runs on macOS/iOS only)")
        # a runtime asked for stays; otherwise each level runs the fastest file of its quality on this device
        self.fixed_runtime = "backend" in start or "precision" in start
        chosen = choose(self.manifest, start.get("backend", FASTEST), start.get("precision")).artifact
        self.config = Config(1.0, 0, chosen["format"], chosen["precision"])
        if not self._current():
            raise UserError(f"the bundle has no {self.config.backend} {self.config.precision} files; it has "
                            + ", ".join(f"{b} {p}" for b, p in self.runtimes()))
        levels = self.levels()
        self.config = self.config_for(levels[starting_level(levels, self.target_fps, self.probe["gflops"])])
        if start:
            self.auto = False
            self.config = self._start_config(start)
        self.source = open_source(source)

    def runtimes(self) -> list[tuple[str, str]]:
        return sorted({(a["format"], a["precision"]) for a in self.artifacts})

    def _current(self, config=None) -> list[dict]:
        config = config or self.config
        return [a for a in self.artifacts if (a["format"], a["precision"]) == (config.backend, config.precision)]

    def widths(self) -> list[float]:
        return sorted({a["width"] for a in self._current()})

    def resolutions(self) -> list[int]:
        return sorted({a["resolution"] for a in self._current()})

    def levels(self):
        return ladder(self._current() if self.fixed_runtime else self.artifacts)

    def config_for(self, level) -> Config:
        if self.fixed_runtime:
            return Config(level.width, level.resolution, self.config.backend, self.config.precision)
        return Config(level.width, level.resolution, *self.fastest_runtime(level.width, level.resolution))

    def fastest_runtime(self, width, resolution) -> tuple[str, str]:
        """The (backend, precision) that serves a level: of the files at this width and
        resolution whose quality is within SAME_QUALITY_DB of the best, the fastest on this
        device (timed once per device and file, runtimes/autotune.py)."""
        arts = [a for a in self.artifacts if a["width"] == width and a["resolution"] == resolution]
        best = max(_quality(a) for a in arts)
        same = dict(self.manifest, artifacts=[a for a in arts if _quality(a) >= best - SAME_QUALITY_DB])
        opener = lambda a: self.make_stylizer(Config(width, resolution, a["format"], a["precision"]))  # noqa: E731
        chosen = tune(same, width, resolution, opener, self.threads).artifact
        return chosen["format"], chosen["precision"]

    def nearest(self, config: Config, options=None) -> Config:
        """The configuration among `options` (default: the bundle's, same runtime) closest to
        the one asked for."""
        options = options or self._current(config)
        best = min(options, key=lambda a: (abs(a["width"] - config.width), abs(a["resolution"] - config.resolution)))
        return Config(best["width"], best["resolution"], config.backend, config.precision)

    def _start_config(self, start: dict) -> Config:
        """The width and resolution asked for at start (the other, if not given, nearest to
        Auto's choice). One the bundle lacks is refused, not replaced by another."""
        asked = {k: start[k] for k in ("width", "resolution") if k in start}
        options = [a for a in self._current() if all(a[k] == v for k, v in asked.items())]
        if not options:
            has = {}
            for a in self._current():
                has.setdefault(a["width"], set()).add(a["resolution"])
            raise UserError(f"{self.bundle} has no {' at '.join(f'{k} {v}' for k, v in asked.items())} in its "
                            f"{self.config.backend} {self.config.precision} files; it has "
                            + "; ".join(f"width {w} at {', '.join(map(str, sorted(r)))} px" for w, r in sorted(has.items())))
        return self.nearest(self.config, options)

    def full_quality(self) -> Config:
        """Finalize: width 1 (the widest), the highest resolution, fp32 of the current backend."""
        fp32 = [a for a in self.artifacts if a["format"] == self.config.backend and a["precision"] == "fp32"]
        pool = fp32 or self._current()
        best = max(pool, key=lambda a: (a["width"], a["resolution"]))
        return Config(best["width"], best["resolution"], best["format"], best["precision"])

    def make_stylizer(self, config: Config):
        return load(self.bundle, config.width, config.resolution, config.backend, config.precision, self.threads)

    def auto_controller(self) -> AutoController:
        levels = self.levels()
        current = next((i for i, lv in enumerate(levels)
                        if (lv.width, lv.resolution) == (self.config.width, self.config.resolution)), None)
        start = current if current is not None else starting_level(levels, self.target_fps, self.probe["gflops"])
        return AutoController(levels, self.target_fps, start)

    def capture_dir(self) -> Path:
        """Captures go next to the input: the source's folder, else ./captures."""
        if self._captures:
            folder = Path(self._captures)
        elif self.source.path is not None:
            folder = self.source.path if self.source.path.is_dir() else self.source.path.parent
        else:
            folder = Path("captures")
        folder.mkdir(parents=True, exist_ok=True)
        return folder
