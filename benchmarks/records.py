"""The recipes' records: for each recipe and backend, seconds of training and the mean and spread
of test accuracy over seeds, all from this run on this machine.

    python benchmarks/records.py                         # speedrun, 5 seeds, both backends
    python benchmarks/records.py --recipes best --seeds 3 --backends torch --tta
"""

import argparse
import json
import os

import torch

from digitlab.study.bench import record_rows
from digitlab.train.recipes import RECIPES

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", default="speedrun", help=f"comma-separated: {list(RECIPES)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--backends", default="torch,scratch", help="comma-separated")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads, fixed for every run"
    )
    parser.add_argument(
        "--tta", action="store_true", help="also the test accuracy with test-time augmentation"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{torch.get_num_threads()} torch threads; per recipe and backend: mean, min and max; "
        "the arithmetic's share of the matmul peak read between the runs (peak_share), and the "
        "seconds it would take at that peak (seconds_at_peak)"
    )
    backends = tuple(args.backends.split(","))
    rows = record_rows(args.recipes.split(","), args.seeds, names=backends, tta=args.tta)
    for row in rows:
        print(f"{row['name']:<36} " + "  ".join(f"{k} {v}" for k, v in row.items() if k != "name"))
    print(json.dumps({"rows": rows}))
