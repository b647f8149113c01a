import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import SMALL, needs, run_cli, write_dataset
from digitlab import DigitlabError
from digitlab.data.mnist import load_split
from digitlab.nets import checkpoint
from digitlab.nets.evaluation import evaluate
from digitlab.train.loop import fit
from digitlab.train.run_files import read_metrics
from digitlab.train.settings import TrainConfig

FASHION = "/usr/share/datasets/fashion-mnist"


def small_config(**changes):
    config = TrainConfig(subset=2000, batch_size=25, lr=0.002)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def quiet_fit(config, out, resume=False):
    return fit(config, out, resume=resume, progress=False, log=lambda text: None)


def test_one_epoch_on_2000_images_beats_90_percent(trained_run):
    metrics = [
        json.loads(line)
        for line in (trained_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(metrics) == 1
    assert metrics[0]["test_accuracy"] > 0.90
    assert len(metrics[0]["step_loss"]) == 80
    config = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    assert config["model"] == "cnn" and config["backend"] == "torch"
    assert config["optimizer"] == "adam" and config["lr"] == 0.002 and config["batch_size"] == 25
    assert 0.1 < config["normalization"]["mean"] < 0.15
    assert 0.25 < config["normalization"]["std"] < 0.35
    assert config["dataset"]["train_images"] == 2000 and config["dataset"]["test_images"] == 10000
    assert config["command"].startswith("digitlab train")
    # The epoch's scores, not its 80 step losses (those are in metrics.jsonl).
    assert set(config["metrics"]) == {"train_loss", "test_loss", "test_accuracy"}
    assert set(load_file(trained_run / "model.safetensors")) == {
        "conv1.0.weight",
        "conv1.0.bias",
        "conv2.0.weight",
        "conv2.0.bias",
        "out.weight",
        "out.bias",
    }


def test_cli_train_prints_the_documented_json(tmp_path, capsys):
    code, out, err = run_cli(
        capsys,
        "train",
        *SMALL,
        "--subset",
        "500",
        "--out",
        tmp_path,
        "--quiet",
        "--json",
        "--no-pictures",
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) == {
        "test_accuracy",
        "train_seconds",
        "epochs",
        "checkpoint",
        "backend",
        "model",
    }
    assert result["epochs"] == 1 and result["model"] == "cnn" and result["backend"] == "torch"
    assert result["checkpoint"] == str(tmp_path / "model.safetensors")
    assert 0.5 < result["test_accuracy"] <= 1 and result["train_seconds"] > 0


def test_same_seed_same_run_bit_for_bit(tmp_path):
    config = small_config(subset=600, seed=3)
    first = quiet_fit(config, tmp_path / "a")
    second = quiet_fit(config, tmp_path / "b")
    assert first["test_accuracy"] == second["test_accuracy"]
    a, b = load_file(tmp_path / "a/model.safetensors"), load_file(tmp_path / "b/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    quiet_fit(small_config(subset=600, seed=4), tmp_path / "c")
    assert not torch.equal(
        load_file(tmp_path / "c/model.safetensors")["out.weight"], a["out.weight"]
    )


@pytest.mark.parametrize("backend", ["torch", "scratch"])
def test_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path, capsys, backend):
    # MNIST's first 500 training and 1,000 test digits: the runs evaluate 8 epochs in all.
    data = write_dataset(tmp_path / "data", 500, 1000)
    for optimizer in ("adam", "sgd"):
        whole, parts = tmp_path / f"whole-{optimizer}", tmp_path / f"parts-{optimizer}"
        args = [
            "--backend",
            backend,
            "--data-dir",
            data,
            "--batch-size",
            "25",
            "--optimizer",
            optimizer,
            "--quiet",
            "--no-pictures",
        ]
        assert run_cli(capsys, "train", *args, "--epochs", 2, "--out", whole)[0] == 0
        assert run_cli(capsys, "train", *args, "--epochs", 1, "--out", parts)[0] == 0
        code, out, err = run_cli(
            capsys, "train", "--resume", parts, "--epochs", 2, "--quiet", "--no-pictures"
        )
        assert code == 0, err
        assert "resuming" in out
        a = load_file(whole / "model.safetensors")
        b = load_file(parts / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert [r["test_loss"] for r in read_metrics(whole)] == [
            r["test_loss"] for r in read_metrics(parts)
        ]


def test_resume_refuses_a_changed_hyperparameter(tmp_path, capsys):
    assert (
        run_cli(capsys, "train", "--subset", "200", "--out", tmp_path, "--quiet", "--no-pictures")[
            0
        ]
        == 0
    )
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path, "--lr", "0.1", "--epochs", 2)
    assert code == 1 and "was trained with 0.001" in err


def test_validation_split_is_reported_per_epoch(tmp_path):
    quiet_fit(small_config(subset=500, val_split=1000), tmp_path)
    record = json.loads((tmp_path / "metrics.jsonl").read_text(encoding="utf-8"))
    assert 0.5 < record["val_accuracy"] <= 1 and record["val_loss"] > 0
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert config["dataset"]["val_images"] == 1000


def test_fcn_trains(tmp_path):
    result = quiet_fit(small_config(model="fcn"), tmp_path)
    assert result["model"] == "fcn" and result["test_accuracy"] > 0.6


def test_sgd_with_momentum_trains(tmp_path):
    result = quiet_fit(small_config(optimizer="sgd", lr=0.05), tmp_path)
    assert result["test_accuracy"] > 0.8  # 80 steps of SGD; chance is 0.1


def test_trains_from_a_data_dir(tmp_path):
    root = write_dataset(tmp_path / "data", 1000, 500, compress=False, sep=".")
    result = quiet_fit(small_config(subset=None, data_dir=str(root)), tmp_path / "run")
    assert result["test_accuracy"] > 0.7
    config = json.loads((tmp_path / "run/config.json").read_text(encoding="utf-8"))
    assert config["dataset"]["test_images"] == 500 and config["dataset"]["name"] == "data"


@needs(
    __import__("os").path.isdir(FASHION), "Fashion-MNIST (apt-get install dataset-fashion-mnist)"
)
def test_trains_on_debian_fashion_mnist(tmp_path):
    result = quiet_fit(small_config(data_dir=FASHION), tmp_path)
    # Ten clothing classes: chance is 10%; a short run of the CNN gets well past 65%.
    assert result["test_accuracy"] > 0.65
    model, config = checkpoint.load(tmp_path)
    assert config["dataset"]["name"] == "fashion-mnist"
    assert config["normalization"]["mean"] > 0.25  # Fashion-MNIST is brighter than MNIST


def test_bad_sizes_are_user_errors(tmp_path):
    with pytest.raises(DigitlabError, match="--batch-size 5000: larger than the 2000"):
        quiet_fit(small_config(batch_size=5000), tmp_path)
    with pytest.raises(DigitlabError, match="--val-split 60000"):
        quiet_fit(small_config(val_split=60000), tmp_path)
    with pytest.raises(DigitlabError, match="--subset 0"):
        quiet_fit(small_config(subset=0), tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(DigitlabError, match="no CUDA GPU is available here"):
            quiet_fit(small_config(device="cuda"), tmp_path)


def test_scratch_and_torch_backends_train_alike_on_5000_images(tmp_path):
    results = {
        backend: quiet_fit(TrainConfig(backend=backend, subset=5000), tmp_path / backend)
        for backend in ("torch", "scratch")
    }
    assert results["scratch"]["test_accuracy"] > 0.9
    assert abs(results["scratch"]["test_accuracy"] - results["torch"]["test_accuracy"]) <= 0.005
    # A scratch checkpoint loads into the torch layers and gives the accuracy it was logged with.
    model, config = checkpoint.load(tmp_path / "scratch", backend="torch")
    assert config["backend"] == "scratch"
    norm = config["normalization"]
    report = evaluate(model, load_split(None, False), norm["mean"], norm["std"])
    assert report["accuracy"] == pytest.approx(results["scratch"]["test_accuracy"], abs=1e-4)
