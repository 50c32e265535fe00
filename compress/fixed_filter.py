"""The simplest foreign teacher: a fixed, non-learned photo filter exported as ONNX.

A blur, an edge boost and a colour matrix on NHWC pictures in [0, 1] (the layout and range
of AnimeGAN's ONNX releases). Any network of the student's size can fit it, so a width that
does not is a training defect: tests/test_byo_teacher.py and benchmarks/byo_teacher.py use
it to measure `compress --teacher`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class FixedFilter(nn.Module):
    """A fixed, non-learned photo filter on NHWC [0, 1]: a blur, an edge boost and a colour matrix."""

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        sharp = (x + 0.8 * (x - blur)).clamp(0, 1)
        colour = torch.tensor([[0.9, 0.3, 0.0], [0.1, 0.8, 0.2], [0.0, 0.2, 0.9]])
        y = torch.einsum("oc,nchw->nohw", colour, sharp).clamp(0, 1)
        return y.permute(0, 2, 3, 1)


def onnx_file(net, path, shape, inputs=1):
    """`net` exported to `path` for inputs of a fixed `shape` (`inputs` of them); returns path."""
    args = tuple(torch.zeros(shape) for _ in range(inputs))
    torch.onnx.export(net, args, str(path), opset_version=17, dynamo=False,
                      input_names=[f"in{i}" for i in range(inputs)], output_names=["out"])
    return path
