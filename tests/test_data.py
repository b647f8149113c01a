import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import needs, write_dataset, write_idx
from digitlab import DigitlabError
from digitlab.data.mnist import EMBEDDED_DIR, MNIST, as_input, load_split, parse_idx, read_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_embedded_mnist_is_the_original():
    """The shipped files decompress to the original MNIST bytes (md5 from SOURCE.md)."""
    md5 = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    for name, digest in md5.items():
        data = gzip.decompress((EMBEDDED_DIR / f"{name}.gz").read_bytes())
        assert hashlib.md5(data).hexdigest() == digest
    assert "Creative Commons" in (EMBEDDED_DIR / "SOURCE.md").read_text(encoding="utf-8")


def test_splits_in_one_tensor_with_the_documented_label_counts():
    train, test = load_split(None, True), load_split(None, False)
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 28, 28)
    assert torch.bincount(train.labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert torch.bincount(test.labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    array = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    path = write_idx(tmp_path / "x", array, compress)
    assert np.array_equal(read_idx(path, 3), array)


def idx_bytes(array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


GOOD = idx_bytes(np.zeros((3, 4, 4), np.uint8))


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (GOOD[:2], "truncated inside the IDX header"),
        (GOOD[:10], "truncated inside the IDX header"),
        (GOOD[:-5], "truncated"),
        (GOOD + b"\0", "1 bytes follow"),
        (b"\x12\x34" + GOOD[2:], "not an IDX file"),
        (GOOD[:2] + b"\x0d" + GOOD[3:], "type code 0x0d (float)"),
        (GOOD[:2] + b"\x42" + GOOD[3:], "type code 0x42 (unknown)"),
        (idx_bytes(np.zeros((3, 4), np.uint8)), "has 2 dimensions"),
        (idx_bytes(np.zeros((0, 4, 4), np.uint8)), "holds no images"),
    ],
)
def test_idx_defects_name_the_problem(raw, message):
    with pytest.raises(DigitlabError, match="bad-file") as info:
        parse_idx(raw, 3, "bad-file")
    assert message in str(info.value)


def test_bad_gzip_stream_is_reported(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(GOOD)[:-12])
    with pytest.raises(DigitlabError, match="not a valid gzip stream"):
        read_idx(path, 3)


def test_mismatched_counts_and_bad_labels(tmp_path):
    root = write_dataset(tmp_path / "d", 50, 20, compress=False)
    write_idx(root / "t10k-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(DigitlabError, match="20 images but .* 19 labels"):
        load_split(root, False)
    labels = np.zeros(50, np.uint8)
    labels[7] = 10
    write_idx(root / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DigitlabError, match="label 10 at index 7 is outside 0-9"):
        load_split(root, True)


def test_missing_file_and_folder(tmp_path):
    root = write_dataset(tmp_path / "d", 50, 20)
    (root / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DigitlabError, match="no t10k-images-idx3-ubyte"):
        load_split(root, False)
    with pytest.raises(DigitlabError, match="no such folder"):
        load_split(tmp_path / "nowhere", False)


@pytest.mark.parametrize(
    "layout, compress, sep",
    [("", False, "-"), ("", True, "."), ("raw", True, "-"), ("MNIST/raw", False, ".")],
)
def test_folder_layouts(tmp_path, layout, compress, sep):
    write_dataset(tmp_path / layout, 30, 10, compress, sep)
    split = load_split(tmp_path, True)
    assert torch.equal(split.images, load_split(None, True).images[:30])


def test_torch_dataset_works_with_a_dataloader():
    dataset = MNIST(train=False, transform=lambda x: x * 2)
    assert len(dataset) == 10000
    image, label = dataset[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert label == 7 and image.max() == 2.0
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True)
    x, y = next(iter(loader))
    assert x.shape == (32, 1, 28, 28) and y.shape == (32,) and y.dtype == torch.int64


@needs(FASHION.is_dir(), "Fashion-MNIST (apt-get install dataset-fashion-mnist)")
def test_debian_fashion_mnist_loads():
    train, test = load_split(FASHION, True), load_split(FASHION, False)
    assert train.images.shape == (60000, 28, 28) and len(test) == 10000
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_as_input_normalises_bytes_and_floats_alike_and_leaves_its_input():
    """(x / 255 - mean) / std for bytes; floats in [0, 1] (augmented batches) give the same
    numbers, and the caller's float batch is not changed (images.float() may be images)."""
    images = load_split(None, False).images[:8]
    x = as_input(images, 0.1307, 0.3081)
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, ((images.float() / 255 - 0.1307) / 0.3081).unsqueeze(1))
    floats = images.float() / 255
    kept = floats.clone()
    assert torch.equal(as_input(floats, 0.1307, 0.3081), x)
    assert torch.equal(floats, kept)


def test_bytes_become_0_to_1_in_one_place():
    """to_unit turns bytes into [0, 1] for tensors and arrays; floats pass through as float32;
    no other module of the package divides pixels by 255 (corruptions work in 0..255 floats)."""
    from digitlab.data.mnist import to_unit

    raw = np.array([[0, 51, 255]], np.uint8)
    assert to_unit(raw).dtype == np.float32
    assert np.array_equal(to_unit(raw), np.array([[0, 0.2, 1]], np.float32))
    tensor = to_unit(torch.from_numpy(raw))
    assert tensor.dtype == torch.float32 and torch.equal(tensor, torch.tensor([[0.0, 0.2, 1.0]]))
    half = torch.tensor([0.5], dtype=torch.float64)
    assert to_unit(half).dtype == torch.float32 and to_unit(half).item() == 0.5
    src = Path(__file__).resolve().parents[1] / "src" / "digitlab"
    hits = [
        f"{p.relative_to(src)}:{n}"
        for p in src.rglob("*.py")
        if p.name not in ("corruptions.py",) and "scratch" not in p.parts
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "/ 255" in line.split("#")[0]
    ]
    assert {h.split(":")[0] for h in hits} == {"data/mnist.py"}, hits
