"""The drawing app: draw or upload a digit (or a whole number), see the answer and what each conv
block sees. Gradio serves it; the reading itself is predict's own preprocessing and model.

    digitlab app [--host 127.0.0.1] [--port 7860] [--checkpoint RUN]
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from digitlab.errors import DigitlabError
from digitlab.files import atomic_write
from digitlab.read.explain import explain, strip
from digitlab.read.predictor import Predictor
from digitlab.read.preprocess import BlankImageError, load_image
from digitlab.train.finetune import finetune

PRETRAINED = "pretrained (shipped)"
GAP = 3  # white pixels between feature maps in the mosaic
LABEL_MARGIN = 28  # white pixels above the "why" maps, under Gradio's label
CANVAS = 400
HINT = "Draw a digit (or a number) in the box; the answer follows your strokes."
# Gradio's sketchpad opens with no tool chosen; choosing the brush on load makes it ready to draw.
SELECT_BRUSH = """() => {
  const pick = (tries) => {
    const brush = document.querySelector('#sketchpad button[aria-label="Brush"]');
    if (brush) { brush.click(); } else if (tries > 0) { setTimeout(() => pick(tries - 1), 200); }
  };
  pick(25);
}"""


CLEAR_CANVAS = """() => {
  document.querySelector('#sketchpad button[aria-label="Clear canvas"]')?.click();
  setTimeout(() => document.querySelector('#sketchpad button[aria-label="Brush"]')?.click(), 100);
}"""


class Reader:
    """The models the app can use, loaded once each (thread-safe), and the reading itself."""

    def __init__(self, default: str | None = None, runs_dir: str | Path = "runs"):
        self.default, self.runs_dir = default, Path(runs_dir)
        self._loaded: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def choices(self) -> list[str]:
        """The shipped model, the --checkpoint given, and every run found under runs/."""
        found = sorted(str(p.parent) for p in self.runs_dir.glob("**/model.safetensors"))
        given = [self.default] if self.default else []
        return [*given, PRETRAINED, *[f for f in found if f not in given]]

    def predictor(self, choice: str | None) -> Predictor:
        choice = choice or self.choices()[0]
        with self._lock:
            if choice not in self._loaded:
                self._loaded[choice] = Predictor.load(None if choice == PRETRAINED else choice)
            return self._loaded[choice]

    def read(self, image: Image.Image, choice: str | None = None) -> dict:
        """Digits of an image, left to right: their 28x28 images, probabilities, whether each is
        too unlike a digit to be sure, why (saliency and occlusion) and the feature maps."""
        predictor = self.predictor(choice)
        reading = predictor.read(image, multi=True)
        return {
            "digits": reading.digits,
            "probabilities": reading.probabilities,
            "unsure": reading.unsure,
            "text": reading.text,
            "classes": predictor.classes,
            "why": why_image(reading, explain(predictor, reading)),
            "maps": predictor.block_outputs(reading.digits[0]),
        }


def canvas_image(value) -> Image.Image | None:
    """The sketchpad's value as an image whose ink predict understands, or None when empty.

    The strokes live on transparent layers: their alpha is the ink. The composite is opaque
    white with dark ink, used when there are no layers (an uploaded background, say).
    """
    if value is None:
        return None
    layers = [layer for layer in value.get("layers") or [] if layer is not None]
    if layers:
        alpha = np.max([np.asarray(layer)[..., 3] for layer in layers], axis=0)
        if alpha.max() > 0:
            rgba = np.zeros(alpha.shape + (4,), np.uint8)
            rgba[..., 3] = alpha
            return Image.fromarray(rgba, "RGBA")
    composite = value.get("composite")
    if composite is None:
        return None
    composite = np.asarray(composite)
    return Image.fromarray(composite[..., :3] if composite.ndim == 3 else composite).convert("RGB")


def why_image(reading, maps: dict, zoom: int = 6) -> np.ndarray:
    """Saliency above occlusion, every digit side by side, each band captioned: (H, W, 3)."""
    bands = []
    for kind, caption in (
        ("saliency", "saliency (red: more ink here says {t}; blue: says other)"),
        ("occlusion", "occlusion (red: hiding this hurts {t}; blue: helps)"),
    ):
        picture = strip(reading, maps[kind], zoom)
        band = Image.new("RGB", (max(picture.shape[1], 330), picture.shape[0] + 16), "white")
        band.paste(Image.fromarray(picture), (0, 16))
        ImageDraw.Draw(band).text((2, 2), caption.format(t=reading.text), fill="black")
        bands.append(np.asarray(band))
    width = max(b.shape[1] for b in bands)
    # A white margin on top: Gradio lays the component's label over the image's top edge.
    return np.concatenate(
        [np.full((LABEL_MARGIN, width, 3), 255, np.uint8)]
        + [np.pad(b, ((0, 4), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in bands]
    )


def seen_image(digits: torch.Tensor, zoom: int = 8) -> np.ndarray:
    """The 28x28 images the model saw, side by side and enlarged: (28*zoom, K*28*zoom) uint8."""
    strip = torch.cat([*digits], dim=1).numpy()
    return (255 * np.kron(strip, np.ones((zoom, zoom)))).astype(np.uint8)


def feature_mosaic(
    maps: dict[str, torch.Tensor], columns: int = 16, cell: int = 48, most: int = 32
) -> np.ndarray:
    """The channels of every conv block (the first `most` of each) as a tiled, coloured (H, W, 3)
    uint8 image."""
    import matplotlib

    # viridis as a 256-entry lookup table: indexing it is far faster than calling the colormap.
    lut = (255 * matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3]).astype(np.uint8)
    bands = []
    for name, block in maps.items():
        channels, h, w = block.shape
        block = block[:most]
        zoom = max(1, cell // max(h, w))
        rows = -(-len(block) // columns)
        # Maps are coloured through the lookup table; the gaps between them stay white, so
        # neighbouring maps never run together (a gap in the colour of zero would).
        tile = np.full((rows * (h * zoom + GAP), columns * (w * zoom + GAP), 3), 255, np.uint8)
        for k, fmap in enumerate(block.numpy()):
            fmap = fmap / fmap.max() if fmap.max() > 0 else fmap
            r, c = divmod(k, columns)
            y, x = r * (h * zoom + GAP), c * (w * zoom + GAP)
            big = fmap.repeat(zoom, 0).repeat(zoom, 1)
            tile[y : y + h * zoom, x : x + w * zoom] = lut[(255 * big).astype(np.uint8)]
        image = Image.fromarray(tile)
        caption = Image.new("RGB", (image.width, 18), "white")
        shown = (
            f"{channels} channels" if channels <= most else f"first {most} of {channels} channels"
        )
        ImageDraw.Draw(caption).text((2, 3), f"{name}: {shown}, {h}x{w}", fill="black")
        bands += [np.asarray(caption), np.asarray(image)]
    width = max(b.shape[1] for b in bands)
    padded = [
        np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in bands
    ]
    return np.concatenate(padded)


def answer(image: Image.Image | None, choice: str | None, reader: Reader):
    """(label, seen, why, feature maps, number, message) for the app's outputs; never raises."""
    empty = ({}, None, None, None, "", HINT)
    if image is None:
        return empty
    try:
        result = reader.read(image, choice)
    except BlankImageError:
        return empty
    except DigitlabError as e:
        return {}, None, None, None, "", f"Could not read that: {e}"
    probabilities, doubts = result["probabilities"], result["unsure"]
    number = result["text"]
    if len(probabilities) == 1:
        classes = result["classes"]  # "0".."9", or the names of another dataset's classes
        label = {classes[c]: float(p) for c, p in enumerate(probabilities[0])}
        number = classes[int(probabilities[0].argmax())]
        share = 100 * probabilities[0].max()
        message = (
            f"Not sure: this does not look like the digits I learned. It looks most like "
            f"{number} ({share:.0f}%)."
            if doubts[0]
            else f"Read {number} ({share:.1f}% sure)."
        )
    else:
        confidence = float(probabilities.max(1).values.prod())
        label = {number: confidence}
        message = f"Read the number {number}: {len(probabilities)} digits, left to right."
        doubtful = [str(k + 1) for k, doubt in enumerate(doubts) if doubt]
        if doubtful:
            message += f" Not sure of digit {', '.join(doubtful)}."
    if choice and choice != PRETRAINED:
        message += f" (model {Path(choice).name})"
    seen = seen_image(result["digits"])
    return label, seen, result["why"], feature_mosaic(result["maps"]), number, message


def on_draw(value, choice, reader: Reader):
    return answer(canvas_image(value), choice, reader)


def on_upload(path, choice, reader: Reader):
    if not path:
        return answer(None, choice, reader)
    try:
        image = load_image(path)
    except DigitlabError as e:  # the server's temporary path means nothing to the person
        message = str(e).replace(str(path), Path(path).name)
        return {}, None, None, None, "", f"Could not read that upload: {message}"
    return answer(image, choice, reader)


def save_drawing(value, label: str | None, folder: Path) -> str:
    """The drawing on the canvas saved as FOLDER/<label>/<time>.png (atomic); a message."""
    image = canvas_image(value)
    if image is None:
        return "Draw a digit first, then say which digit it is."
    if label is None or label == "":
        return "Choose the right answer first (0-9), then save."
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    (folder / label).mkdir(parents=True, exist_ok=True)
    path = folder / label / f"{time.time_ns()}.png"
    atomic_write(path, buffer.getvalue())
    count = sum(1 for _ in folder.rglob("*.png"))
    return f"Saved as a {label}. {count} drawing(s) of yours so far in {folder}."


def learn(choice: str | None, reader: Reader, folder: Path, progress=None):
    """Fine-tune a copy of the chosen model on the saved drawings: (new choice, message)."""
    out = reader.runs_dir / f"handwriting-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = finetune(reader.predictor(choice), folder, out, progress=progress)
    except DigitlabError as e:
        return choice, f"Could not learn yet: {e}"
    b, a = result["before"], result["after"]
    message = (
        f"Learned your handwriting in {result['seconds']:.1f} s: your held-out drawings "
        f"{b['yours']:.0%} -> {a['yours']:.0%}, MNIST test {b['mnist']:.2%} -> {a['mnist']:.2%}. "
        f"Now using {out.name}."
    )
    return str(out), message


def build_app(
    default_checkpoint: str | None = None,
    runs_dir: str | Path = "runs",
    handwriting: str | Path | None = None,
):
    """The gr.Blocks app, not yet launched. The person's drawings go to `handwriting` (default
    RUNS/handwriting), fine-tuned models to RUNS/handwriting-<time>."""
    import gradio as gr

    reader = Reader(default_checkpoint, runs_dir)
    folder = Path(handwriting) if handwriting else reader.runs_dir / "handwriting"
    reader.predictor(None)  # load (and check) the default model before the first visitor
    with gr.Blocks(title="digitlab", analytics_enabled=False) as demo:
        gr.Markdown("# digitlab: draw a digit\nWrite one digit, or a number left to right.")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tab("Draw"):
                    pad = gr.Sketchpad(
                        type="numpy",
                        elem_id="sketchpad",
                        label="draw here",
                        canvas_size=(CANVAS, CANVAS),
                        layers=False,
                        transforms=(),
                        brush=gr.Brush(colors=["#000000"], default_size=18, color_mode="fixed"),
                    )
                with gr.Tab("Upload"):
                    # A plain file, handed over as a path: digitlab's own loading checks it
                    # (not an image, empty, a decompression bomb) and says what is wrong, where
                    # an image component would fail inside Gradio first.
                    upload = gr.File(
                        type="filepath", label="a photo or scan of a digit", elem_id="upload"
                    )
                choice = gr.Dropdown(
                    reader.choices(), value=reader.choices()[0], label="model", elem_id="model"
                )
                clear = gr.Button("Clear", elem_id="clear")
                with gr.Accordion("Teach it your handwriting", open=True):
                    with gr.Row():
                        right = gr.Dropdown(
                            [str(c) for c in range(10)],
                            value=None,
                            label="the right answer",
                            elem_id="right",
                        )
                        save = gr.Button("Save this drawing", elem_id="save")
                        learn_button = gr.Button("Learn my handwriting", elem_id="learn")
                    teach = gr.Markdown(
                        "Correct (or confirm) the answer and save the drawing; after five or "
                        "more, press Learn.",
                        elem_id="teach",
                    )
            with gr.Column(scale=2):
                message = gr.Markdown(HINT, elem_id="message")
                number = gr.Textbox(label="number read", elem_id="number", interactive=False)
                label = gr.Label(num_top_classes=3, label="answer", elem_id="answer")
                seen = gr.Image(
                    label="what the model saw (28x28 each)", interactive=False, elem_id="seen"
                )
                why = gr.Image(
                    label="why: the strokes for (red) and against (blue) the answer",
                    interactive=False,
                    elem_id="why",
                )
        maps = gr.Image(label="what each conv block sees", interactive=False, elem_id="maps")
        outputs = [label, seen, why, maps, number, message]
        reading = pad.change(
            lambda v, c: on_draw(v, c, reader),
            [pad, choice],
            outputs,
            api_name="read_drawing",
            show_progress="hidden",
            trigger_mode="always_last",
        )
        upload.change(
            lambda p, c: on_upload(p, c, reader), [upload, choice], outputs, api_name="read_upload"
        )
        # The sketchpad's own "Clear canvas" empties it in the browser (its change event then
        # resets the answer); setting its value from the server would also drop the brush. A
        # reading still running or waiting from the last strokes is cancelled: it would put
        # their answer back beside the empty canvas.
        clear.click(
            lambda: (None, *answer(None, None, reader)),
            None,
            [upload, *outputs],
            api_name=False,
            js=CLEAR_CANVAS,
            cancels=[reading],
        )
        save.click(
            lambda v, r: save_drawing(v, r, folder), [pad, right], teach, api_name="save_drawing"
        )

        def on_learn(c, progress=gr.Progress()):  # noqa: B008 (Gradio injects the tracker)
            progress(0, desc="learning your handwriting")
            new, text = learn(c, reader, folder, lambda f: progress(f, desc="learning"))
            return gr.Dropdown(choices=reader.choices(), value=new), text

        learn_button.click(on_learn, [choice], [choice, teach], api_name="learn")
        demo.load(None, js=SELECT_BRUSH)
    return demo.queue(default_concurrency_limit=4)


def launch(host: str = "127.0.0.1", port: int = 7860, default_checkpoint: str | None = None):
    demo = build_app(default_checkpoint)
    try:
        demo.launch(server_name=host, server_port=port, show_error=False)
    except OSError as e:
        raise DigitlabError(f"cannot serve on {host}:{port} ({e}); choose another --port") from None
