"""Quality of generators on portraits their training never saw: how close they come to the
clean cel target (line F-score, delta-E per region), skin tone, hair and clothes hue,
temporal stability, consistency across widths, anime-ness (a diagnostic), and a contact
sheet (kept out of git: research images), each against its goal (docs/model_card.md).

    animeedge quality [--model CKPT ...] [--photos ../shared/data/photos/calib]
        [--anime ../shared/data/anime/eval] [--n 100] [--videos 6] [--sheet FILE.png] [--json FILE]

Without --model it scores the embedded default. Several --model values (checkpoints or run
folders) are scored against the same classifier: the ablation table. `--model guide` (or
`guide:bold`) scores a classical anime guide style, `--model cartoon` the classical cartoon
filter (generator/guidance.py), `--model semantic` the face-model target (generator/semantic.py),
`--model cel` the clean cel target (generator/cel.py). A generator is also scored at widths
0.25-0.75 against its width 1.0 (blurred PSNR, delta-E, plain PSNR). --sheet writes one contact sheet per model
(FILE, FILE-1.png, ...): photo | cartoon filter | cel guide | model at width 1.0 | model at width 0.25.

It also prints the anime reference for the temporal ratio: the same camera move over the
anime pictures (--anime) changes that many times as much as over the photos, which is the
ratio an output with the edges of real anime portraits would score.

Checkpoints are chosen without the held-out folders: `--photos ../shared/data/photos/train
--anime ../shared/data/anime/train --judges 3` is the development judge: three classifiers,
each trained on its own draw of 300 photos (not the scored ones) and 100 anime images, the
sizes of the held-out sets; a stylizer counts by its worst judge (`anime_fraction_stylized`).
"""
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animeedge.calibration.data import shared_data
from animeedge.compress.quality import blurred_psnr_uint8, delta_e_uint8, psnr_uint8
from animeedge.generator.cel import cel_target, find_regions
from animeedge.generator.cel_fit import REGION_NAMES, CelFit, mean_scores
from animeedge.generator.checkpoint import DEFAULT_MODEL
from animeedge.generator.data import evenly_spaced, list_images, load_square
from animeedge.generator.face_measures import place_small
from animeedge.generator.faces import FaceFinder
from animeedge.generator.guidance import STYLES, anime_guide, cartoon_filter
from animeedge.generator.inference import TorchStylizer
from animeedge.generator.metrics import (SKIN_GOALS, anime_probability, meets, region_hue_change, skin_figures, stability_ratios,
                               structure_correlation, temporal_reference, train_classifier)
from animeedge.generator.semantic import semantic_target
from animeedge.runtimes.load import load

from .face_scores import APP_WIDTHS, FaceSet
from .face_scores import goal_rows as face_goal_rows
from animeedge.runtimes.atomic import write_text


GUIDE = "guide"  # --model guide[:STYLE] scores a classical anime guide the training uses as a target
CARTOON = "cartoon"  # --model cartoon scores the classical cartoon filter
SEMANTIC_TARGET = "semantic"  # --model semantic scores the face-model training target itself
CEL_TARGET = "cel"  # --model cel scores the clean cel target
HUE_GOAL = 15.0  # hair and clothes keep their hue (degrees, where the photo's chroma > 10)
LINE_F_GOAL, TARGET_DELTA_E_GOAL = 0.6, 6.0  # the network reaches the clean cel target
# skin, flicker and width goals (the anime classifier is a diagnostic, not a goal)
ANIME_GOAL, FLICKER_GOAL, DELTA_E_GOAL = 0.75, 0.65, 5.0
BLURRED_GOALS = {0.75: 32.0, 0.5: 28.0, 0.25: 25.0}


def contact_sheet(columns: list[list], path, side: int = 128, groups: int = 2):
    """One row per picture, one column per list (photo, stylizers...); the rows split into
    `groups` side by side."""
    n = len(columns[0])
    per_group = -(-n // groups)
    sheet = Image.new("RGB", (groups * len(columns) * side, per_group * side), "white")
    for i in range(n):
        g, row = divmod(i, per_group)
        for c, column in enumerate(columns):
            sheet.paste(Image.fromarray(column[i]).resize((side, side)), ((g * len(columns) + c) * side, row * side))
    sheet.save(path)


def public_pictures(side: int = 256) -> list:
    """Pictures the project may publish (scikit-image's public-domain and CC0 samples), square:
    the astronaut, her face, the photographer (CC0; grey), the cat, the coffee."""
    import cv2
    from skimage import data
    astronaut, camera = data.astronaut(), np.stack([data.camera()] * 3, -1)
    crops = [astronaut, astronaut[20:276, 100:356], camera[40:296, 150:406], data.chelsea()[:, 50:350],
             data.coffee()[:, 100:500]]
    return [cv2.resize(np.ascontiguousarray(c), (side, side), interpolation=cv2.INTER_AREA) for c in crops]


def filters(photos) -> list[list]:
    """The sheet's reference columns: the classical cartoon filter and the cel guide."""
    return [[cartoon_filter(p) for p in photos], [anime_guide(p, "cel") for p in photos]]


def public_sheet(model, path):
    """The contact sheet's columns on pictures that may go into git."""
    shared = TorchStylizer(model).model
    photos = public_pictures()
    columns = [photos, *filters(photos)] + [[TorchStylizer(shared, w)(p) for p in photos] for w in (1.0, 0.25)]
    contact_sheet(columns, path, side=256, groups=1)


FACE_SHEET_SIZES = (32, 48, 64, 80)  # px: the face widths of the sheet's app-scale rows


def _face_crop(picture, points, side=192):
    """The face's box (its mesh, a third wider), enlarged without smoothing: the pixels seen."""
    lo, hi = points.min(0), points.max(0)
    x0, y0 = np.maximum(np.round(lo - (hi - lo) / 6), 0).astype(int)
    x1, y1 = np.round(hi + (hi - lo) / 6).astype(int)
    return np.asarray(Image.fromarray(np.ascontiguousarray(picture[y0:y1, x0:x1])).resize((side, side), Image.NEAREST))


def face_sheet(models, path):
    """Face crops of the astronaut (public domain): photo | cel target | each model, at full size
    (width 1.0) and as the app sees her (her face FACE_SHEET_SIZES px wide in a 256-px frame,
    width 0.25), each crop enlarged to the same size."""
    finder = FaceFinder()
    photo = public_pictures()[1]
    points = finder.find(photo).points
    shared = [TorchStylizer(m).model for m in models]
    target = lambda rgb: cel_target(rgb, finder)[0]  # noqa: E731
    rows = [[photo, target(photo)] + [TorchStylizer(m, 1.0)(photo) for m in shared]]
    crops = [points]
    for size in FACE_SHEET_SIZES:
        frame, moved = place_small(photo, points, size)
        rows.append([frame, place_small(photo, points, size, then=target)[0]] + [TorchStylizer(m, 0.25)(frame) for m in shared])
        crops.append(moved)
    columns = [[_face_crop(row[c], pts) for row, pts in zip(rows, crops)] for c in range(len(rows[0]))]
    contact_sheet(columns, path, side=192, groups=1)


def width_consistency(stylizers: dict, photos, full=None) -> dict:
    """Each width against width 1.0 (`full`: its outputs, if already made): blurred PSNR,
    8x-pooled delta-E, plain PSNR."""
    full = full or [stylizers[1.0](p) for p in photos]
    out = {}
    for width in sorted(BLURRED_GOALS):
        outs = [stylizers[width](p) for p in photos]
        out[str(width)] = {"blurred_psnr": float(np.mean([blurred_psnr_uint8(a, b) for a, b in zip(outs, full)])),
                           "delta_e": float(np.mean([delta_e_uint8(a, b) for a, b in zip(outs, full)])),
                           "psnr": float(np.mean([psnr_uint8(a, b) for a, b in zip(outs, full)]))}
    return out


# Each classifier learns from at most as many images as the held-out one has (photos/calib,
# anime/eval): a judge trained on the big training folders is a different, stricter judge.
JUDGE_PHOTOS, JUDGE_ANIME = 300, 100
TEMPORAL_GOAL = 1.3  # the temporal ratio's reference line


def _draw(files: list, k: int, seed: int) -> list:
    if len(files) <= k:
        return files
    return sorted(np.random.default_rng(seed).choice(files, k, replace=False))


def _mean_of(rows: list[dict], key: str) -> float:
    """The mean of `key` over `rows`; nan (not a warning) when there are none (--videos 0)."""
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def hair_and_clothes(rgb, finder) -> np.ndarray:
    """The mask of a portrait's hair and clothes (face models); empty without a face."""
    _, parts = find_regions(rgb, finder)
    if parts is None:
        return np.zeros(rgb.shape[:2], bool)
    features = parts.lips | np.any(parts.eyes + parts.brows, axis=0)
    return parts.hair | (parts.person & ~parts.skin & ~parts.face & ~features)


class Judge:
    """The portraits, their pan-and-zoom videos and the anime classifiers, made once."""

    def __init__(self, photos_dir, anime_dir, n: int = 100, videos: int = 6, judges: int = 1):
        all_photos, all_anime = list_images(photos_dir), list_images(anime_dir)
        files = evenly_spaced(all_photos, n)
        scored = set(files)
        unseen = [f for f in all_photos if f not in scored]
        pool = unseen if len(unseen) >= JUDGE_PHOTOS else all_photos
        trained = [train_classifier(_draw(pool, JUDGE_PHOTOS, seed), _draw(all_anime, JUDGE_ANIME, seed), seed=seed)
                   for seed in range(judges)]
        self.classifiers = [c for c, _ in trained]
        self.accuracy = min(a for _, a in trained)
        self.photos = [load_square(f, 256) for f in files]
        finder = FaceFinder()
        self.hair_and_clothes = [hair_and_clothes(p, finder) for p in self.photos]
        self.cel_fits = [CelFit(p, finder) for p in self.photos]
        self.faces = FaceSet(self.photos, finder)
        large = {f: load_square(f, 512) for f in files}  # pan-and-zoom sources
        self.video_sources = [large[f] for f in evenly_spaced(files, videos)]
        self.photo_fraction = max(self._anime_fractions(self.photos))
        # what the temporal goal would be met by: outputs with the anime set's own edges
        anime = [load_square(f, 512) for f in evenly_spaced(all_anime, n)]
        self.anime_temporal = temporal_reference(anime, list(large.values()))
        # the UTKFace crops (200 px, upscaled) are softer than the selfies: the reference against each
        groups = {"selfies": [f for f in files if not Path(f).name.startswith("utk_")],
                  "UTKFace crops": [f for f in files if Path(f).name.startswith("utk_")]}
        self.anime_temporal_by_group = {k: float(temporal_reference(anime, [large[f] for f in v]).mean())
                                        for k, v in groups.items() if v}

    def _anime_fractions(self, images) -> list[float]:
        return [float(np.mean(anime_probability(c, images) > 0.5)) for c in self.classifiers]

    def evaluate(self, model, width: float = 1.0, sheet=None, stylize=None, bundle=None) -> dict:
        """Scores a checkpoint, `guide[:STYLE]`, `cartoon`, or any `stylize` callable named `model`;
        its app-scale faces through `bundle`'s TFLite int8 files where one is given."""
        widths, make_small = None, None
        if stylize is None and str(model).split(":")[0] == GUIDE:
            style = str(model).partition(":")[2] or "sketch"
            stylize = lambda rgb: anime_guide(rgb, style)  # noqa: E731
        elif stylize is None and model == CARTOON:
            stylize = cartoon_filter
        elif stylize is None and model == CEL_TARGET:
            finder = FaceFinder()
            stylize = make_small = lambda rgb: cel_target(rgb, finder)[0]  # noqa: E731
        elif stylize is None and model == SEMANTIC_TARGET:
            finder = FaceFinder()
            stylize = lambda rgb: semantic_target(rgb, finder)[0]  # noqa: E731
        elif stylize is None:
            shared = TorchStylizer(model).model
            widths = {w: TorchStylizer(shared, w) for w in (*BLURRED_GOALS, 1.0)}
            stylize = widths[width] if width in widths else TorchStylizer(shared, width)
        outs = [stylize(p) for p in self.photos]
        fractions = self._anime_fractions(outs)
        stability = [stability_ratios(stylize, src) for src in self.video_sources]
        if sheet:
            narrow = [widths[0.25](p) for p in self.photos[:24]] if widths else outs[:24]
            contact_sheet([self.photos[:24], *filters(self.photos[:24]), outs[:24], narrow], sheet)
        return {
            "model": str(model), "width": width, "portraits": len(self.photos),
            "classifier_heldout_accuracy": self.accuracy,
            "anime_fraction_stylized": min(fractions),
            "anime_fraction_per_judge": fractions,
            "anime_fraction_photos": self.photo_fraction,
            "structure_corr": float(np.mean([structure_correlation(p, o) for p, o in zip(self.photos, outs)])),
            "temporal_ratio": _mean_of(stability, "temporal"),
            "flicker_ratio": _mean_of(stability, "flicker"),
            "temporal_ratio_anime_reference": float(self.anime_temporal.mean()),
            "temporal_ratio_anime_reference_by_photo_group": self.anime_temporal_by_group,
            "skin": skin_figures(self.photos, outs),
            "hair_clothes_hue_change_deg": region_hue_change(self.photos, outs, self.hair_and_clothes),
            "cel_target_fit": mean_scores([fit.score(o) for fit, o in zip(self.cel_fits, outs)]),
            "widths_against_1.0": (width_consistency(widths, self.photos, outs if width == 1.0 else None)
                                   if widths else None),
            "faces": self._faces(outs, stylize, widths, make_small, bundle),
        }

    def _faces(self, outs, stylize, widths, make_small, bundle) -> dict:
        """The face scores at full size, and on the app-scale set through the app's files (or
        the model's widths in torch, or the picture maker itself)."""
        faces = {"full size": self.faces.full(outs)}
        if bundle is not None:
            for w in APP_WIDTHS:
                app = load(bundle, width=w, resolution=256, backend="tflite", precision="int8")
                faces[f"app, TFLite int8 w{w}"] = self.faces.app(app)
        elif widths is not None:
            for w in APP_WIDTHS:
                faces[f"app, torch w{w}"] = self.faces.app(widths[w])
        else:
            faces["app"] = self.faces.app(stylize, make_small)
        return faces


def goal_table(r: dict) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, goal, met) for each goal; met is None for a diagnostic."""
    fit = r["cel_target_fit"]
    rows = [("flicker", f"{r['flicker_ratio']:.2f}", f"<= {FLICKER_GOAL}", r["flicker_ratio"] <= FLICKER_GOAL),
            ("line F-score to the cel target", f"{fit['f']:.2f} (P {fit['p']:.2f} R {fit['r']:.2f})",
             f">= {LINE_F_GOAL}", fit["f"] >= LINE_F_GOAL)]
    rows += [(f"delta-E to the cel target, {k}", f"{fit[k]:.1f}", f"<= {TARGET_DELTA_E_GOAL}",
              fit[k] <= TARGET_DELTA_E_GOAL) for k in REGION_NAMES]
    rows.append(("skin and hair texture against the target", f"{fit['texture']:.2f}", "none (diagnostic)", None))
    hue = r["hair_clothes_hue_change_deg"]
    rows.append(("hair and clothes hue change", f"{hue:.1f} deg", f"<= {HUE_GOAL}", meets(hue, (None, HUE_GOAL))))
    for name, goal in SKIN_GOALS.items():
        text = " and ".join(f"{op} {v}" for op, v in zip((">=", "<="), goal) if v is not None)
        rows.append((f"skin {name}", f"{r['skin'][name]:.2f}", text, meets(r["skin"][name], goal)))
    rows += face_goal_rows(r.get("faces") or {})
    for width, figures in (r["widths_against_1.0"] or {}).items():
        goal = BLURRED_GOALS[float(width)]
        rows.append((f"width {width} blurred PSNR", f"{figures['blurred_psnr']:.1f} dB", f">= {goal}",
                     figures["blurred_psnr"] >= goal))
        rows.append((f"width {width} delta-E", f"{figures['delta_e']:.2f}", f"<= {DELTA_E_GOAL}",
                     figures["delta_e"] <= DELTA_E_GOAL))
    return rows


MODEL_KINDS = (GUIDE, CARTOON, SEMANTIC_TARGET, CEL_TARGET)


def check_model(model: str) -> str:
    """A --model value: a checkpoint path, or one of MODEL_KINDS (`guide:STYLE` with a known style)."""
    kind, _, style = str(model).partition(":")
    if kind == GUIDE and style and style not in STYLES:
        raise ValueError(f"unknown guide style {style!r}; styles: {', '.join(STYLES)}")
    return model


def _sheet_name(sheet, i):
    return sheet if i == 0 else str(Path(sheet).with_name(f"{Path(sheet).stem}-{i}.png"))


def run(models, photos=None, anime=None, n=100, videos=6, judges=1, width=1.0, sheet=None, json_path=None,
        public=None, bundle=None, face_sheet_path=None):
    """What `animeedge quality` does: score each model (or write the public sheet of the first,
    or the public face sheet of them all)."""
    torch.set_num_threads(2)
    models = models or [str(DEFAULT_MODEL)]
    if public:
        public_sheet(models[0], public)
        return
    if face_sheet_path:
        face_sheet(models, face_sheet_path)
        return
    judge = Judge(photos or shared_data("photos/calib", "--photos"), anime or shared_data("anime/eval", "--anime"),
                  n, videos, judges)
    ref = judge.anime_temporal
    print(f"reference: the same camera move over the anime pictures changes {ref.mean():.2f}x as much as over the "
          f"photos, the temporal ratio of outputs with anime edges (10th-90th percentile of the pictures "
          f"{np.percentile(ref, 10):.2f}-{np.percentile(ref, 90):.2f}; above the goal {TEMPORAL_GOAL}: "
          f"{np.mean(ref > TEMPORAL_GOAL):.0%}; against "
          + ", ".join(f"the {k} alone {v:.2f}" for k, v in judge.anime_temporal_by_group.items()) + ")")
    results = []
    for i, model in enumerate(models):
        results.append(judge.evaluate(model, width, sheet and _sheet_name(sheet, i), bundle=bundle if i == 0 else None))
        r = results[-1]
        print(f"{r['model']}: anime {r['anime_fraction_stylized']:.2f} (photos {r['anime_fraction_photos']:.2f}), "
              f"structure {r['structure_corr']:.3f}, temporal {r['temporal_ratio']:.2f}, "
              f"flicker {r['flicker_ratio']:.2f}", flush=True)
        for figure, value, goal, met in goal_table(r):
            print(f"  {figure:<60} {value:>22}  goal {goal:<17} {'' if met is None else 'met' if met else 'MISSED'}")
    text = json.dumps(results[0] if len(results) == 1 else results, indent=2)
    if json_path:
        write_text(Path(json_path), text + "\n")
        print(f"json: {json_path}")
