"""One optimisation step and what it needs: the backend's optimizer and loss."""

from __future__ import annotations

import torch

from digitlab.errors import DigitlabError
from digitlab.nets import backends
from digitlab.train import distributed
from digitlab.train.distributed import Ranks
from digitlab.train.settings import OPTIMIZERS, TrainConfig

SINGLE = Ranks()  # a run in one process


def make_optimizer(config: TrainConfig, params, backend: backends.Backend):
    """The backend's Adam or SGD with the config's settings."""
    if config.optimizer == "adam":
        return backend.optim.Adam(
            params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
    if config.optimizer == "sgd":
        return backend.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    raise DigitlabError(
        f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
    )


def make_loss(backend, label_smoothing: float = 0.0):
    """The backend's cross-entropy (mean over the batch)."""
    backend = backends.get(backend)
    if label_smoothing:
        return backend.loss(label_smoothing=label_smoothing)
    return backend.loss()


def train_step(model, loss_fn, optimizer, x, y, backend, ranks=SINGLE) -> torch.Tensor:
    """One optimisation step on the batch x (N, 1, H, W), y (N,); returns the batch loss.

    In a data-parallel run the gradients are averaged over the ranks before the step: by DDP
    (an autograd backend's model is wrapped in it) or by one all_reduce (hand-written)."""
    optimizer.zero_grad()
    backend = backends.get(backend)
    loss = backend.gradients(model, loss_fn, x, y)
    if not backend.autograd and ranks.world > 1:  # DDP averaged an autograd model's already
        distributed.average_gradients(model.parameters())
    optimizer.step()
    return loss.detach()
