"""How a model is named on the command line: a built-in net ("cnn") or a learner's own class in
their file ("my_cnn.py" or "my_cnn.py:CNN"). No torch here: the command line is parsed first."""

from __future__ import annotations

from pathlib import Path


def is_file_spec(model: str) -> bool:
    """True for "my_cnn.py" or "my_cnn.py:CNN" (a learner's file), False for a built-in name."""
    return model.endswith(".py") or ".py:" in model


def split_spec(spec: str) -> tuple[Path, str | None]:
    """("dir/my_cnn.py", "CNN") from "dir/my_cnn.py:CNN"; split from the right, so that a path
    may hold slashes or a Windows drive's colon."""
    if spec.endswith(".py"):
        return Path(spec), None
    path, _, name = spec.rpartition(":")
    return Path(path), name


def resolved(spec: str) -> str:
    """The spec with its file's absolute path, so that a run can be used from another folder."""
    path, name = split_spec(spec)
    absolute = str(path.expanduser().resolve())
    return absolute if name is None else f"{absolute}:{name}"
