"""How anime, how faithful and how stable a stylizer is, without pretrained networks.

- anime-ness: a small CNN trained by the project on photos vs anime images (by default
  photos/calib vs anime/eval, never the training folders); the score of a stylizer is the
  fraction of its stylized portraits the classifier calls anime.
- structure: Pearson correlation of blurred luminance between input and output.
- temporal stability: on a pan-and-zoom video over a portrait, the mean absolute
  frame-to-frame change of the output divided by that of the input.
"""
import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import list_images, load_square

CLASSIFIER_SIZE = 128


class AnimeClassifier(nn.Module):
    def __init__(self, c: int = 16):
        super().__init__()
        layers, cin = [], 3
        for cout in (c, 2 * c, 4 * c, 8 * c, 8 * c):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def _batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _load(images) -> list[np.ndarray]:
    files = images if isinstance(images, list) else list_images(images)
    return [load_square(p, CLASSIFIER_SIZE) for p in files]


def train_classifier(photo_dir, anime_dir, steps: int = 400, seed: int = 0):
    """Returns (classifier, held-out accuracy on a 20% split); photos and anime are folders or
    lists of files."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    photos, anime = _load(photo_dir), _load(anime_dir)
    data = [(img, 0.0) for img in photos] + [(img, 1.0) for img in anime]
    order = rng.permutation(len(data))
    cut = int(0.8 * len(data))
    train, held = [data[i] for i in order[:cut]], [data[i] for i in order[cut:]]
    weights = np.array([1 / len(anime) if y else 1 / len(photos) for _, y in train])
    model = AnimeClassifier()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(steps):
        idx = rng.choice(len(train), 32, p=weights / weights.sum())
        imgs = [train[i][0][:, ::-1] if rng.random() < 0.5 else train[i][0] for i in idx]
        logits = model(_batch([np.ascontiguousarray(i) for i in imgs]))
        loss = F.binary_cross_entropy_with_logits(logits, torch.tensor([train[i][1] for i in idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    pred = anime_probability(model, [img for img, _ in held]) > 0.5
    accuracy = float(np.mean(pred == np.array([y for _, y in held], bool)))
    return model, accuracy


@torch.no_grad()
def anime_probability(model, images: list[np.ndarray]) -> np.ndarray:
    sized = [cv2.resize(i, (CLASSIFIER_SIZE, CLASSIFIER_SIZE), interpolation=cv2.INTER_AREA) for i in images]
    return torch.sigmoid(model(_batch(sized))).numpy()


def _blurred_luma(rgb: np.ndarray, sigma: float) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return cv2.GaussianBlur(grey, (0, 0), sigma).ravel()


def structure_correlation(src: np.ndarray, out: np.ndarray, sigma: float = 3.0) -> float:
    a, b = _blurred_luma(src, sigma), _blurred_luma(out, sigma)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def pan_zoom_moves(shape, n: int = 24, size: int = 256) -> list[np.ndarray]:
    """The 2x3 affines (picture -> frame) of a smooth camera move: the crop window drifts and
    zooms in 10%."""
    h, w = shape[:2]
    moves = []
    for t in np.linspace(0, 1, n):
        side = min(h, w) * (0.9 - 0.1 * t)
        y0, x0 = (h - side) * (0.3 + 0.4 * t), (w - side) * (0.6 - 0.3 * t)
        box = np.float32([[x0, y0], [x0 + side, y0], [x0, y0 + side]])
        moves.append(cv2.getAffineTransform(box, np.float32([[0, 0], [size, 0], [0, size]])))
    return moves


def pan_zoom_frames(rgb: np.ndarray, n: int = 24, size: int = 256) -> list[np.ndarray]:
    return [cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            for m in pan_zoom_moves(rgb.shape, n, size)]


def _mean_change(seq) -> float:
    return float(np.mean([np.abs(b.astype(np.float32) - a.astype(np.float32)).mean() for a, b in zip(seq, seq[1:])]))


def temporal_ratio(stylize, frames: list[np.ndarray]) -> float:
    return _mean_change([stylize(f) for f in frames]) / _mean_change(frames)


def temporal_reference(targets: list[np.ndarray], sources: list[np.ndarray], n: int = 24,
                       size: int = 256) -> np.ndarray:
    """The temporal ratio a stylizer would score if its outputs had the edges of `targets`
    (say, real anime portraits): per target picture, the same camera move's mean
    frame-to-frame change over it, over the mean such change over the source pictures."""
    def changes(pictures):
        return np.array([_mean_change(pan_zoom_frames(p, n, size)) for p in pictures])
    return changes(targets) / changes(sources).mean()


def _frame_to_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The affine taking frame a's pixel coordinates to frame b's (both picture -> frame)."""
    inv = cv2.invertAffineTransform(a)
    return (np.vstack([b, [0, 0, 1]]) @ np.vstack([inv, [0, 0, 1]]))[:2]


def _unexplained_change(moves, outs, size: int) -> float:
    ones = np.ones((size, size), np.float32)
    residual = []
    for ma, mb, oa, ob in zip(moves, moves[1:], outs, outs[1:]):
        m = _frame_to_frame(ma, mb)
        seen = cv2.warpAffine(ones, m, (size, size), flags=cv2.INTER_NEAREST) > 0
        warped = cv2.warpAffine(oa.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR)
        residual.append(np.abs(ob.astype(np.float32) - warped)[seen].mean())
    return float(np.mean(residual))


def stability_ratios(stylize, rgb: np.ndarray, n: int = 24, size: int = 256) -> dict:
    """temporal_ratio and flicker_ratio on one pan-and-zoom video over `rgb`, stylizing each
    frame once."""
    moves = pan_zoom_moves(rgb.shape, n, size)
    frames = pan_zoom_frames(rgb, n, size)
    outs = [stylize(f) for f in frames]
    change = _mean_change(frames)
    return {"temporal": _mean_change(outs) / change, "flicker": _unexplained_change(moves, outs, size) / change}


def flicker_ratio(stylize, rgb: np.ndarray, n: int = 24, size: int = 256) -> float:
    """The part of the output's frame-to-frame change that the camera move does not explain:
    each stylized frame is warped onto the next by the known move and compared there (pixels
    the previous frame did not see are left out), over the input's frame-to-frame change.
    Unlike temporal_ratio, a stylizer that draws sharper edges than the photo is not
    penalized for those edges moving with the camera; only for changing."""
    return stability_ratios(stylize, rgb, n, size)["flicker"]


# The skin goals, measured on the face centre of face crops: a default that greys or
# whitens dark skin does not ship.
SKIN_GOALS = {"lightness_rank_corr": (0.9, None), "hue_change_deg": (None, 10.0), "chroma_ratio": (0.8, 1.6)}


def face_centre_lab(rgb: np.ndarray, frac: float = 0.25) -> np.ndarray:
    """Mean CIELAB (L, a, b) of the central box (`frac` of each side) of a face crop."""
    h, w = rgb.shape[:2]
    y0, x0 = int(h * (1 - frac) / 2), int(w * (1 - frac) / 2)
    box = rgb[y0:h - y0, x0:w - x0].astype(np.float32) / 255
    return cv2.cvtColor(box, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)


def skin_figures(photos: list[np.ndarray], outputs: list[np.ndarray]) -> dict:
    """Input against output on the face centre: the rank correlation of CIELAB lightness over
    the portraits (dark stays darker than light), the mean hue change in degrees and the
    median chroma ratio."""
    from scipy.stats import spearmanr
    src = np.array([face_centre_lab(p) for p in photos])
    out = np.array([face_centre_lab(o) for o in outputs])
    hue = [np.degrees(np.arctan2(x[:, 2], x[:, 1])) for x in (src, out)]
    turn = np.abs((hue[1] - hue[0] + 180) % 360 - 180)
    chroma = [np.hypot(x[:, 1], x[:, 2]) for x in (src, out)]
    return {"lightness_rank_corr": float(spearmanr(src[:, 0], out[:, 0]).statistic),
            "hue_change_deg": float(turn.mean()),
            "chroma_ratio": float(np.median(chroma[1] / np.maximum(chroma[0], 1e-3)))}


def region_hue_change(photos: list[np.ndarray], outputs: list[np.ndarray], masks: list[np.ndarray],
                      min_chroma: float = 10.0) -> float:
    """The hair and clothes measure: the mean CIELAB hue change in degrees from photo to
    output over the masked pixels where the photo's chroma exceeds `min_chroma` (grey has no
    hue to keep), averaged over the pictures that have such pixels; nan if none has."""
    turns = []
    for photo, out, mask in zip(photos, outputs, masks):
        src, dst = (cv2.cvtColor(x.astype(np.float32) / 255, cv2.COLOR_RGB2LAB) for x in (photo, out))
        chosen = mask & (np.hypot(src[..., 1], src[..., 2]) > min_chroma)
        if chosen.any():
            a, b = (x[chosen, 1] + 1j * x[chosen, 2] for x in (src, dst))
            turns.append(np.degrees(np.abs(np.angle(b * np.conj(a)))).mean())
    return float(np.mean(turns)) if turns else float("nan")


def meets(value: float, goal: tuple) -> bool:
    low, high = goal
    return (low is None or value >= low) and (high is None or value <= high)
