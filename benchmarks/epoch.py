"""One full epoch of the study log's CNN with each backend: same defaults (Adam, lr 0.001, batch
50), same seed, same data. Prints test accuracy and training seconds of each, and the ratio.

    python benchmarks/epoch.py [--epochs N] [--seed S] [--model cnn|fcn]
"""

import argparse
import json
import tempfile

from digitlab.train.loop import fit
from digitlab.train.settings import TrainConfig

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="cnn")
    args = parser.parse_args()
    results = {}
    for backend in ("torch", "scratch"):
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(
                model=args.model, backend=backend, epochs=args.epochs, seed=args.seed
            )
            results[backend] = fit(config, out, progress=False, log=lambda text: None)
        r = results[backend]
        print(
            f"{backend:>8}: test accuracy {r['test_accuracy']:.4f}, "
            f"{r['train_seconds']:.1f} s of training"
        )
    ratio = results["scratch"]["train_seconds"] / results["torch"]["train_seconds"]
    gap = results["scratch"]["test_accuracy"] - results["torch"]["test_accuracy"]
    print(f"scratch / torch training time: {ratio:.2f}; accuracy difference {gap:+.4f}")
    print(json.dumps({"results": results, "time_ratio": ratio, "accuracy_difference": gap}))
