"""An exponential moving average of a model's weights (Polyak averaging), for either backend.

After every step: average <- decay * average + (1 - decay) * weights, for the parameters and the
floating-point buffers (batch norm's running statistics); integer buffers are copied. The average
of the last few hundred steps sits nearer the middle of the valley the optimizer bounces around in,
and usually tests a little better than the last weights. Early on the decay is capped at
(1 + t) / (10 + t) so the average is not dominated by the random initial weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be between 0 and 1, got {decay}")
        self.decay, self.steps = decay, 0
        self.model = copy.deepcopy(model).eval()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        theirs = model.state_dict()
        for key, value in self.model.state_dict().items():
            if value.is_floating_point():
                value.lerp_(theirs[key], 1 - decay)
            else:
                value.copy_(theirs[key])
