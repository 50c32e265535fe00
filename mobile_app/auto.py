"""Auto mode: start from the configuration predicted to fit this device's frame budget, then
adapt to what is measured while running.

The ladder is the bundle's (width, resolution) pairs for one backend and precision, kept to
those where more cost buys more quality (the Pareto front of MACs vs the manifest's quality),
cheapest first. Adaptation, once per window of frames:
- down: the window's FPS is below the target (a floor, not a band: no margin lets Auto sit
  under it) -> jump to the best level predicted to fit (at least one step down); the level left is blocked from coming back for a back-off
  that doubles each time it fails, so the controller settles instead of oscillating;
- up: this window's FPS is at least target x UP_HEADROOM, the next level is not blocked, and,
  if it ran before, its measured FPS there was at least the target (a level never tried is
  tried: latency grows far less than MACs at small widths, so predicting from MACs alone
  never climbs);
- after any change, COOLDOWN windows are only observed (the new model warms up).
"""
from dataclasses import dataclass

UP_HEADROOM, COOLDOWN, FIRST_BACKOFF = 1.2, 1, 4


@dataclass(frozen=True)
class Level:
    width: float
    resolution: int
    gmacs: float
    quality: float


def ladder(artifacts: list[dict]) -> list[Level]:
    """Pareto levels (cheaper and worse, or dearer and better), cheapest first."""
    levels = sorted({Level(a["width"], a["resolution"], a["gmacs"], (a.get("quality") or {}).get("psnr_db", 0.0))
                     for a in artifacts}, key=lambda lv: (lv.gmacs, -lv.quality))
    kept = []
    for lv in levels:
        if not kept or lv.quality > kept[-1].quality:
            kept.append(lv)
    return kept


def predicted_ms(levels, index, probe_gflops, overhead_ms=2.0) -> float:
    """Frame time at a level from the probe's achieved GFLOP/s (2 FLOP per MAC) plus pre/post."""
    return 2 * levels[index].gmacs / probe_gflops * 1000 + overhead_ms


def starting_level(levels, target_fps, probe_gflops) -> int:
    fits = [i for i in range(len(levels)) if predicted_ms(levels, i, probe_gflops) <= 1000 / target_fps]
    return fits[-1] if fits else 0


class AutoController:
    def __init__(self, levels: list[Level], target_fps: float, start: int, window: int = 12):
        self.levels, self.target, self.index, self.window = levels, target_fps, start, window
        self.frames, self.model, self.cooldown = [], [], COOLDOWN
        self.windows = 0
        self.blocked_until, self.backoff, self.measured = {}, {}, {}

    @property
    def level(self) -> Level:
        return self.levels[self.index]

    def observe(self, frame_ms: float, model_ms: float) -> Level | None:
        """One displayed frame: its interval and its model time. Returns the new level when
        it changes, else None."""
        self.frames.append(frame_ms)
        self.model.append(model_ms)
        if len(self.frames) < self.window:
            return None
        frame, model = sorted(self.frames)[len(self.frames) // 2], sorted(self.model)[len(self.model) // 2]
        self.frames, self.model = [], []
        self.windows += 1
        if self.cooldown > 0:
            self.cooldown -= 1
            return None
        return self._decide(frame, model)

    def _predict_fps(self, index, frame, model) -> float:
        ratio = self.levels[index].gmacs / self.level.gmacs
        return 1000 / max(frame - model + model * ratio, 1e-3)

    def _fps_at(self, index, frame, model) -> float:
        return 1000 / self.measured[index] if index in self.measured else self._predict_fps(index, frame, model)

    def _decide(self, frame, model) -> Level | None:
        fps = 1000 / frame
        self.measured[self.index] = frame
        if fps < self.target and self.index > 0:
            fitting = [i for i in range(self.index) if self._fps_at(i, frame, model) >= self.target]
            backoff = self.backoff.get(self.index, FIRST_BACKOFF / 2) * 2
            self.backoff[self.index], self.blocked_until[self.index] = backoff, self.windows + backoff
            return self._move(fitting[-1] if fitting else 0)
        up = self.index + 1
        if (up < len(self.levels) and fps >= self.target * UP_HEADROOM and self.windows >= self.blocked_until.get(up, 0)
                and (up not in self.measured or 1000 / self.measured[up] >= self.target)):
            return self._move(up)
        return None

    def _move(self, index) -> Level:
        self.index, self.cooldown = index, COOLDOWN
        return self.level
