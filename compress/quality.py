"""Image agreement measures for distillation (torch) and reporting (numpy)."""
import numpy as np
import torch
import torch.nn.functional as F


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5, device=None):
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-x.square() / (2 * sigma * sigma))
    g = (g / g.sum()).view(1, 1, 1, -1)
    return g, g.transpose(2, 3), channels


def ssim_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images in [-1, 1] (NCHW), Gaussian window 11 / 1.5, per channel."""
    a, b = (a + 1) / 2, (b + 1) / 2
    c = a.shape[1]
    gx, gy, _ = _gaussian_window(c, device=a.device)

    def blur(x):
        x = F.conv2d(F.pad(x, (5, 5, 0, 0), mode="reflect"), gx.expand(c, 1, 1, 11), groups=c)
        return F.conv2d(F.pad(x, (0, 0, 5, 5), mode="reflect"), gy.expand(c, 1, 11, 1), groups=c)
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
