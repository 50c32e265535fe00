"""Writes the probe models (calibration/probe.onnx, probe.tflite): a fixed stack of 3x3
convolutions with seeded weights, the kind of work the generator does. Run once by the
maintainers (needs torch and the export extras); the files are committed:

    python -m animeedge.calibration.make_probe
"""
from pathlib import Path

import torch
from torch import nn

from .probe import CHANNELS, LAYERS, SIZE

HERE = Path(__file__).parent


def probe_network() -> nn.Module:
    torch.manual_seed(0)
    layers = []
    for _ in range(LAYERS):
        layers += [nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def main():
    import litert_torch
    net = probe_network()
    x = torch.zeros(1, CHANNELS, SIZE, SIZE)
    torch.onnx.export(net, (x,), str(HERE / "probe.onnx"), input_names=["x"], output_names=["y"], opset_version=17,
                      dynamo=False)
    nhwc = litert_torch.to_channel_last_io(net, args=[0], outputs=[0]).eval()
    litert_torch.convert(nhwc, (x.permute(0, 2, 3, 1).contiguous(),)).export(str(HERE / "probe.tflite"))


if __name__ == "__main__":
    main()
