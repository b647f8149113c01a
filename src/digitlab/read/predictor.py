"""Using a trained model: load it once, then read images.

A Predictor holds a model (a safetensors run, or an exported ONNX file run by onnxruntime) with
the normalisation it was trained with, and turns images into answers:

    predictor = Predictor.load("runs/cnn")          # or Predictor.load() for the shipped model
    reading = predictor.read("my-digit.png")        # preprocessed like MNIST, then classified
    reading.digit, reading.confidence, reading.text
    predictor.probabilities(images)                 # (N, H, W) in [0, 1] or uint8 -> (N, C)

cli (predict, evaluate), app, export, compare and plots all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from digitlab.data.mnist import as_input
from digitlab.errors import DigitlabError
from digitlab.nets import backends, checkpoint, models
from digitlab.nets.evaluation import in_batches, logits_of
from digitlab.read import unsure
from digitlab.read.preprocess import preprocess, preprocess_multi


@dataclass
class Reading:
    """What a model read in one image: the digits found, left to right.

    digits: (K, 28, 28) float in [0, 1], what the model saw;  probabilities: (K, C)."""

    digits: torch.Tensor
    probabilities: torch.Tensor
    unsure: list[bool] = field(default_factory=list)  # per digit: too unlike the digits learned

    @property
    def digit(self) -> int:
        """The class of the first (or only) digit."""
        return int(self.probabilities[0].argmax())

    @property
    def confidence(self) -> float:
        return self.probabilities[0].max().item()

    @property
    def text(self) -> str:
        """The number read, one character per digit, left to right."""
        return "".join(str(int(p.argmax())) for p in self.probabilities)


def describe(reading: Reading, classes: list[str] | None = None) -> str:
    """A reading in words, the one wording of the CLI and the app: "7 (99.1%)", "not sure: looks
    most like 4 (38%)", or for several digits the number with its doubtful ones, "1234 (not
    sure: digit 2 looks most like 2 (41%))". classes name the classes (default "0".."9")."""
    name = (lambda c: classes[c]) if classes else str
    share, best = reading.probabilities.max(1)
    doubts = reading.unsure or [False] * len(best)
    if len(best) == 1:
        if doubts[0]:
            return f"not sure: looks most like {name(int(best[0]))} ({share[0]:.0%})"
        return f"{name(int(best[0]))} ({share[0]:.1%})"
    doubtful = [
        f"digit {k + 1} looks most like {name(int(best[k]))} ({share[k]:.0%})"
        for k, doubt in enumerate(doubts)
        if doubt
    ]
    return reading.text + (f" (not sure: {'; '.join(doubtful)})" if doubtful else "")


class Predictor:
    """A model ready to classify images. model is None for an ONNX file (normalisation built in).

    config: the run's config.json (empty for ONNX): model name, classes, dataset."""

    def __init__(self, model, config: dict, onnx=None, backend="torch"):
        self.model, self.config, self.onnx = model, config, onnx
        norm = config.get("normalization") or {"mean": 0.0, "std": 1.0}
        self.mean, self.std = norm["mean"], norm["std"]
        self.backend = backends.get(backend)  # how explain.saliency gets its gradient
        # "Not sure" (digitlab.read.unsure): the threshold, and the distance it applies to.
        self.calibration, self.distance = config.get("unsure"), None

    @classmethod
    def load(
        cls,
        ckpt: str | Path | None = None,
        runtime: str = "torch",
        device: str = "cpu",
        backend: str = "torch",
    ) -> Predictor:
        """A run folder or model.safetensors (None: the shipped pretrained model), or with
        runtime="onnx" a file written by `digitlab export`."""
        if runtime == "onnx":
            from digitlab.read.onnx_model import OnnxModel

            return cls(None, {}, onnx=OnnxModel(ckpt))
        model, config = checkpoint.load(ckpt, backend=backend, device=device)
        predictor = cls(model, config, backend=backend)
        folder = checkpoint.resolve(ckpt)[0].parent
        predictor.distance = unsure.Distance.load(folder)
        return predictor

    @property
    def classes(self) -> list[str]:
        """Names of the classes: the dataset's where it has them, else "0".."9"."""
        names = self.config.get("dataset", {}).get("classes")
        return names or [str(c) for c in range(10)]

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) images, uint8 or float in [0, 1] -> (N, 1, H, W) normalised model input."""
        return as_input(images, self.mean, self.std)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) images -> (N, C) logits on the CPU, in eval mode, in batches."""
        if self.onnx is not None:
            return self.onnx.logits(images)
        return logits_of(self.model, images, self.mean, self.std)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) images -> (N, C) softmax probabilities."""
        return self.logits(images).softmax(1)

    def read(self, image, multi: bool = False) -> Reading:
        """An image (path or PIL image) of one digit, or with multi=True of a number written left
        to right, preprocessed the way MNIST was made, then classified."""
        digits = preprocess_multi(image) if multi else preprocess(image)[None]
        if self.onnx is not None:  # the detector is in the exported graph (read.export)
            logits, doubts = self.onnx.read(digits)
            return Reading(digits, logits.softmax(1), doubts)
        doubts = unsure.is_unsure(self.model, self.inputs(digits), self.distance, self.calibration)
        return Reading(digits, self.probabilities(digits), doubts)

    def block_outputs(self, image: torch.Tensor) -> dict:
        """{block name: (C, H, W) output} of each conv block for one (H, W) image."""
        outputs = in_batches(
            self.model, lambda m, x: models.blocks(m, x)[1], self.inputs(image[None])
        )
        return {name: x[0].float() for name, x in outputs.items()}


def read_files(predictor: Predictor, files, multi: bool = False):
    """Each (path, from a folder) of preprocess.image_files read: ([(path, Reading)], how many
    were skipped). An image from a folder that cannot be read (corrupt, no ink) is skipped and
    counted; one named on its own is an error."""
    readings, skipped = [], 0
    for path, from_folder in files:
        try:
            readings.append((path, predictor.read(path, multi=multi)))
        except DigitlabError:
            if not from_folder:
                raise
            skipped += 1
    return readings, skipped
