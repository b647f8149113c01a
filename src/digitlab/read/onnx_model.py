"""An exported ONNX model run by onnxruntime, for `digitlab predict --runtime onnx`; the names of
its input and output are the ones `digitlab export` (read.export) writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitlab.data.mnist import to_unit
from digitlab.errors import DigitlabError

INPUT, OUTPUT, UNSURE = "image", "logits", "unsure_margin"


class OnnxModel:
    """An exported model run by onnxruntime: images (N, H, W) in [0, 1] -> (N, 10) logits."""

    def __init__(self, path: str | Path):
        try:
            import onnxruntime
        except ImportError:
            raise DigitlabError(
                "--runtime onnx needs onnxruntime; install it: pip install 'digitlab[onnx]'"
            ) from None
        path = Path(path)
        if path.is_dir():
            path = path / "model.onnx"
        if not path.is_file():
            raise DigitlabError(
                f"{path}: no such ONNX file; write one with: digitlab export CKPT --onnx {path}"
            )
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise DigitlabError(
                f"{path}: not an ONNX model onnxruntime can load ({str(e).splitlines()[0]}); "
                "export it again with digitlab export"
            ) from None

    def run(self, images: torch.Tensor, outputs: list[str]) -> list[np.ndarray]:
        """The graph's `outputs` for (N, H, W) images, uint8 or float in [0, 1], from one run."""
        x = np.ascontiguousarray(to_unit(images)[:, None].numpy())
        return self.session.run(outputs, {INPUT: x})

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) images, uint8 or float in [0, 1] -> (N, C) logits."""
        return torch.from_numpy(self.run(images, [OUTPUT])[0])

    def read(self, images: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
        """(N, H, W) images -> ((N, C) logits, per image: not sure (margin < 0)), both from one
        run of the graph. A file exported without a detector has no margin: never unsure."""
        if UNSURE not in {o.name for o in self.session.get_outputs()}:
            return self.logits(images), [False] * len(images)
        logits, margin = self.run(images, [OUTPUT, UNSURE])
        return torch.from_numpy(logits), (margin < 0).tolist()
