"""The torch reference stylizer: uint8 RGB frame in, uint8 RGB frame out."""
import numpy as np
import torch

from animeedge.runtimes.errors import UserError
from animeedge.runtimes.processing import check_frame, check_resolution, from_nchw, processing_size, resize, to_nchw

from .checkpoint import load_generator


class TorchStylizer:
    backend = "torch"
    precision = "fp32"

    def __init__(self, model=None, width: float = 1.0, resolution: int | None = None):
        check_resolution(resolution)
        # a generator, or anything with its interface (compress.teacher.Teacher); else a checkpoint path
        usable = isinstance(model, torch.nn.Module) or hasattr(model, "set_width")
        self.model = model if usable else load_generator(model)
        self.model.eval()
        self.width, self.resolution = width, resolution

    def prepare(self, rgb: np.ndarray):
        check_frame(rgb)
        h, w = rgb.shape[:2]
        ph, pw = processing_size(h, w, self.resolution)
        return torch.from_numpy(to_nchw(resize(rgb, ph, pw))), (h, w)

    @torch.inference_mode()
    def invoke(self, x: torch.Tensor) -> torch.Tensor:
        self.model.set_width(self.width)  # several stylizers may share one model
        return self.model(x)

    def finish(self, y: torch.Tensor, geometry) -> np.ndarray:
        if not torch.isfinite(y).all():  # the bundle runtimes check the same (runtimes.load.Stylizer)
            raise UserError("the model returned NaN or infinity; refused")
        return resize(from_nchw(y.numpy()), *geometry)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x, geometry = self.prepare(rgb)
        return self.finish(self.invoke(x), geometry)
