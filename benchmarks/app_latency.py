"""Latency of the drawing app from stroke to answer, on this CPU.

Real MNIST test digits drawn on 400x400 sketchpad values (strokes on a transparent layer, as
Gradio delivers them) go through the app's own code: canvas -> ink -> MNIST-style 28x28 ->
forward pass. Prints the median and 95th percentile of that path (the answer) and of the whole
handler (answer plus the 28x28 preview and the feature-map mosaic).

    python benchmarks/app_latency.py [--n 300] [--checkpoint RUN]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digitlab.app.server import PRETRAINED, Reader, canvas_image, on_draw  # noqa: E402
from digitlab.data.mnist import load_split  # noqa: E402
from test_app import place_digits, sketchpad_value  # noqa: E402  (the tests' canvas maker)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--checkpoint", help="a run folder (default: the shipped model)")
    args = parser.parse_args()
    test, rng, reader = load_split(None, False), np.random.default_rng(0), Reader()
    choice = args.checkpoint or PRETRAINED
    predictor = reader.predictor(choice)
    values = [sketchpad_value(place_digits([k], rng, test)) for k in range(args.n)]
    answer_ms, handler_ms, right = [], [], 0
    for k, value in enumerate(values):
        start = time.perf_counter()
        digit = predictor.read(canvas_image(value), multi=True).digit
        answer_ms.append(1000 * (time.perf_counter() - start))
        right += digit == int(test.labels[k])
        start = time.perf_counter()
        on_draw(value, choice, reader)
        handler_ms.append(1000 * (time.perf_counter() - start))
    for name, ms in (("preprocessing + forward", answer_ms), ("whole handler", handler_ms)):
        print(f"{name:>24}: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms")
    print(f"{right} of {args.n} drawings read right")
