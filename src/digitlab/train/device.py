"""Where a run computes."""

from __future__ import annotations

import torch

from digitlab.errors import DigitlabError
from digitlab.train.settings import DEVICES


def resolve_device(name: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; "cuda" without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in DEVICES:
        raise DigitlabError(f"--device {name}: unknown; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise DigitlabError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return torch.device(name)
