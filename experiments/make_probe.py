"""Writes the probe models (runtimes/probe.onnx, probe.tflite): a fixed stack of 3x3
convolutions with seeded weights, the kind of work the generator does. Run once by the
maintainers (needs torch and the export extras); the files are committed:

    python experiments/make_probe.py [--out FOLDER]
"""
import argparse
from pathlib import Path

import torch
from torch import nn

from animeedge.runtimes import probe
from animeedge.runtimes.probe import CHANNELS, LAYERS, SIZE

HERE = Path(probe.__file__).parent  # the probe files live beside runtimes/probe.py


def probe_network() -> nn.Module:
    torch.manual_seed(0)
    layers = []
    for _ in range(LAYERS):
        layers += [nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def main():
    import litert_torch
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: beside runtimes/probe.py)")
    out = p.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    net = probe_network()
    x = torch.zeros(1, CHANNELS, SIZE, SIZE)
    torch.onnx.export(net, (x,), str(out / "probe.onnx"), input_names=["x"], output_names=["y"], opset_version=17,
                      dynamo=False)
    nhwc = litert_torch.to_channel_last_io(net, args=[0], outputs=[0]).eval()
    litert_torch.convert(nhwc, (x.permute(0, 2, 3, 1).contiguous(),)).export(str(out / "probe.tflite"))


if __name__ == "__main__":
    main()
