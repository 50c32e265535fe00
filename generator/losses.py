"""The generator's loss family, built without pretrained networks.

Content/identity uses a multi-scale luminance structure loss instead of VGG features: L1
between the luminance of photo and output after 2x, 4x and 8x average pooling. Identity
lives in the layout of light and dark (face shape, eyes, mouth, hair line) at those scales,
while the finest scale, colour and texture stay free for the style to change.
"""
import torch
import torch.nn.functional as F

_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035],
                     [0.61497538, -0.51496512, -0.10001026]])


def rgb_to_yuv(x):
    """x in [-1, 1] NCHW -> YUV of the [0, 1] image."""
    return torch.einsum("nchw,dc->ndhw", (x + 1) / 2, _YUV.to(x))


def luminance(x):
    return rgb_to_yuv(x)[:, :1]


def lsgan_d(real_logits, fake_logits):
    return (real_logits - 1).square().mean() + fake_logits.square().mean()


def lsgan_g(fake_logits):
    return (fake_logits - 1).square().mean()


def structure_loss(photo, out, scales=(2, 4, 8)):
    yp, yo = luminance(photo), luminance(out)
    return sum(F.l1_loss(F.avg_pool2d(yo, s), F.avg_pool2d(yp, s)) for s in scales) / len(scales)


def shift_zoom(x, dx: int, dy: int, crop: int):
    """A small camera move: shift by (dx, dy) pixels and zoom in by cropping `crop` pixels off
    each side, resized back (bilinear). Used on photo and output alike."""
    h, w = x.shape[-2:]
    x = torch.roll(x, (dy, dx), dims=(-2, -1))[..., crop:h - crop, crop:w - crop]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def consistency_loss(generator, photo, out, rng: torch.Generator):
    """Temporal stability without video: stylizing a slightly moved photo must give the moved
    output (equivariance to the small pans and zooms of a hand-held camera). The border the
    roll wraps around is left out."""
    dx, dy = (int(v) for v in torch.randint(-6, 7, (2,), generator=rng))
    crop = int(torch.randint(0, 5, (1,), generator=rng))
    moved = generator(shift_zoom(photo, dx, dy, crop))
    target = shift_zoom(out.detach(), dx, dy, crop)
    m = 8 + crop
    return F.l1_loss(moved[..., m:-m, m:-m], target[..., m:-m, m:-m])


def structure_corr_loss(photo, out, scales=(4, 8)):
    """1 - Pearson correlation of pooled luminance, per image: the layout of light and dark
    must stay, while overall brightness and contrast are free (anime portraits are brighter
    than photos). The same measure, blurred instead of pooled, is the README's structure score."""
    total = 0
    for s in scales:
        a, b = (F.avg_pool2d(luminance(x), s).flatten(1) for x in (photo, out))
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        total = total + 1 - (F.cosine_similarity(a, b, dim=1, eps=1e-6)).mean()
    return total / len(scales)


def color_loss(photo, out, scale: int = 4):
    """Chroma (U, V) L1 on 4x-pooled images, after AnimeGANv2's colour loss: keep the photo's
    colours region by region; luminance is left to structure_loss."""
    return chroma_l1(F.avg_pool2d(out, scale), F.avg_pool2d(photo, scale))


def chroma_l1(out, target):
    """Per-pixel chroma (U, V) L1: unlike color_loss, not pooled, so thin coloured fringes along
    the target's black lines count."""
    return F.l1_loss(rgb_to_yuv(out)[:, 1:], rgb_to_yuv(target)[:, 1:])


def ink_l1(out, target, dark: float = 0.25):
    """L1 on the target's ink and near-black alone (luminance below `dark`, in [0, 1]). Plain L1
    draws a line only where the network is over half sure of it, so thin lines at uncertain
    places average away; weighing the dark pixels again lowers that bar."""
    ink = (luminance(target) < dark).float()
    return ((out - target).abs().mean(1, keepdim=True) * ink).sum() / ink.sum().clamp(min=1.0)


def tv_loss(x):
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def superpixel_means(x, labels):
    """Replace every pixel by the mean colour of its superpixel. labels: (N, H, W) int64,
    ids unique within each image."""
    n, c, h, w = x.shape
    ids = labels.reshape(n, 1, h * w) + (torch.arange(n, device=x.device) * (labels.max() + 1)).view(n, 1, 1)
    ids = ids.reshape(-1)
    flat = x.permute(0, 2, 3, 1).reshape(-1, c)
    sums = torch.zeros(int(ids.max()) + 1, c, dtype=x.dtype, device=x.device).index_add_(0, ids, flat)
    counts = torch.zeros(int(ids.max()) + 1, dtype=x.dtype, device=x.device).index_add_(0, ids, torch.ones_like(flat[:, 0]))
    means = sums / counts.clamp_min(1).unsqueeze(1)
    return means[ids].reshape(n, h, w, c).permute(0, 3, 1, 2)


def region_loss(out, labels):
    """AnimeGANv3's region smoothing: pull the output toward its own superpixel-mean image."""
    return F.l1_loss(out, superpixel_means(out.detach(), labels))


def _box(x, r):
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def guided_filter(guide, src, r: int = 4, eps: float = 1e-2):
    """He et al.'s guided filter with a grey guide: edge-preserving smoothing of src."""
    mean_g, mean_s = _box(guide, r), _box(src, r)
    cov = _box(guide * src, r) - mean_g * mean_s
    var = _box(guide * guide, r) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return _box(a, r) * guide + _box(b, r)


def revision_loss(main, support, photo):
    """Fine-grained revision for the main tail: follow the support tail's anime image after
    edge-preserving smoothing guided by the photo, so the main tail keeps the photo's edges
    and drops the support tail's artefacts."""
    target = guided_filter(luminance(photo) * 2 - 1, support.detach())
    return F.l1_loss(main, target)
