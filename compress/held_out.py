"""Watching a distillation: per-width PSNR to the teacher on held-out photos, and the
`--until-db` stop.

Plain PSNR (uint8, averaged over the photos) at the teacher's resolution, the figure that
benchmarks/byo_teacher.py and docs/compression.md quote. The photos are the report's
(`--calib`) less any the student trains on. The teacher runs on them once.
"""
import numpy as np
import torch

from animeedge.runtimes.processing import from_nchw

from .quality import psnr_uint8

HELD_OUT_PHOTOS, EVAL_EVERY = 8, 25


@torch.no_grad()
def width_scores(student, x, targets, widths, metrics=None) -> dict:
    """{"0.25": {"psnr": dB, ...}, ...}: each metric (uint8 images -> float) averaged over
    the photos x (float NCHW) against the teacher's `targets` (uint8 HxWx3)."""
    metrics = metrics or {"psnr": psnr_uint8}
    scores = {}
    x = x.to(next(student.parameters()).device)
    for w in widths:
        ys = [from_nchw(y[None].cpu().numpy()) for y in student.set_width(w)(x)]
        scores[str(w)] = {name: round(float(np.mean([f(y, t) for y, t in zip(ys, targets)])), 2)
                          for name, f in metrics.items()}
    student.set_width(1.0)
    return scores


class HeldOut:
    """The held-out photos and the teacher's pictures of them; `check` scores the student,
    and the history says when each width first met its goal ({width: dB}) and whether all
    meet theirs now."""

    def __init__(self, x, targets, goals=None):
        self.x, self.targets, self.goals = x, targets, dict(goals or {})
        self.history = []

    def check(self, student, widths, step: int, seconds: float) -> dict:
        was = student.training
        psnr = {w: s["psnr"] for w, s in width_scores(student.eval(), self.x, self.targets, widths).items()}
        student.train(was)
        self.history.append({"step": step, "seconds": round(seconds, 1), "psnr": psnr})
        return psnr

    def reached(self) -> dict:
        """{width: {"step", "seconds"}} of the first check at which each width met its goal."""
        first = {}
        for h in self.history:
            for w, goal in self.goals.items():
                if str(w) not in first and h["psnr"].get(str(w), -np.inf) >= goal:
                    first[str(w)] = {"step": h["step"], "seconds": h["seconds"]}
        return first

    def met(self) -> bool:
        """There are goals, and every width meets its own at the last check."""
        last = self.history[-1]["psnr"] if self.history else {}
        return bool(self.goals) and all(last.get(str(w), -np.inf) >= g for w, g in self.goals.items())

    def line(self) -> str:
        last, reached = self.history[-1], self.reached()
        scores = " ".join(f"w{w} {db:.1f}" + ("*" if w in reached else "") for w, db in last["psnr"].items())
        goals = "  (* met its --until-db figure)" if reached else ""
        return f"step {last['step']} ({last['seconds']:.0f} s): held-out PSNR to the teacher {scores} dB{goals}"

    def summary(self) -> str:
        reached = self.reached()

        def when(w):
            r = reached.get(str(w))
            return f"at step {r['step']} ({r['seconds']:.0f} s)" if r else "not reached"
        return "; ".join(f"w{w} >= {g:g} dB {when(w)}" for w, g in self.goals.items())

    def report(self) -> dict:
        reached = self.reached()
        return {"photos": len(self.targets), "history": self.history,
                "until_db": {str(w): {"goal": g} | reached.get(str(w), {"step": None, "seconds": None})
                             for w, g in self.goals.items()}}
