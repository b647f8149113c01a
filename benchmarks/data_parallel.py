"""One epoch in one process against the same epoch split over N processes by torchrun (gloo on
CPU), for each backend: seconds of training, test accuracy, and the N-process / 1-process ratio.

    python benchmarks/data_parallel.py [--processes 2] [--model cnn] [--batch-size 50]

On a machine with fewer cores than N processes x threads, expect no speed-up: the processes share
the cores, and every step adds an all_reduce of the gradients.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from digitlab.train.distributed import torchrun_command


def train(processes: int, args, backend: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        flags = [
            "train",
            "--model",
            args.model,
            "--backend",
            backend,
            "--batch-size",
            str(args.batch_size),
            "--out",
            out,
            "--quiet",
            "--no-pictures",
            "--json",
        ]
        if processes == 1:
            command = [sys.executable, "-m", "digitlab", *flags]
        else:
            command = torchrun_command(processes, *flags)
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        metrics = (Path(out) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        result["epoch_seconds"] = json.loads(metrics[-1])["epoch_seconds"]
        return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    rows = []
    for backend in ("torch", "scratch"):
        one, many = train(1, args, backend), train(args.processes, args, backend)
        rows.append(
            {
                "backend": backend,
                "one_process": one,
                f"{args.processes}_processes": many,
                "ratio": many["epoch_seconds"] / one["epoch_seconds"],
            }
        )
        print(
            f"{backend}: 1 process {one['epoch_seconds']:.1f} s ({one['test_accuracy']:.4f}), "
            f"{args.processes} processes {many['epoch_seconds']:.1f} s "
            f"({many['test_accuracy']:.4f}); ratio {rows[-1]['ratio']:.2f}",
            flush=True,
        )
    print(json.dumps({"rows": rows}))
