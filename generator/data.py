"""Unpaired photo and anime image streams for training.

Photos come with superpixel labels (SLIC on the resized photo, cached as .npy under the
cache folder, computed once per image and size); anime images come with an edge-smoothed
copy (AnimeGAN's trick: the discriminator learns that blurred outlines are not anime).
Both get random crops and flips.
"""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch

from animeedge.runtimes.imageio import list_images, load_square  # noqa: F401 (re-exported for training code)
from animeedge.runtimes.processing import to_nchw

from .faces import FaceFinder
from .guidance import SEMANTIC, anime_guide
from .semantic import CODE_KEY, semantic_target


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float 3xHxW in [-1, 1]."""
    return torch.from_numpy(to_nchw(rgb)[0])


def evenly_spaced(files: list, n: int) -> list:
    """n items spread over the whole list (a fixed, reproducible evaluation subset)."""
    return [files[i] for i in np.linspace(0, len(files) - 1, min(n, len(files))).astype(int)]


def superpixels(rgb: np.ndarray) -> np.ndarray:
    from skimage.segmentation import slic
    return slic(rgb, n_segments=rgb.shape[0] * rgb.shape[1] // 400, compactness=10, start_label=0).astype(np.int32)


def smooth_edges(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.dilate(cv2.Canny(grey, 100, 200), np.ones((5, 5), np.uint8)) > 0
    out = rgb.copy()
    out[edges] = cv2.GaussianBlur(rgb, (5, 5), 0)[edges]
    return out


def random_crop_flip(rng: np.random.Generator, size: int, *arrays):
    h, w = arrays[0].shape[:2]
    y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    flip = rng.random() < 0.5
    out = []
    for a in arrays:
        a = a[y:y + size, x:x + size]
        out.append(a[:, ::-1] if flip else a)
    return out


class ImageStream:
    """Endless random samples from a folder; `rng` seeds the order (one per DDP rank)."""

    def __init__(self, folder, size: int, seed: int, cache_dir=None, load_size: int | None = None):
        self.files = list_images(folder)
        self.size = size
        self.side = load_size or size + size // 8
        self.rng = np.random.default_rng(seed)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.guide_style = "sketch"
        self.finder = None

    def _cached(self, path, kind: str, make, rgb):
        """make(rgb), computed once per image, size and kind when there is a cache folder."""
        if self.cache_dir is None:
            return make(rgb)
        key = hashlib.sha1(f"{path.resolve()}:{self.side}{kind}".encode()).hexdigest()[:16]
        cached = self.cache_dir / f"{key}.npy"
        if cached.exists():
            return np.load(cached)
        value = make(rgb)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{np.random.randint(1 << 30)}.tmp.npy")
        np.save(tmp, value)
        tmp.replace(cached)
        return value

    def guide(self, path, rgb):
        if self.guide_style != SEMANTIC:
            return anime_guide(rgb, self.guide_style)
        if self.finder is None:
            self.finder = FaceFinder()
        return self._cached(path, f":semantic:{CODE_KEY}", lambda x: semantic_target(x, self.finder)[0], rgb)

    def photo_batch(self, n: int, with_guide: bool = False):
        """(images [-1,1] NCHW, superpixel labels NHW int64, classical anime guides [-1,1]
        NCHW or None)."""
        imgs, labels, guides = [], [], []
        for i in self.rng.integers(0, len(self.files), n):
            rgb = load_square(self.files[i], self.side)
            extra = [self.guide(self.files[i], rgb)] if with_guide else []
            img, lab, *guide = random_crop_flip(self.rng, self.size, rgb, self._cached(self.files[i], "", superpixels, rgb), *extra)
            imgs.append(to_tensor(img))
            labels.append(torch.from_numpy(np.ascontiguousarray(lab)).long())
            guides += [to_tensor(np.ascontiguousarray(g)) for g in guide]
        return torch.stack(imgs), torch.stack(labels), torch.stack(guides) if guides else None

    def anime_batch(self, n: int):
        """(anime images, their edge-smoothed copies), both [-1,1] NCHW."""
        imgs, smooth = [], []
        for i in self.rng.integers(0, len(self.files), n):
            (img,) = random_crop_flip(self.rng, self.size, load_square(self.files[i], self.side))
            imgs.append(to_tensor(img))
            smooth.append(to_tensor(smooth_edges(np.ascontiguousarray(img))))
        return torch.stack(imgs), torch.stack(smooth)
