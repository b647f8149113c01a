"""digitlab: a handwritten-digit lab on PyTorch.

The public names load on first use (a module __getattr__), so that `python -m digitlab --help`
does not wait for torch."""

from importlib import import_module

__version__ = "0.1.0"
# name: the module it lives in
PUBLIC = {
    "DigitlabError": "digitlab.errors",
    "fit": "digitlab.train.loop",
    "TrainConfig": "digitlab.train.settings",
    "Predictor": "digitlab.read.predictor",
    "MNIST": "digitlab.data.mnist",
    "scratch": "digitlab.scratch",
    "check_layers": "digitlab.workbench.notebook",
}
__all__ = [*PUBLIC, "__version__"]


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module 'digitlab' has no attribute {name!r}")
    module = import_module(PUBLIC[name])
    value = module if module.__name__ == f"digitlab.{name}" else getattr(module, name)
    globals()[name] = value  # the next access is a plain lookup
    return value
