"""`animeedge quality`: the public contact sheet, and (slow, on the research data) every figure
of the goal table printed and written for a model scored on two portraits."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from animeedge.calibration.data import has_shared_data
from animeedge.face_scores import goal_rows as face_goal_rows
from animeedge.quality import goal_table, public_pictures


def _animeedge(*args, cwd):
    return subprocess.run([sys.executable, "-m", "animeedge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1700)


def test_the_public_sheet_has_a_row_per_picture_and_a_column_per_stylizer(tmp_path):
    done = _animeedge("quality", "--public-sheet", "sheet.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    # photo, cartoon filter, cel guide, width 1.0 and width 0.25, at 256 px
    assert sheet.shape[:2] == (256 * len(public_pictures()), 5 * 256)
    columns = sheet.reshape(sheet.shape[0], 5, 256, 3).astype(float)
    assert all(np.abs(columns[:, i] - columns[:, 0]).mean() > 3 for i in range(1, 5))  # each stylizer changes it


def test_a_diagnostic_row_has_no_verdict():
    fit = {"f": 0.7, "p": 0.7, "r": 0.7, "skin": 5.0, "hair": 7.0, "clothes": 4.0, "background": 4.0,
           "texture": 2.5}
    r = {"flicker_ratio": 0.5, "cel_target_fit": fit, "hair_clothes_hue_change_deg": 20.0,
         "skin": {"lightness_rank_corr": 0.95, "hue_change_deg": 5.0, "chroma_ratio": 1.0},
         "widths_against_1.0": None}
    verdicts = {figure: met for figure, _, _, met in goal_table(r)}
    assert verdicts["skin and hair texture against the target"] is None
    assert verdicts["delta-E to the cel target, skin"] and not verdicts["delta-E to the cel target, hair"]
    assert not verdicts["hair and clothes hue change"] and verdicts["line F-score to the cel target"]


@pytest.mark.slow
@pytest.mark.skipif(not (has_shared_data("photos/calib") and has_shared_data("anime/eval")),
                    reason="needs the research data")
def test_every_goal_figure_is_printed_and_written(tmp_path):
    done = _animeedge("quality", "--n", "2", "--videos", "1", "--json", "q.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "q.json").read_text())
    for figure, _, _, _ in goal_table(result):
        assert figure in done.stdout
    assert set(result["widths_against_1.0"]) == {"0.25", "0.5", "0.75"}
    assert result["cel_target_fit"]["texture"] > 0


def test_the_face_rows_hold_each_size_to_its_goal():
    faces = {"full size": {"eye_corr": 0.9, "eye_black_ratio": 2.5, "fold_ink": 0.005, "lip_ink_mean": 0.03,
                           "teeth_kept": 0.95},
             "app, TFLite int8 w0.25": {"eye_corr": 0.85, "eye_black_ratio": 2.5, "fold_ink": 0.02,
                                        "lip_ink_mean": 0.01, "teeth_kept": 0.5}}
    verdicts = {figure: met for figure, _, _, met in face_goal_rows(faces)}
    assert verdicts["eyes: L* corr. with the photo (full size)"] and verdicts["folds: ink share (full size)"]
    assert not verdicts["eyes: near-black x the photo's (full size)"]  # 2.5 > 2.2 at full size...
    assert verdicts["eyes: near-black x the photo's (app, TFLite int8 w0.25)"]  # ...but <= 3.0 at app scale
    assert verdicts["eyes: L* corr. with the photo (app, TFLite int8 w0.25)"]  # 0.85 >= 0.80
    assert not verdicts["folds: ink share (app, TFLite int8 w0.25)"]
    assert verdicts["upper lip: ink share (full size)"] is None and verdicts["upper lip: ink share (app, TFLite int8 w0.25)"]
    assert verdicts["smiles: teeth kept (full size)"] and verdicts["smiles: teeth kept (app, TFLite int8 w0.25)"] is None


def test_a_missing_bundle_is_refused_before_any_scoring(tmp_path):
    done = _animeedge("quality", "--bundle", str(tmp_path / "nowhere"), "--n", "2", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "nowhere" in done.stderr
