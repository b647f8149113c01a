"""Why the model answered what it did: two maps over the 28x28 image it saw.

saliency   d(class score)/d(pixel): how much each pixel pushes the score up (more ink here would
           help) or down. Made by the model's own backward: autograd for the torch backend,
           digitlab.scratch's hand-written backward for the scratch backend (the same numbers:
           a test holds them to 1e-8 in float64).
occlusion  how much the class's probability drops when a 6x6 patch around each pixel is
           greyed out (set to the training set's mean pixel): positive where the strokes
           supported the answer, negative where they argued against it.

Both are drawn over the digit with one colour scale: red for, blue against, white neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from digitlab.read.pictures import caption, stack

PATCH, STRIDE = 6, 3  # 8x8 patch positions: 64 forward passes in one batch
CAPTIONS = {  # {} is the answer read
    "saliency": "saliency: red = more ink here raises the score of {}, blue = lowers it",
    "occlusion": "occlusion: red = covering this lowers p({}), blue = raises it",
}


def saliency(predictor, digits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """digits (K, H, W) in [0, 1], classes (K,) -> (K, H, W): d score[class] / d pixel."""
    x = predictor.inputs(digits)
    grad_out = torch.zeros(len(digits), 10, dtype=x.dtype)
    grad_out[torch.arange(len(digits)), classes] = 1.0
    dx = predictor.backend.input_gradient(predictor.model.eval(), x, grad_out)
    return dx[:, 0] / predictor.std  # the normalisation's chain rule: pixels, not inputs


def occlusion(predictor, digit: torch.Tensor, target: int) -> torch.Tensor:
    """digit (H, W) in [0, 1] -> (H, W): the drop of p(target) with a patch greyed out around
    each pixel, averaged over the patches that cover it."""
    h, w = digit.shape
    tops = range(0, h - PATCH + 1, STRIDE)
    lefts = range(0, w - PATCH + 1, STRIDE)
    batch = digit.repeat(len(tops) * len(lefts), 1, 1)
    for k, (i, j) in enumerate((i, j) for i in tops for j in lefts):
        batch[k, i : i + PATCH, j : j + PATCH] = predictor.mean
    base = predictor.probabilities(digit[None])[0, target]
    drops = base - predictor.probabilities(batch)[:, target]
    total, count = torch.zeros(h, w), torch.zeros(h, w)
    for k, (i, j) in enumerate((i, j) for i in tops for j in lefts):
        total[i : i + PATCH, j : j + PATCH] += drops[k]
        count[i : i + PATCH, j : j + PATCH] += 1
    return total / count.clamp(min=1)


def lookup_table() -> np.ndarray:
    """A diverging colour table, (256, 3) uint8: blue (against), white (0), red (for)."""
    import matplotlib

    return (255 * matplotlib.colormaps["RdBu_r"](np.linspace(0, 1, 256))[:, :3]).astype(np.uint8)


def overlay(digit: torch.Tensor, heat: torch.Tensor, zoom: int = 8) -> np.ndarray:
    """The digit in dark grey over the map's colours, symmetric around 0: (H*zoom, W*zoom, 3)."""
    limit = heat.abs().max().item() or 1.0
    index = ((heat / limit).clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8).numpy()
    colours = lookup_table()[index].astype(np.float32)
    ink = digit.numpy()[..., None]
    picture = colours * (1 - 0.75 * ink)  # strokes stay visible, tinted by the map
    return np.kron(picture, np.ones((zoom, zoom, 1))).astype(np.uint8)


def explain(predictor, reading) -> dict:
    """{"saliency": (K, H, W), "occlusion": (K, H, W)} for every digit of a reading, each for
    the class read."""
    classes = reading.probabilities.argmax(1)
    return {
        "saliency": saliency(predictor, reading.digits, classes),
        "occlusion": torch.stack(
            [occlusion(predictor, d, int(c)) for d, c in zip(reading.digits, classes, strict=True)]
        ),
    }


def strip(reading, maps: torch.Tensor, zoom: int = 8) -> np.ndarray:
    """Every digit's overlay, side by side: (H*zoom, K*W*zoom, 3) uint8."""
    return np.concatenate(
        [overlay(d, m, zoom) for d, m in zip(reading.digits, maps, strict=True)], axis=1
    )


def captioned(reading, maps: dict, kind: str, zoom: int = 8) -> np.ndarray:
    """One kind of map ("saliency" or "occlusion") of every digit, side by side under its
    caption: (18 + H*zoom, W', 3) uint8."""
    return stack([caption(CAPTIONS[kind].format(reading.text)), strip(reading, maps[kind], zoom)])


def why_picture(reading, maps: dict, zoom: int = 6) -> np.ndarray:
    """Saliency above occlusion, each captioned: the app's "why" picture, (H, W, 3) uint8."""
    return stack([captioned(reading, maps, kind, zoom) for kind in CAPTIONS], gap=4)


def write_explanations(predictor, reading, folder: str | Path, stem: str) -> list[Path]:
    """FOLDER/STEM-saliency.png and FOLDER/STEM-occlusion.png, captioned."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    maps = explain(predictor, reading)
    paths = [folder / f"{stem}-{kind}.png" for kind in CAPTIONS]
    for kind, path in zip(CAPTIONS, paths, strict=True):
        Image.fromarray(captioned(reading, maps, kind)).save(path)
    return paths
