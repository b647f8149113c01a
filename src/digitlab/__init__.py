"""digitlab: a handwritten-digit lab on PyTorch."""

from digitlab.errors import DigitlabError

__version__ = "0.1.0"
__all__ = ["DigitlabError", "__version__"]
