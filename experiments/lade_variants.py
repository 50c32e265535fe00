"""Rewrites of LADE's arithmetic, measured as TFLite files: latency (fp32 and int8, 2 threads,
the best of 5 medians of 60 runs) and int8 fidelity against the torch network (8 evaluation
photos). Where width 0.25's time goes, and why the model's form is the one it is (README,
"Benchmark").

    python experiments/lade_variants.py [--width 0.25] [--resolution 256] [--variants model,centred]

Variants: "model" (the model's own form: the projection on the centred input, t never
formed; the whole layer in float in int8), "folded" (t formed, then x * scale + shift with
scale = std(t)/std(x), the model's form before), "centred" ((x - mean) / std * std_t + mean_t,
the form before that), "squares" (variances as E[x^2] - E[x]^2, then x * scale + shift),
"projected mean" (the centred form with the projection's mean computed from x's mean, one
reduction fewer), "covariance" (the projection's statistics from the input's channel
covariance), "sampled k" (the centred form with statistics from every k-th row and column: an
approximation, so fp32 is also compared with the exact network), "sampled by conv" (sampled 2
with the sample taken by stride-2 1x1 convolutions), "no LADE" (identity: the floor). Unless
named "X float", a variant's int8 is as the quantizer annotates it; "X float" keeps the whole
layer in float, as the model does.
"""
import argparse
import contextlib
import copy
import io

import numpy as np
import torch
import torch.nn as nn

from animeedge.calibration.data import CalibrationSet, shared_data
from animeedge.compress import export_tflite
from animeedge.compress.export import quiet_converters
from animeedge.compress.export_tflite import int8_model
from animeedge.compress.quality import psnr_signed
from animeedge.generator.checkpoint import load_generator
from animeedge.generator.norm import EPS, LADE
from animeedge.generator.slicing import sliced_copy
from animeedge.runtimes.backends import litert_interpreter
from animeedge.runtimes.bench import best_median_ms


class Covariance(nn.Module):
    def __init__(self, lade):
        super().__init__()
        self.w = nn.Parameter(lade.proj.weight[:, :, 0, 0].detach().clone(), requires_grad=False)
        self.b = nn.Parameter(lade.proj.bias.detach().clone(), requires_grad=False)

    def forward(self, x):
        n, c, h, w = x.shape
        mu = x.mean(dim=(2, 3), keepdim=True)
        xc = (x - mu).reshape(n, c, h * w)
        cov = torch.bmm(xc, xc.transpose(1, 2)) / (h * w)
        scale = torch.rsqrt(torch.diagonal(cov, dim1=1, dim2=2) + EPS) * torch.sqrt(((self.w @ cov) * self.w).sum(-1) + EPS)
        return (x - mu) * scale[:, :, None, None] + (mu[:, :, 0, 0] @ self.w.T + self.b)[:, :, None, None]


def _moments(x):
    mean = x.mean(dim=(2, 3), keepdim=True)
    return mean, (x - mean).square().mean(dim=(2, 3), keepdim=True)


class Folded(nn.Module):
    """The model's form before LADE stopped forming t: x * scale + shift."""

    def forward(self, x, t):
        t_mean, t_var = _moments(t)
        x_mean, x_var = _moments(x)
        scale = torch.rsqrt(x_var + EPS) * torch.sqrt(t_var + EPS)
        return x * scale + (t_mean - x_mean * scale)


class Centred(nn.Module):
    """The textbook form, the model's until LADE ran folded."""

    def forward(self, x, t):
        t_mean, t_var = _moments(t)
        x_mean, x_var = _moments(x)
        return (x - x_mean) * torch.rsqrt(x_var + EPS) * torch.sqrt(t_var + EPS) + t_mean


class Squares(nn.Module):
    def forward(self, x, t):
        xm, tm = x.mean(dim=(2, 3), keepdim=True), t.mean(dim=(2, 3), keepdim=True)
        xv = ((x * x).mean(dim=(2, 3), keepdim=True) - xm * xm).clamp_min(0)
        tv = ((t * t).mean(dim=(2, 3), keepdim=True) - tm * tm).clamp_min(0)
        scale = torch.rsqrt(xv + EPS) * torch.sqrt(tv + EPS)
        return x * scale + (tm - xm * scale)


class Float(nn.Module):
    """`inner`, left in float by int8 quantization."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args):
        return self.inner(*args)


class OnProjection(nn.Module):
    """A LADE that forms t = W'x + b' and gives `arithmetic` (x, t)."""

    def __init__(self, lade, arithmetic):
        super().__init__()
        self.proj, self.arithmetic = lade.proj, arithmetic  # slicing folded the affine into proj

    def forward(self, x):
        return self.arithmetic(x, self.proj(x))


def arithmetic(make, in_float=False):
    """A variant that forms t and replaces LADE's arithmetic on (x, t)."""
    return lambda lade: Float(OnProjection(lade, make())) if in_float else OnProjection(lade, make())


def centred_from_samples(x, sample, t):
    """LADE's centred form with x's statistics from `sample` and the projection's from `t`."""
    t_mean, t_var = t.mean(dim=(2, 3), keepdim=True), t.var(dim=(2, 3), keepdim=True, unbiased=False)
    x_mean, x_var = sample.mean(dim=(2, 3), keepdim=True), sample.var(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - x_mean) * torch.rsqrt(x_var + EPS) * torch.sqrt(t_var + EPS) + t_mean


class Sampled(nn.Module):
    """The centred form with both statistics from every k-th row and column."""

    def __init__(self, lade, k):
        super().__init__()
        self.lade, self.k = lade, k

    def forward(self, x):
        sample = x[:, :, ::self.k, ::self.k]
        return centred_from_samples(x, sample, self.lade.width_affine(self.lade.proj(sample)))


def sampled(k):
    return lambda lade: Sampled(lade, k)


class ConvSampled(nn.Module):
    """Sampled 2 with the sample taken by stride-2 1x1 convolutions (an identity depthwise one
    for x, the projection itself for t), which XNNPACK runs, instead of strided slices."""

    def __init__(self, lade):
        super().__init__()
        c = lade.proj.in_channels
        self.pick = nn.Conv2d(c, c, 1, stride=2, groups=c, bias=False)
        nn.init.ones_(self.pick.weight)
        self.proj = nn.Conv2d(c, c, 1, stride=2)
        with torch.no_grad():
            probe = lade.width_affine(lade.proj(torch.eye(c)[:, :, None, None]))[:, :, 0, 0]  # W' x + b'
            bias = lade.width_affine(lade.proj(torch.zeros(1, c, 1, 1)))[0, :, 0, 0]
            self.proj.weight.copy_((probe - bias).T[:, :, None, None])
            self.proj.bias.copy_(bias)

    def forward(self, x):
        return centred_from_samples(x, self.pick(x), self.proj(x))


class ProjectedMean(nn.Module):
    """The centred form with the projection's mean taken from x's (t = W'x + b' is linear, so
    mean(t) = W' mean(x) + b' exactly): one full-resolution reduction fewer."""

    def __init__(self, lade):
        super().__init__()
        self.lade = lade

    def forward(self, x):
        x_mean, x_var = _moments(x)
        t_mean = self.lade.width_affine(self.lade.proj(x_mean))
        t_var = (self.lade.width_affine(self.lade.proj(x)) - t_mean).square().mean(dim=(2, 3), keepdim=True)
        return (x - x_mean) * torch.rsqrt(x_var + EPS) * torch.sqrt(t_var + EPS) + t_mean


VARIANTS = {"model": None, "folded": arithmetic(Folded), "folded float": arithmetic(Folded, True),
            "centred": arithmetic(Centred), "centred float": arithmetic(Centred, True),
            "squares": arithmetic(Squares), "squares float": arithmetic(Squares, True),
            "projected mean": ProjectedMean, "covariance": Covariance,
            "sampled 2": sampled(2), "sampled 4": sampled(4),
            "sampled by conv": ConvSampled, "no LADE": lambda lade: nn.Identity()}


def variant(net, make):
    net = copy.deepcopy(net)
    if make is not None:
        for parent in list(net.modules()):
            for name, child in parent.named_children():
                if isinstance(child, LADE):
                    setattr(parent, name, make(child))
    return export_tflite.without_mirror_pad(net).eval()


def measure(model, path, images, references):
    model.export(str(path))
    it = litert_interpreter()(model_path=str(path), num_threads=2)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    errors = []
    for x, ref in zip(images, references):
        x = x.transpose(0, 2, 3, 1)
        it.set_tensor(inp["index"], np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8) if scale else x)
        it.invoke()
        errors.append(float(((it.get_tensor(out["index"]).transpose(0, 3, 1, 2) - ref) ** 2).mean()))
    return best_median_ms(it.invoke, repeats=5, warmup=5, runs=60), psnr_signed(float(np.mean(errors))), len(it._get_ops_details())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--variants", type=lambda t: t.split(","), default=list(VARIANTS),
                   help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    args = p.parse_args()
    quiet_converters()
    photos = CalibrationSet(shared_data("photos/calib"), n_calib=16)
    images = photos.eval(args.resolution)
    base = sliced_copy(load_generator(), args.width).eval()
    with torch.no_grad():
        references = [base(torch.from_numpy(x)).numpy() for x in images]
    print(f"width {args.width}, {args.resolution} px: variant, fp32 ms, fp32 PSNR dB vs torch, int8 ms, "
          "int8 PSNR dB vs torch, int8 ops")
    for name in args.variants:
        make = VARIANTS[name]
        net = variant(base, make)
        with contextlib.redirect_stdout(io.StringIO()):
            fp32 = export_tflite.convert(net, args.resolution, "fp32", None)
        fp32_ms, fp32_psnr, _ = measure(fp32, "/tmp/lade_fp32.tflite", images, references)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                q = int8_model(net, args.resolution, photos, float_modules=(LADE, Float))
        except Exception as exc:  # the covariance's reshapes do not survive the NHWC rewrite
            print(f"{name:>20}: {fp32_ms:6.2f} {fp32_psnr:6.1f}  int8 conversion fails ({type(exc).__name__})",
                  flush=True)
            continue
        int8_ms, psnr, ops = measure(q, "/tmp/lade_int8.tflite", images, references)
        print(f"{name:>20}: {fp32_ms:6.2f} {fp32_psnr:6.1f} {int8_ms:6.2f} {psnr:6.1f} {ops:4d}", flush=True)


if __name__ == "__main__":
    main()
