"""ONNX export for deployment (read.onnx_model runs the file with onnxruntime).

The exported graph takes what preprocessing produces, images as pixels in [0, 1], shape
(N, 1, H, W) float32, and returns (N, 10) logits: the training set's normalisation is built in, so
a deployment needs nothing from digitlab. A run with a "not sure" detector (read.unsure) also
returns "unsure_margin", (N,) float64: the detector's score minus its threshold, < 0 = not sure.
The batch size is dynamic; for the FCN, which reads any image of at least 28x28, height and width
are dynamic too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from digitlab.read import unsure
from digitlab.read.onnx_model import INPUT, OUTPUT, UNSURE


class Normalized(nn.Module):
    """A predictor's model with its normalisation: (N, 1, H, W) pixels in [0, 1] -> (N, 10)."""

    def __init__(self, predictor):
        super().__init__()
        self.model, self.inputs = predictor.model, predictor.inputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.inputs(x[:, 0]))


class WithDoubt(Normalized):
    """Normalized, also giving the "not sure" margin (read.unsure): (N,) float64 score minus
    the calibrated threshold, below 0 = not sure. The detector is in the graph, so an ONNX
    deployment refuses non-digits as predict does."""

    def __init__(self, predictor):
        super().__init__(predictor)
        self.distance, self.threshold = predictor.distance, predictor.calibration["threshold"]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = unsure.parts_of(self.model, self.inputs(x[:, 0]))
        return parts["logits"].float(), self.distance.of_parts(parts) - self.threshold


def export_onnx(ckpt: str | Path, path: str | Path) -> dict:
    """Write the checkpoint's model as an ONNX file; returns {"onnx", "model", "dynamic"}."""
    from digitlab.read.predictor import Predictor

    predictor = Predictor.load(ckpt)
    config = predictor.config
    doubt = predictor.distance is not None and bool(predictor.calibration)
    wrapped = (WithDoubt if doubt else Normalized)(predictor).eval()
    height, width = config.get("dataset", {}).get("image_size", [28, 28])
    dims = {0: torch.export.Dim("batch")}
    if config["model"] == "fcn":  # any size from 28x28 up
        dims.update({2: torch.export.Dim("height", min=28), 3: torch.export.Dim("width", min=28)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # The exporter reports its progress and some library warnings; keep the command's output to
    # its own lines.
    with quiet():
        program = torch.onnx.export(
            wrapped,
            (torch.zeros(2, 1, height, width),),
            input_names=[INPUT],
            output_names=[OUTPUT, UNSURE] if doubt else [OUTPUT],
            dynamic_shapes={"x": dims},
            dynamo=True,
            verbose=False,
        )
        program.save(str(tmp))
    tmp.replace(path)  # atomic: a file named path is always a whole model
    names = {0: "batch", 2: "height", 3: "width"}
    dynamic = [names[d] for d in dims]
    return {"onnx": str(path), "model": config["model"], "dynamic": dynamic, "unsure": doubt}


@contextlib.contextmanager
def quiet():
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
