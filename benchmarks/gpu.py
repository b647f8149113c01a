"""GPU speed of both backends, for when a CUDA machine is at hand (under 5 minutes).

    python benchmarks/gpu.py [--seeds N]

Prints, from one run: the training step of each net with each backend (median ms, scratch/torch
ratio), one epoch of the study log's CNN with each backend, and the speedrun recipe with each
backend (seconds of training, test accuracy). Without a GPU it says so and exits 1.
"""

import argparse
import json
import sys
import tempfile

import torch

from digitlab.study.bench import step_rows
from digitlab.train.loop import fit
from digitlab.train.recipes import settings
from digitlab.train.settings import TrainConfig


def train(config: TrainConfig) -> dict:
    with tempfile.TemporaryDirectory() as out:
        return fit(config, out, progress=False, log=lambda text: None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2, help="speedrun seeds per backend")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA GPU here; run it on a machine with one")
        sys.exit(1)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    rows = step_rows(number=50, device="cuda")
    for row in rows:
        print(
            f"{row['name']:<52} torch {row['torch_ms']} ms  scratch {row['scratch_ms']} ms  "
            f"ratio {row['ratio']}",
            flush=True,
        )
    runs = {}
    for backend in ("torch", "scratch"):
        study = train(TrainConfig(backend=backend, device="cuda"))
        speedruns = [
            train(
                TrainConfig(
                    **{**settings("speedrun"), "backend": backend, "seed": seed, "device": "cuda"}
                )
            )
            for seed in range(args.seeds)
        ]
        runs[backend] = {"study_cnn_epoch": study, "speedrun": speedruns}
        print(
            f"{backend}: study-log CNN epoch {study['train_seconds']:.1f} s, "
            f"accuracy {study['test_accuracy']:.4f}; speedrun "
            + ", ".join(
                f"{r['train_seconds']:.2f} s / {r['test_accuracy']:.4f}" for r in speedruns
            ),
            flush=True,
        )
    print(json.dumps({"steps": rows, "runs": runs}))
