"""Nothing lost, nothing crashes: real kills, interrupted writes, divergence, fuzzed inputs."""

import gzip
import io
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file

from conftest import assert_one_line_error, run_cli, write_dataset, write_idx
from digitlab import DigitlabError, files
from digitlab.data.mnist import parse_idx
from digitlab.nets import checkpoint, models
from digitlab.read.preprocess import preprocess
from digitlab.train.loop import fit
from digitlab.train.settings import TrainConfig

RUN = [
    "--subset",
    "3000",
    "--batch-size",
    "25",
    "--epochs",
    "2",
    "--seed",
    "5",
    "--quiet",
    "--no-pictures",
]


def start_training(out, *extra, preexec_fn=None):
    return subprocess.Popen(
        [sys.executable, "-m", "digitlab", "train", *RUN, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )


def wait_for_first_checkpoint(out, process, timeout=300):
    deadline = time.time() + timeout
    while not (out / checkpoint.RESUME).exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.05)


def test_sigkill_mid_epoch_then_resume_ends_with_the_uninterrupted_weights(tmp_path, capsys):
    killed = tmp_path / "killed"
    process = start_training(killed)
    # Killed as soon as epoch 1 is checkpointed: somewhere in (or just before) epoch 2, which
    # takes seconds, so epoch 2 never finishes. No fixed sleep to guess at.
    wait_for_first_checkpoint(killed, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert (
        len((killed / "metrics.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    )  # epoch 2 never finished
    code, _, err = run_cli(capsys, "train", "--resume", killed, "--quiet", "--no-pictures")
    assert code == 0, err
    whole = tmp_path / "whole"
    assert run_cli(capsys, "train", *RUN, "--out", whole)[0] == 0
    a, b = load_file(whole / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_keeps_finished_epochs_and_prints_the_resume_command(tmp_path):
    out = tmp_path / "run"
    # The run as started from a terminal, Ctrl-C at its default: a suite launched in the
    # background (`cmd &` from a script) ignores SIGINT, a child inherits that, and the run
    # would never see the Ctrl-C (it ended normally, twice, in a session that did so).
    process = start_training(out, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_first_checkpoint(out, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"digitlab train --resume {out}" in err and "Traceback" not in err
    model, config = checkpoint.load(out)
    assert config["epochs_done"] == 1


def test_a_checkpoint_write_that_dies_half_way_leaves_the_previous_one(tmp_path, monkeypatch):
    fit(TrainConfig(subset=200), tmp_path, progress=False, log=lambda text: None)
    before = {name: (tmp_path / name).read_bytes() for name in ("model.safetensors", "config.json")}

    def crash(fd):
        raise OSError("disk died")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk died"):
        checkpoint.save(tmp_path, models.build("cnn"), {"model": "cnn", "normalization": {}})
    monkeypatch.undo()
    after = {name: (tmp_path / name).read_bytes() for name in before}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    checkpoint.load(tmp_path)  # still a usable model


def test_divergence_stops_at_once_and_keeps_the_last_good_epoch(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(
        capsys,
        "train",
        "--subset",
        "300",
        "--lr",
        "1000",
        "--out",
        tmp_path,
        "--quiet",
        "--no-pictures",
    )
    assert_one_line_error(code, err, 1, "training diverged", "lower --lr (now 1000.0)")
    # A run whose first epoch was fine keeps it when the second one turns to NaN.
    from digitlab.train import loop

    real_step, calls = loop.train_step, []

    def step_that_breaks(*args):
        calls.append(1)
        return real_step(*args) if len(calls) <= 6 else torch.tensor(float("nan"))

    monkeypatch.setattr(loop, "train_step", step_that_breaks)
    good = tmp_path / "good"
    with pytest.raises(DigitlabError, match="became nan at epoch 2, step 1;.* epoch 1 stays saved"):
        fit(TrainConfig(subset=300, epochs=2), good, progress=False, log=lambda text: None)
    model, config = checkpoint.load(good)
    assert config["epochs_done"] == 1 and len(loop.read_metrics(good)) == 1


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            lambda d: (d / "t10k-images-idx3-ubyte").write_bytes(
                (d / "t10k-images-idx3-ubyte").read_bytes()[:-100]
            ),
            "truncated",
        ),
        (
            lambda d: (d / "t10k-images-idx3-ubyte").write_bytes(
                b"\x12\x34" + (d / "t10k-images-idx3-ubyte").read_bytes()[2:]
            ),
            "not an IDX file",
        ),
        (
            lambda d: (d / "t10k-labels-idx1-ubyte").write_bytes(
                b"\x00\x00\x0b" + (d / "t10k-labels-idx1-ubyte").read_bytes()[3:]
            ),
            "type code 0x0b",
        ),
        (
            lambda d: write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8)),
            "20 images but t10k-labels-idx1-ubyte holds 7 labels",
        ),
        (
            lambda d: write_idx(d / "t10k-labels-idx1-ubyte", np.full(20, 12, np.uint8)),
            "label 12 at index 0 is outside 0-9",
        ),
        (
            lambda d: (d / "t10k-images-idx3-ubyte").write_bytes(
                gzip.compress((d / "t10k-images-idx3-ubyte").read_bytes())[:200]
            ),
            "not a valid gzip stream",
        ),
        (lambda d: (d / "t10k-images-idx3-ubyte").unlink(), "no t10k-images-idx3-ubyte"),
        (lambda d: (d / "t10k-images-idx3-ubyte").write_bytes(b""), "empty"),
    ],
)
def test_bad_data_is_one_line_on_the_command_line(tmp_path, capsys, spoil, message):
    data = write_dataset(tmp_path / "data", 60, 20, compress=False)
    spoil(data)
    code, _, err = run_cli(
        capsys,
        "train",
        "--data-dir",
        data,
        "--out",
        tmp_path / "run",
        "--batch-size",
        "10",
        "--quiet",
        "--no-pictures",
    )
    assert_one_line_error(code, err, 1, message)


def test_cmyk_jpeg_and_decompression_bomb(tmp_path, capsys):
    digit = np.full((120, 120), 255, np.uint8)
    digit[20:100, 55:65] = 0  # a "1"
    Image.fromarray(digit).convert("CMYK").save(tmp_path / "cmyk.jpg")
    code, out, err = run_cli(capsys, "predict", tmp_path / "cmyk.jpg")
    assert code == 0 and ": 1 (" in out, err
    # A bomb: a tiny file that declares 40,000 x 40,000 pixels. Refused before decoding.
    Image.new("1", (40000, 40000)).save(tmp_path / "bomb.png", optimize=True)
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
    code, _, err = run_cli(capsys, "predict", tmp_path / "bomb.png")
    assert_one_line_error(code, err, 1, "cap")


IDX_HEADER = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 3, 3))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=40).map(lambda tail: IDX_HEADER + tail),
        st.tuples(st.integers(0, 15), st.integers(0, 255)).map(
            lambda edit: (
                IDX_HEADER[: edit[0]] + bytes([edit[1]]) + IDX_HEADER[edit[0] + 1 :] + bytes(18)
            )
        ),
    )
)
def test_fuzzed_idx_bytes_raise_only_digitlab_error(raw):
    try:
        array = parse_idx(raw, 3, "fuzz")
    except DigitlabError:
        return
    assert array.dtype == np.uint8 and array.ndim == 3


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1)).map(
            lambda a: png_bytes(np.random.default_rng(a[2]).integers(0, 256, a[:2], dtype=np.uint8))
        ),
        st.tuples(st.integers(1, 300), st.binary(min_size=1, max_size=8)).map(
            lambda a: png_bytes(np.full((24, 24), 255, np.uint8))[: a[0]] + a[1]
        ),
    )
)
def test_fuzzed_images_raise_only_digitlab_error(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.img"
    path.write_bytes(data)
    try:
        out = preprocess(path)
    except DigitlabError:
        return
    assert out.shape == (28, 28) and torch.isfinite(out).all()


def test_atomic_write_never_shows_a_reader_half_a_file(tmp_path):
    """A reader polling the file while it is rewritten sees one whole version or the other."""
    path = tmp_path / "big.bin"
    versions = [bytes([k]) * 2_000_000 for k in (1, 2)]
    files.atomic_write(path, versions[0])
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            seen.append(path.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    for k in range(20):
        files.atomic_write(path, versions[k % 2])
    done.set()
    reader.join()
    assert seen and all(data in versions for data in seen)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_on_windows_skips_the_folder_fsync(tmp_path, monkeypatch):
    def no_folders(path, flags, *args):  # what Windows does for a folder
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", no_folders)
    with pytest.raises(PermissionError):  # the POSIX branch does open the folder
        files.atomic_write(tmp_path / "a.txt", b"posix")
    with monkeypatch.context() as windows:  # only around the call: pytest itself reads os.name
        windows.setattr(os, "name", "nt")
        files.atomic_write(tmp_path / "a.txt", b"windows")
    assert (tmp_path / "a.txt").read_bytes() == b"windows"


HELD_OPEN = "config.json: cannot be replaced because another program holds it open; close"


def test_a_file_held_open_on_windows_is_one_line_naming_it(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    target.write_bytes(b"old")

    def refused(source, destination):  # Windows: another process holds `destination` open
        raise PermissionError(13, "Access is denied", str(destination))

    monkeypatch.setattr(os, "replace", refused)
    monkeypatch.setattr(files, "REPLACE_PAUSE", 0)
    with monkeypatch.context() as windows, pytest.raises(DigitlabError, match=HELD_OPEN):
        windows.setattr(os, "name", "nt")
        files.atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
