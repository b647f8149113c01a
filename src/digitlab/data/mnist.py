"""MNIST-format data: read and validate IDX files, find them in a folder, hold a split in memory.

A split lives in one uint8 tensor of shape (N, H, W) plus an int64 label tensor of shape (N,);
training makes batches by indexing a shuffled permutation of it, never per-sample Python objects.
"""

from __future__ import annotations

import functools
import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digitlab.errors import DigitlabError

EMBEDDED_DIR = Path(__file__).parent.parent / "datasets" / "mnist"
NUM_CLASSES = 10
GZIP_MAGIC = b"\x1f\x8b"
IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
# File name stems of the two splits, as the original distribution spells them.
SPLIT_PREFIX = {True: "train", False: "t10k"}
# Where a folder may keep the files: itself, or torchvision's layouts.
SUBFOLDERS = ("", "raw", "MNIST/raw")


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an IDX file (raw or gzip) holding unsigned bytes in `ndim` dimensions.

    Returns a read-only uint8 array of the declared shape. Every defect (empty, bad gzip, wrong
    magic, type code or dimension count, size not matching the header) raises DigitlabError
    naming the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DigitlabError(f"{path}: no such file; check the path") from None
    except OSError as e:
        raise DigitlabError(f"{path}: cannot be read ({e.strerror}); check the path") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DigitlabError(
                f"{path}: not a valid gzip stream ({e}); download the file again"
            ) from None
    return parse_idx(raw, ndim, str(path))


def parse_idx(raw: bytes, ndim: int, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file; see read_idx."""
    what = "images" if ndim == 3 else "labels"
    if not raw:
        raise DigitlabError(f"{name}: the file is empty; download it again")
    if len(raw) < 4:
        raise DigitlabError(f"{name}: truncated inside the IDX header; download it again")
    if raw[0] != 0 or raw[1] != 0:
        raise DigitlabError(
            f"{name}: not an IDX file (magic number 0x{raw[:4].hex()} should start with 0x0000); "
            "give MNIST-format files"
        )
    code, dims = raw[2], raw[3]
    if code != 0x08:
        kind = IDX_TYPES.get(code, "unknown")
        raise DigitlabError(
            f"{name}: IDX type code 0x{code:02x} ({kind}) is not supported; "
            "MNIST-format files hold unsigned bytes (0x08)"
        )
    if dims != ndim:
        raise DigitlabError(
            f"{name}: has {dims} dimensions but {what} need {ndim}; "
            f"is this the {what} file of the split?"
        )
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DigitlabError(f"{name}: truncated inside the IDX header; download it again")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    expected, actual = math.prod(shape), len(raw) - header
    if actual < expected:
        raise DigitlabError(
            f"{name}: truncated: the header declares {shape}, {expected} bytes of data, but the "
            f"file holds {actual}; download it again"
        )
    if actual > expected:
        raise DigitlabError(
            f"{name}: {actual - expected} bytes follow the declared {shape} data; the file is "
            "corrupt, download it again"
        )
    if expected == 0:
        raise DigitlabError(f"{name}: holds no {what} (shape {shape}); give a non-empty file")
    return np.frombuffer(raw, np.uint8, expected, header).reshape(shape)


def find_file(root: Path, train: bool, kind: str) -> Path:
    """The IDX file of one split and kind ("images" or "labels") under `root`.

    Accepts `train-images-idx3-ubyte` and `train-images.idx3-ubyte`, raw or `.gz`, in `root`,
    `root/raw` or `root/MNIST/raw` (torchvision's layout).
    """
    stem = f"{SPLIT_PREFIX[train]}-{kind}"
    idx = "idx3" if kind == "images" else "idx1"
    for sub in SUBFOLDERS:
        for sep in "-.":
            for ext in ("", ".gz"):
                path = root / sub / f"{stem}{sep}{idx}-ubyte{ext}"
                if path.is_file():
                    return path
    raise DigitlabError(
        f"{root}: no {stem}-{idx}-ubyte[.gz] found (looked in the folder, raw/ and MNIST/raw/); "
        "give a --data-dir holding the four MNIST-format files"
    )


@dataclass(frozen=True)
class Split:
    """One split of a dataset, whole, in memory.

    images: (N, H, W) uint8, ink bright on dark as in MNIST.  labels: (N,) int64.
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def resolve_dir(data_dir: str | Path | None) -> Path:
    """The folder to read: the embedded MNIST when `data_dir` is None."""
    if data_dir is None:
        return EMBEDDED_DIR
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DigitlabError(f"--data-dir {data_dir}: no such folder; give a folder of IDX files")
    return root.resolve()


def dataset_name(data_dir: str | Path | None) -> str:
    """A short name for the data: "mnist" when embedded, else the folder's name."""
    root = resolve_dir(data_dir)
    return "mnist" if root == EMBEDDED_DIR else root.name


# Class names of well-known datasets in MNIST's format, by folder name; None means digits.
KNOWN_CLASSES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def class_names(data_dir: str | Path | None) -> list[str] | None:
    """The names of the 10 classes: a classes.txt beside the data (one name a line) or a known
    dataset's; None for digits (MNIST and anything unnamed)."""
    root = resolve_dir(data_dir)
    listed = root / "classes.txt"
    if listed.is_file():
        names = [
            line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        if len(names) != NUM_CLASSES:
            raise DigitlabError(
                f"{listed}: lists {len(names)} class names, the data has {NUM_CLASSES}; write one "
                "name a line"
            )
        return names
    return KNOWN_CLASSES.get(root.name.lower())


@functools.lru_cache(maxsize=4)
def _load_split(root: Path, train: bool) -> Split:
    images_path = find_file(root, train, "images")
    labels_path = find_file(root, train, "labels")
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DigitlabError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} holds "
            f"{len(labels)} labels; the two files must come from the same split"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DigitlabError(
            f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is outside 0-"
            f"{NUM_CLASSES - 1}; the file is corrupt or not a digit dataset"
        )
    # One copy into torch-owned memory; frombuffer arrays are read-only.
    return Split(
        images=torch.from_numpy(images.copy()),
        labels=torch.from_numpy(labels.astype(np.int64)),
        source=str(images_path.parent),
    )


def load_split(data_dir: str | Path | None = None, train: bool = True) -> Split:
    """The training (train=True) or test split of the dataset in `data_dir` (None: embedded MNIST).

    Loaded once per process and cached; callers must not modify the returned tensors.
    """
    return _load_split(resolve_dir(data_dir), train)


def to_unit(pixels):
    """Pixels of any shape, a torch tensor or a numpy array, as float32 in [0, 1]: bytes
    (uint8, 0..255) divided by 255; floats, already in [0, 1], only made float32. The one place
    that turns bytes into [0, 1]."""
    if isinstance(pixels, np.ndarray):
        x = pixels.astype(np.float32)
        return x / 255 if pixels.dtype == np.uint8 else x
    return pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels.float()


def as_input(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Model input from images: (N, H, W) uint8 in 0..255 or float in [0, 1] -> (N, 1, H, W)
    float32, normalised with the training set's `mean` and `std` (of pixels scaled to [0, 1])."""
    x = to_unit(images)
    return ((x - mean) / std).unsqueeze(1)


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and (unbiased) standard deviation of all pixels of (N, H, W) uint8 images, scaled to
    [0, 1]. Computed from the histogram of the 256 byte values: exact, and without a float copy
    of the whole split (which for MNIST's training set would be 376 MB)."""
    counts = torch.bincount(images.flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n = counts.sum()
    mean = (counts * values).sum() / n
    var = (counts * (values - mean) ** 2).sum() / (n - 1)
    return mean.item(), var.sqrt().item()


class MNIST(torch.utils.data.Dataset):
    """The dataset the way PyTorch users expect, for their own DataLoader loops.

    MNIST(root=None, train=True, transform=None, target_transform=None): `root` is a folder of
    MNIST-format IDX files (None: the embedded MNIST). An item is (image, label), image a
    (1, 28, 28) float32 tensor in [0, 1] (what torchvision's ToTensor gives), label an int,
    each passed through its transform if given. `data` (N, 28, 28) uint8 and `targets` (N,) int64
    hold the whole split, as in torchvision.
    """

    def __init__(self, root=None, train=True, transform=None, target_transform=None):
        split = load_split(root, train)
        self.data, self.targets = split.images, split.labels
        self.train = train
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = to_unit(self.data[index].unsqueeze(0))
        label = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label
