"""The drawing app: draw or upload a digit (or a whole number), see the answer and what each conv
block sees. Gradio serves it; the reading itself is predict's own preprocessing and model.

    digitlab app [--host 127.0.0.1] [--port 7860] [--checkpoint RUN]
                 [--auth USER:PASSWORD | --auth-file FILE | --no-auth]

Served to a class, each browser session (Gradio's session hash) has its own handwriting folder
and its own fine-tuned runs; fine-tunes wait in their own queue, one at a time, while readings
keep theirs.
"""

import io
import ipaddress
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from digitlab.errors import DigitlabError
from digitlab.files import atomic_write
from digitlab.read.explain import explain, why_picture
from digitlab.read.pictures import stack, white
from digitlab.read.predictor import Predictor, describe
from digitlab.read.preprocess import BlankImageError, load_image
from digitlab.study.plots import feature_mosaic
from digitlab.train import calibration
from digitlab.train.finetune import STEPS, finetune

PRETRAINED = "pretrained (shipped)"
LABEL_MARGIN = 28  # white pixels above the "why" maps, under Gradio's label
CANVAS = 400
MAX_UPLOAD = "10mb"  # Gradio's max_file_size: a larger upload is refused before it is stored
READ_CONCURRENCY = 4  # readings at once; fine-tunes have their own queue, one at a time
SESSION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # Gradio's session hashes; never a path
HINT = "Draw a digit (or a number) in the box; the answer follows your strokes."
# Gradio's sketchpad opens with no tool chosen; choosing the brush on load makes it ready to draw.
# On load the page also notes when the pad was last drawn on and last cleared (see PAD_AS_SHOWN).
SELECT_BRUSH = """() => {
  const pick = (tries) => {
    const brush = document.querySelector('#sketchpad button[aria-label="Brush"]');
    if (brush) { brush.click(); } else if (tries > 0) { setTimeout(() => pick(tries - 1), 200); }
  };
  pick(25);
  const pad = (window.digitlabPad = { drawn: 0, cleared: 0 });
  document.addEventListener('pointerdown', (e) => {
    if (e.target instanceof Element && e.target.closest('#sketchpad canvas')) {
      pad.drawn = performance.now();
    }
  }, true);
  document.addEventListener('click', (e) => {
    const clear = e.target instanceof Element
      && e.target.closest('#sketchpad button[aria-label="Clear canvas"]');
    if (clear) pad.cleared = performance.now();
  }, true);
}"""

# The sketchpad's value can lag its canvas: under load the export of the last stroke lands after
# a Clear, and the empty canvas would be read (or saved) as the drawing just wiped. A canvas
# cleared since it was last drawn on is empty, whatever its value says.
PAD_AS_SHOWN = """(value, ...rest) => {
  const pad = window.digitlabPad || { drawn: 0, cleared: 0 };
  return [pad.cleared > pad.drawn ? null : value, ...rest];
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
        self.at_start = sorted(str(p.parent) for p in self.runs_dir.glob("**/model.safetensors"))

    def choices(self, own: list[str] | tuple = ()) -> list[str]:
        """The shipped model, the --checkpoint given, the runs under runs/ when the app started,
        and `own`: one session's fine-tuned runs (never other visitors')."""
        given = [self.default] if self.default else []
        found = [f for f in [*self.at_start, *own] if f not in given]
        return [*given, PRETRAINED, *dict.fromkeys(found)]

    def predictor(self, choice: str | None) -> Predictor:
        choice = choice or self.choices()[0]
        with self._lock:
            if choice not in self._loaded:
                self._loaded[choice] = Predictor.load(None if choice == PRETRAINED else choice)
            return self._loaded[choice]

    def read(self, image: Image.Image, choice: str | None = None) -> dict:
        """Digits of an image, left to right: their 28x28 images, probabilities, the answer in
        words (predictor.describe), why (saliency and occlusion) and the feature maps."""
        predictor = self.predictor(choice)
        reading = predictor.read(image, multi=True)
        return {
            "digits": reading.digits,
            "probabilities": reading.probabilities,
            "text": reading.text,
            "said": describe(reading, predictor.classes),
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


def why_image(reading, maps: dict) -> np.ndarray:
    """read.explain's why_picture (saliency above occlusion, every digit side by side) under a
    white margin, which Gradio's label covers: (H, W, 3) uint8."""
    picture = why_picture(reading, maps)
    return stack([white(LABEL_MARGIN, picture.shape[1]), picture])


def seen_image(digits: torch.Tensor, zoom: int = 8) -> np.ndarray:
    """The 28x28 images the model saw, side by side and enlarged: (28*zoom, K*28*zoom) uint8."""
    strip = torch.cat([*digits], dim=1).numpy()
    return (255 * np.kron(strip, np.ones((zoom, zoom)))).astype(np.uint8)


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
    probabilities, number, message = result["probabilities"], result["text"], result["said"]
    if len(probabilities) == 1:
        classes = result["classes"]  # "0".."9", or the names of another dataset's classes
        label = {classes[c]: float(p) for c, p in enumerate(probabilities[0])}
        number = classes[int(probabilities[0].argmax())]
    else:
        label = {number: float(probabilities.max(1).values.prod())}
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


@dataclass(frozen=True)
class Classroom:
    """Where visitors' drawings go (one folder per session under `folder`), how long a
    fine-tune trains, and the caps on what visitors may store."""

    folder: Path
    steps: int = STEPS
    max_drawings: int = 500  # per session
    max_disk_mb: float = 200.0  # all sessions' drawings together


def session_folder(room: Classroom, request) -> Path:
    """This browser session's own handwriting folder, named by Gradio's session hash."""
    session = getattr(request, "session_hash", None) or ""
    if not SESSION.match(session):
        raise DigitlabError("this page has no session; reload it")
    return room.folder / session


def save_drawing(value, label: str | None, room: Classroom, request) -> str:
    """The drawing on the canvas saved as SESSION_FOLDER/<label>/<time>.png (atomic); a message."""
    image = canvas_image(value)
    if image is None:
        return "Draw a digit first, then say which digit it is."
    if label is None or label == "":
        return "Choose the right answer first (0-9), then save."
    try:
        folder = session_folder(room, request)
    except DigitlabError as e:
        return f"Could not save: {e}"
    count = sum(1 for _ in folder.rglob("*.png"))
    if count >= room.max_drawings:
        return f"Not saved: {count} drawings is this session's limit; press Learn with them."
    used = sum(p.stat().st_size for p in room.folder.rglob("*.png")) / 1e6
    if used >= room.max_disk_mb:
        return f"Not saved: the saved drawings use {used:.0f} MB, the app's limit; ask the teacher."
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    (folder / label).mkdir(parents=True, exist_ok=True)
    atomic_write(folder / label / f"{time.time_ns()}-{uuid.uuid4().hex[:6]}.png", buffer.getvalue())
    # Learn refits the "not sure" detector against drawn outliers: where the cache folder does
    # not hold them yet, draw them while the visitor draws (about 15 s on two cores) instead of
    # after they press Learn; else read them (a fraction of a second).
    calibration.warm_up()
    return f"Saved as a {label}. {count + 1} drawing(s) of yours so far."


def stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def run_name(session: str) -> str:
    """handwriting-<session>-<time>-<unique>: two Learns in the same second never share it."""
    return f"handwriting-{session[:8]}-{stamp()}-{uuid.uuid4().hex[:8]}"


def learn(choice: str | None, reader: Reader, room: Classroom, request, progress=None):
    """Fine-tune a copy of the chosen model on this session's drawings only: (new run or None,
    message). The run is written whole or not at all (finetune.save_run)."""
    try:
        folder = session_folder(room, request)
    except DigitlabError as e:
        return None, f"Could not learn: {e}"
    out = reader.runs_dir / run_name(folder.name)
    try:
        result = finetune(
            reader.predictor(choice), folder, out, progress=progress, steps=room.steps
        )
    except DigitlabError as e:  # the folder's path means nothing to the visitor
        return None, f"Could not learn yet: {e}".replace(str(folder), "your drawings")
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
    **limits,
):
    """The gr.Blocks app, not yet launched. Each session's drawings go to
    `handwriting`/<session> (default RUNS/handwriting), its fine-tuned models to
    RUNS/handwriting-<session>-<time>-<unique>. `limits`: Classroom's steps, max_drawings,
    max_disk_mb."""
    import gradio as gr

    reader = Reader(default_checkpoint, runs_dir)
    folder = Path(handwriting) if handwriting else reader.runs_dir / "handwriting"
    room = Classroom(folder, **limits)
    reader.predictor(None)  # load (and check) the default model before the first visitor
    with gr.Blocks(title="digitlab", analytics_enabled=False) as demo:
        gr.Markdown("# digitlab: draw a digit\nWrite one digit, or a number left to right.")
        with gr.Row():
            with gr.Column(scale=3):
                pad, upload = drawing_tabs(gr)
                choice = model_choice(gr, reader)
                clear = gr.Button("Clear", elem_id="clear")
                teaching = teaching_panel(gr)
            with gr.Column(scale=2):
                message, number, label, seen, why = answer_panel(gr)
        maps = gr.Image(label="what each conv block sees", interactive=False, elem_id="maps")
        outputs = [label, seen, why, maps, number, message]
        wire_reading(reader, pad, upload, choice, clear, outputs)
        wire_teaching(gr, reader, room, pad, choice, *teaching)
        demo.load(None, js=SELECT_BRUSH)
    return demo.queue(default_concurrency_limit=READ_CONCURRENCY)


def drawing_tabs(gr):
    """The Draw tab (the sketchpad) and the Upload tab (a file): (pad, upload)."""
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
        # A plain file, handed over as a path: digitlab's own loading checks it (not an image,
        # empty, a decompression bomb) and says what is wrong, where an image component would
        # fail inside Gradio first.
        upload = gr.File(type="filepath", label="a photo or scan of a digit", elem_id="upload")
    return pad, upload


def model_choice(gr, reader: Reader):
    """The models to read with: the shipped one, --checkpoint and every run under runs/."""
    choices = reader.choices()
    return gr.Dropdown(choices, value=choices[0], label="model", elem_id="model")


def teaching_panel(gr):
    """ "Teach it your handwriting": (the right answer, Save, Learn, the panel's message)."""
    with gr.Accordion("Teach it your handwriting", open=True):
        with gr.Row():
            digits = [str(c) for c in range(10)]
            right = gr.Dropdown(digits, value=None, label="the right answer", elem_id="right")
            save = gr.Button("Save this drawing", elem_id="save")
            learn_button = gr.Button("Learn my handwriting", elem_id="learn")
        teach = gr.Markdown(
            "Correct (or confirm) the answer and save the drawing; after five or more, press "
            "Learn.",
            elem_id="teach",
        )
    return right, save, learn_button, teach


def answer_panel(gr):
    """The answer: (message, number read, top three classes, what the model saw, why)."""
    message = gr.Markdown(HINT, elem_id="message")
    number = gr.Textbox(label="number read", elem_id="number", interactive=False)
    label = gr.Label(num_top_classes=3, label="answer", elem_id="answer")
    seen = gr.Image(label="what the model saw (28x28 each)", interactive=False, elem_id="seen")
    why = gr.Image(
        label="why: the strokes for (red) and against (blue) the answer",
        interactive=False,
        elem_id="why",
    )
    return message, number, label, seen, why


def wire_reading(reader: Reader, pad, upload, choice, clear, outputs) -> None:
    """Strokes and uploads are read as they come; Clear empties the canvas and the answer."""
    reading = pad.change(
        lambda v, c: on_draw(v, c, reader),
        [pad, choice],
        outputs,
        api_name="read_drawing",
        js=PAD_AS_SHOWN,
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_id="read",
    )
    upload.change(
        lambda p, c: on_upload(p, c, reader),
        [upload, choice],
        outputs,
        api_name="read_upload",
        concurrency_id="read",
    )
    # The sketchpad's own "Clear canvas" empties it in the browser (its change event then resets
    # the answer); setting its value from the server would also drop the brush. A reading still
    # running or waiting from the last strokes is cancelled: it would put their answer back
    # beside the empty canvas.
    clear.click(
        lambda: (None, *answer(None, None, reader)),
        None,
        [upload, *outputs],
        api_name=False,
        js=CLEAR_CANVAS,
        cancels=[reading],
    )


def wire_teaching(
    gr, reader: Reader, room: Classroom, pad, choice, right, save, learn_button, teach
):
    """Save stores the drawing under its right answer in this session's folder; Learn
    fine-tunes on them, one fine-tune at a time in the whole app (the others wait and see their
    place in the queue), and switches this session to its new run."""
    mine = gr.State([])  # this session's fine-tuned runs, for its model menu

    def on_save(value, label, request: gr.Request):
        return save_drawing(value, label, room, request)

    save.click(on_save, [pad, right], teach, api_name="save_drawing", js=PAD_AS_SHOWN)

    def on_learn(c, own, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        progress(0, desc="learning your handwriting")
        new, text = learn(c, reader, room, request, lambda f: progress(f, desc="learning"))
        own = [*own, new] if new else own
        return gr.Dropdown(choices=reader.choices(own), value=new or c), text, own

    learn_button.click(
        on_learn,
        [choice, mine],
        [choice, teach, mine],
        api_name="learn",
        concurrency_limit=1,
        concurrency_id="learn",
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may be reachable from the network
        return False


def sign_in(host: str, auth: str | None, auth_file: str | None, no_auth: bool):
    """The accounts for Gradio's auth= (a list of (user, password)), or None for no sign-in.
    Off the loopback, sign-in (or an explicit --no-auth) is required."""
    if no_auth and (auth or auth_file):
        raise DigitlabError("--no-auth contradicts --auth/--auth-file; choose one")
    pairs = [auth] if auth else []
    if auth_file:
        try:
            text = Path(auth_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DigitlabError(f"--auth-file {auth_file}: cannot read it ({e})") from None
        pairs += [line.strip() for line in text.splitlines() if line.strip()]
    accounts = []
    for pair in pairs:
        user, colon, password = pair.partition(":")
        if not (user and colon and password):
            where = f"--auth-file {auth_file}" if pair != auth else "--auth"
            raise DigitlabError(f"{where}: expected USER:PASSWORD (one pair a line), got {pair!r}")
        accounts.append((user, password))
    if (auth or auth_file) and not accounts:
        raise DigitlabError(f"--auth-file {auth_file}: no USER:PASSWORD line in it")
    if not accounts and not no_auth and not is_loopback(host):
        raise DigitlabError(
            f"--host {host} lets anyone on the network save files and start training: add "
            "--auth USER:PASSWORD (or --auth-file FILE), or --no-auth to serve without sign-in"
        )
    return accounts or None


def serve_options(accounts) -> dict:
    """demo.launch's options besides the address: sign-in and the upload cap."""
    return {"auth": accounts, "max_file_size": MAX_UPLOAD, "show_error": False}


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    default_checkpoint: str | None = None,
    accounts: list | None = None,
):
    demo = build_app(default_checkpoint)
    try:
        demo.launch(
            server_name=host, server_port=port, prevent_thread_lock=True, **serve_options(accounts)
        )
    except OSError as e:
        raise DigitlabError(f"cannot serve on {host}:{port} ({e}); choose another --port") from None
    signed = f"sign-in on ({len(accounts)} account(s))" if accounts else "sign-in off"
    if not accounts and not is_loopback(host):
        signed += ": anyone who can reach it can save drawings and start training"
    print(f"digitlab app: listening on http://{host}:{port}/, {signed}", flush=True)
    demo.block_thread()
