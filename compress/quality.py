"""Image agreement measures for distillation (torch) and reporting (numpy)."""
import numpy as np
import torch
import torch.nn.functional as F


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5, device=None):
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-x.square() / (2 * sigma * sigma))
    g = (g / g.sum()).view(1, 1, 1, -1)
    return g, g.transpose(2, 3), channels


def gaussian_blur_torch(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Separable Gaussian blur of NCHW images, reflect-padded (size odd)."""
    c, r = x.shape[1], size // 2
    gx, gy, _ = _gaussian_window(c, size, sigma, device=x.device)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), gx.expand(c, 1, 1, size), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), gy.expand(c, 1, size, 1), groups=c)


def ssim_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images in [-1, 1] (NCHW), Gaussian window 11 / 1.5, per channel."""
    a, b = (a + 1) / 2, (b + 1) / 2
    blur = gaussian_blur_torch
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2))
    return s.mean()


def psnr_signed(mse: float) -> float:
    """PSNR of a mean squared error between images in [-1, 1] (peak-to-peak 2)."""
    return float(10 * np.log10(4 / max(mse, 1e-20)))


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim_uint8(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


BLUR_SIZE, BLUR_SIGMA, POOL = 256, 1.0, 8


def _at_size(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2
    if rgb.shape[:2] == (size, size):
        return rgb
    shrink = rgb.shape[0] > size
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def blurred_psnr_uint8(a: np.ndarray, b: np.ndarray, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> float:
    """PSNR of two square pictures at `size` px after a Gaussian blur of `sigma` px: a line
    drawn one pixel aside no longer dominates the figure."""
    import cv2
    blur = [cv2.GaussianBlur(_at_size(x, size).astype(np.float64), (0, 0), sigma) for x in (a, b)]
    mse = np.mean((blur[0] - blur[1]) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def delta_e_uint8(a: np.ndarray, b: np.ndarray, pool: int = POOL) -> float:
    """Mean CIELAB delta-E (1976) between two pictures area-pooled by `pool`: the colour of
    regions, which PSNR hides (an orange suit turned brown)."""
    import cv2
    from skimage.color import rgb2lab
    h, w = a.shape[:2]
    small = [cv2.resize(x, (max(1, w // pool), max(1, h // pool)), interpolation=cv2.INTER_AREA) for x in (a, b)]
    lab = [rgb2lab(x.astype(np.float64) / 255.0) for x in small]
    return float(np.mean(np.linalg.norm(lab[0] - lab[1], axis=-1)))
