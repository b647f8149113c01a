"""Latency of the drawing app from stroke to answer, on this CPU.

Real MNIST test digits drawn on 400x400 sketchpad values (strokes on a transparent layer, as
Gradio delivers them) go through the app's own code: canvas -> ink -> MNIST-style 28x28 ->
forward pass. Prints the median and 95th percentile of that path (the answer) and of the whole
handler (answer plus the 28x28 preview and the feature-map mosaic).

    python benchmarks/app_latency.py [--n 300] [--checkpoint RUN]
    python benchmarks/app_latency.py --served   # p95 alone and while another session learns
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from digitlab.app.server import PRETRAINED, Reader, canvas_image, on_draw  # noqa: E402
from digitlab.data.mnist import load_split  # noqa: E402
from digitlab.read import outliers  # noqa: E402
from digitlab.train.calibration import EXPOSURE  # noqa: E402
from test_app import place_digits, sketchpad_value  # noqa: E402  (the tests' canvas maker)


def served_p95(n: int) -> None:
    """Readings through the real server (gradio_client, an upload each) alone, then while
    another session fine-tunes (train/finetune.py's full STEPS): the p95 of each."""
    import tempfile

    from gradio_client import Client, handle_file
    from PIL import Image

    from test_app import drawing_value, serve

    test = load_split(None, False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = []
        for k in range(n):
            paths.append(tmp / f"{k}.png")
            Image.fromarray(255 - test.images[k].numpy()).resize((200, 200)).save(paths[-1])
        demo, url = serve(tmp / "runs")
        try:
            reader = Client(url, verbose=False, download_files=False)
            learner = Client(url, verbose=False, download_files=False)
            for k in range(30):
                learner.predict(
                    drawing_value(k % 10, k, tmp), str(k % 10), api_name="/save_drawing"
                )
            # The saves started drawing Learn's outliers in the background (this process serves
            # the app): wait for them, so that "alone" is alone and Learn is the fine-tune only.
            outliers.drawn_pages(EXPOSURE, 0)

            def readings(until=None):  # n readings, or as many as until (a job) runs
                ms = []
                while len(ms) < n if until is None else not until.done():
                    path = paths[len(ms) % n]
                    start = time.perf_counter()
                    reader.predict(handle_file(str(path)), PRETRAINED, api_name="/read_upload")
                    ms.append(1000 * (time.perf_counter() - start))
                return ms

            alone = readings()
            job = learner.submit(PRETRAINED, api_name="/learn")
            learning = readings(until=job)
            print(job.result()[1])
        finally:
            demo.close()
    for name, ms in (("served, alone", alone), ("served, while learning", learning)):
        print(
            f"{name:>24}: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms"
            f" ({len(ms)} readings)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--checkpoint", help="a run folder (default: the shipped model)")
    parser.add_argument(
        "--served",
        action="store_true",
        help="through the real server: readings alone, then while another session learns",
    )
    args = parser.parse_args()
    if args.served:
        served_p95(min(args.n, 100))
        sys.exit(0)
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
