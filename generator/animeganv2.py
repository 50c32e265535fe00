"""The AnimeGANv2 generator architecture, a benchmark peer (random weights: only its cost
matters). Built from the published layer description of the PyTorch port
(bryandlee/animegan2-pytorch, model.py): ConvNormLReLU blocks (reflect pad, conv, GroupNorm(1),
LeakyReLU 0.2), inverted residual blocks with expansion 2, two bilinear upsamplings.
2.14M parameters, 26.3 GMAC at 256x256.
"""
import torch
import torch.nn.functional as F
from torch import nn


def conv_norm_lrelu(cin, cout, kernel=3, stride=1, padding=1, groups=1, bias=False) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(padding), nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=bias),
                         nn.GroupNorm(1, cout), nn.LeakyReLU(0.2))


class InvertedResBlock(nn.Module):
    def __init__(self, cin, cout, expansion=2):
        super().__init__()
        mid = round(cin * expansion)
        self.layers = nn.Sequential(conv_norm_lrelu(cin, mid, kernel=1, padding=0),
                                    conv_norm_lrelu(mid, mid, groups=mid, bias=True),
                                    nn.Conv2d(mid, cout, 1, bias=False), nn.GroupNorm(1, cout))
        self.residual = cin == cout

    def forward(self, x):
        y = self.layers(x)
        return x + y if self.residual else y


class AnimeGANv2(nn.Module):
    def __init__(self):
        super().__init__()
        down = (0, 1, 0, 1)
        self.block_a = nn.Sequential(conv_norm_lrelu(3, 32, 7, padding=3), conv_norm_lrelu(32, 64, stride=2, padding=down),
                                     conv_norm_lrelu(64, 64))
        self.block_b = nn.Sequential(conv_norm_lrelu(64, 128, stride=2, padding=down), conv_norm_lrelu(128, 128))
        self.block_c = nn.Sequential(conv_norm_lrelu(128, 128), InvertedResBlock(128, 256),
                                     *[InvertedResBlock(256, 256) for _ in range(3)], conv_norm_lrelu(256, 128))
        self.block_d = nn.Sequential(conv_norm_lrelu(128, 128), conv_norm_lrelu(128, 128))
        self.block_e = nn.Sequential(conv_norm_lrelu(128, 64), conv_norm_lrelu(64, 64),
                                     conv_norm_lrelu(64, 32, 7, padding=3))
        self.out_layer = nn.Sequential(nn.Conv2d(32, 3, 1, bias=False), nn.Tanh())

    def forward(self, x):
        a = self.block_a(x)
        y = self.block_c(self.block_b(a))
        y = F.interpolate(y, a.shape[-2:], mode="bilinear", align_corners=True)
        y = F.interpolate(self.block_d(y), x.shape[-2:], mode="bilinear", align_corners=True)
        return self.out_layer(self.block_e(y))


def animeganv2(seed: int = 0) -> AnimeGANv2:
    torch.manual_seed(seed)
    return AnimeGANv2().eval()
