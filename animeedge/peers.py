"""The benchmark peers, timed in the same run as the bundle: our uncompressed r=1.0
generator in torch eager, and the AnimeGANv2 architecture (random weights) in torch eager,
ONNX Runtime and LiteRT (exported here, reflect padding rebuilt from slices as for our own
TFLite files, so each runtime gets the same treatment)."""
import contextlib
import io
from pathlib import Path

import torch

from animeedge.generator.animeganv2 import animeganv2
from animeedge.generator.checkpoint import UNCOMPRESSED_MODEL
from animeedge.generator.inference import TorchStylizer
from animeedge.runtimes.load import load
from animeedge.runtimes.opset import own_file


class AnimeGANv2Stylizer(TorchStylizer):
    def __init__(self, resolution: int, threads: int):
        torch.set_num_threads(threads)
        super().__init__(animeganv2(), 1.0, resolution)

    @torch.inference_mode()
    def invoke(self, x):
        return self.model(x)


def _cost(net, resolution) -> dict:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, resolution, resolution))
    return {"params": sum(p.numel() for p in net.parameters()), "gmacs": round(counter.get_total_flops() / 2e9, 2)}


def _export(folder: Path, resolution: int) -> tuple[Path | None, Path | None]:
    from animeedge.compress.export import quiet_converters
    from animeedge.compress.export_tflite import convert, without_mirror_pad
    quiet_converters()
    net, x = animeganv2(), torch.zeros(1, 3, resolution, resolution)
    onnx_path = folder / "animeganv2.onnx"
    torch.onnx.export(net, (x,), str(onnx_path), input_names=["image"], output_names=["stylized"], opset_version=17,
                      dynamo=False)
    tflite_path = None
    with contextlib.suppress(ImportError), contextlib.redirect_stdout(io.StringIO()):
        model = convert(without_mirror_pad(animeganv2()), resolution, "fp32", None)
        tflite_path = folder / "animeganv2.tflite"
        model.export(str(tflite_path))
    return onnx_path, tflite_path


def load_own_file(path, threads=None):
    """A peer file this bench converted itself: its ops are AnimeGANv2's, not the bundle
    allowlist's (a bundle never gets this pass)."""
    with own_file(path):
        return load(path, threads=threads)


def peer_jobs(folder: Path, resolution: int, threads: int) -> list[tuple]:
    """(name, backend, factory, kwargs, cost) per peer configuration."""
    ours = TorchStylizer(UNCOMPRESSED_MODEL).model
    jobs = [("ours_r1_torch_eager", "torch eager", load,
             {"path": UNCOMPRESSED_MODEL, "backend": "torch", "resolution": resolution, "threads": threads},
             _cost(ours, resolution))]
    cost = _cost(animeganv2(), resolution)
    jobs.append(("animeganv2", "torch eager", AnimeGANv2Stylizer, {"resolution": resolution, "threads": threads}, cost))
    onnx_path, tflite_path = _export(folder, resolution)
    jobs.append(("animeganv2", "onnxruntime", load_own_file, {"path": onnx_path, "threads": threads}, cost))
    if tflite_path:
        jobs.append(("animeganv2", "litert", load_own_file, {"path": tflite_path, "threads": threads}, cost))
    return jobs
