"""Patch discriminator with spectral normalization: one logit per ~30x30 patch."""
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm


def _sn_conv(cin, cout, stride):
    return spectral_norm(nn.Conv2d(cin, cout, 3, stride, 1))


class PatchDiscriminator(nn.Module):
    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        plan = [(3, c, 2), (c, 2 * c, 2), (2 * c, 4 * c, 1), (4 * c, 4 * c, 2), (4 * c, 8 * c, 1)]
        layers = []
        for cin, cout, stride in plan:
            layers += [_sn_conv(cin, cout, stride), nn.LeakyReLU(0.2)]
        layers.append(_sn_conv(8 * c, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
