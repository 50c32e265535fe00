"""Faces that read as the person's face, scored by `animeedge quality` (generator/face_measures.py
says what each measure is) at two sizes:

- full size: the held-out portraits at 256 px, through the model at the scored width;
- the app-scale set: each portrait made small in a 256-px frame (its face 32 to 80 px wide, the
  whole-body and arm's-length cases the live camera sees), through the files the app runs
  (`--bundle`: its TFLite int8 files at widths 0.25 and 1.0; without one, the model in torch).
"""
import numpy as np

from animeedge.generator import face_measures as fm

APP_FACES = (32, 80)  # px: the face widths of the app-scale set, spread over the portraits
APP_WIDTHS = (0.25, 1.0)
GOALS = {"eye_corr": (">=", 0.88, 0.80), "eye_black_ratio": ("<=", 2.2, 3.0), "fold_ink": ("<=", 0.01, 0.01),
         "lip_ink_mean": ("<=", None, 0.02), "teeth_kept": (">=", 0.90, None)}
LABELS = {"eye_corr": "eyes: L* corr. with the photo", "eye_black_ratio": "eyes: near-black x the photo's",
          "fold_ink": "folds: ink share", "lip_ink_mean": "upper lip: ink share", "teeth_kept": "smiles: teeth kept"}


class FaceSet:
    """The portraits' face meshes and zones, and their app-scale frames, made once."""

    def __init__(self, photos: list, finder):
        self.items = []  # (index in photos, photo, points, zones, app frame, app zones, face px)
        for i, (photo, size) in enumerate(zip(photos, np.linspace(*APP_FACES, max(len(photos), 1)))):
            face = finder.find(photo)
            if face is not None:
                frame, moved = fm.place_small(photo, face.points, size)
                self.items.append((i, photo, face.points, fm.zones(photo, face.points), frame, fm.zones(frame, moved),
                                   size))

    def full(self, outputs: list) -> dict:
        """Scores of the portraits' outputs (`outputs[i]` of photos[i], as given to FaceSet)."""
        return fm.summarize([fm.measure(photo, outputs[i], zones) for i, photo, _, zones, *_ in self.items])

    def app(self, stylize=None, make_small=None) -> dict:
        """Scores on the app-scale frames: `stylize(frame)`, or `make_small(small portrait)` (a
        target made at that size, then framed as the photo is)."""
        rows = []
        for _, photo, points, _, frame, zones, size in self.items:
            out = stylize(frame) if make_small is None else fm.place_small(photo, points, size, then=make_small)[0]
            rows.append(fm.measure(frame, out, zones))
        return fm.summarize(rows)


def goal_rows(faces: dict) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, goal, met) rows of `quality`'s table for the face scores."""
    rows = []
    for scale, figures in faces.items():
        size = 1 if scale == "full size" else 2
        for key, (op, *goal) in GOALS.items():
            value, target = figures.get(key, float("nan")), goal[size - 1]
            text = f"{value:.1%}" if key in ("fold_ink", "lip_ink_mean") else f"{value:.2f}"
            met = None if target is None or np.isnan(value) else value >= target if op == ">=" else value <= target
            goal_text = "none (diagnostic)" if target is None else (
                f"{op} {target:.0%}" if key in ("fold_ink", "lip_ink_mean") else f"{op} {target}")
            rows.append((f"{LABELS[key]} ({scale})", text, goal_text, met))
    return rows
