"""The drawing app: its handlers on canvas values as the sketchpad delivers them, the real server
through gradio_client, and a real headless browser drawing with the mouse."""

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import needs
from digitlab.app.server import (
    HINT,
    PAD_AS_SHOWN,
    PRETRAINED,
    Reader,
    build_app,
    on_draw,
    on_upload,
    serve_options,
)
from digitlab.data.mnist import load_split

gr = pytest.importorskip("gradio", reason="the app's tests need gradio: pip install -e '.[dev]'")
CHROMIUM = shutil.which("chromium")
SIZE = 400


@pytest.fixture(scope="module")
def reader():
    return Reader()


def sketchpad_value(ink: np.ndarray, layers: bool = True) -> dict:
    """What gr.Sketchpad(type="numpy") hands the handler for strokes `ink` (H, W) uint8: an
    opaque white background, the strokes (black) on a transparent layer whose alpha is the ink,
    and the opaque composite with dark ink."""
    layer = np.zeros(ink.shape + (4,), np.uint8)
    layer[..., 3] = ink
    composite = np.full(ink.shape + (4,), 255, np.uint8)
    composite[..., :3] = 255 - ink[..., None]
    background = np.full(ink.shape + (4,), 255, np.uint8)
    return {"background": background, "layers": [layer] if layers else [], "composite": composite}


def place_digits(indices, rng, test) -> np.ndarray:
    """Real MNIST test digits enlarged and laid left to right on a canvas of ink (uint8)."""
    count = len(indices)
    size = int(rng.integers(60, 90)) if count > 1 else int(rng.integers(150, 320))
    width = max(SIZE, count * (size + 12) + 20)
    canvas = np.zeros((SIZE, width), np.uint8)
    top = int(rng.integers(0, SIZE - size))
    left = int(rng.integers(0, width - count * (size + 12) + 1))
    for j, index in enumerate(indices):
        digit = Image.fromarray(test.images[index].numpy()).resize((size, size), Image.BILINEAR)
        x = left + j * (size + 12)
        canvas[top : top + size, x : x + size] = np.maximum(
            canvas[top : top + size, x : x + size], np.asarray(digit)
        )
    return canvas


@pytest.mark.slow
def test_drawn_digits_are_read_right(reader):
    test, rng = load_split(None, False), np.random.default_rng(0)
    right = 0
    for k in range(100):
        # Half through the stroke layer's alpha, half through the composite alone.
        value = sketchpad_value(place_digits([k], rng, test), layers=k % 2 == 0)
        label, seen, why, maps, number, message = on_draw(value, PRETRAINED, reader)
        right += number == str(int(test.labels[k]))
        assert len(label) == 10 and abs(sum(label.values()) - 1) < 1e-4
        assert seen.shape == (224, 224) and maps.ndim == 3 and maps.shape[2] == 3
        assert why.ndim == 3 and why.shape[2] == 3  # saliency over occlusion
    assert right >= 95, right


@pytest.mark.slow
def test_uploads_are_read_right(reader, tmp_path):
    test, rng = load_split(None, False), np.random.default_rng(1)
    right = 0
    for k in range(100, 200):
        path = tmp_path / f"{k}.png"
        Image.fromarray(255 - place_digits([k], rng, test)).save(path)  # dark ink on white
        right += on_upload(str(path), PRETRAINED, reader)[-2] == str(int(test.labels[k]))
    assert right >= 95, right


@pytest.mark.slow
def test_numbers_of_several_digits_are_read_left_to_right(reader):
    test, rng = load_split(None, False), np.random.default_rng(2)
    right = 0
    for _ in range(100):
        indices = rng.integers(0, 10000, int(rng.integers(2, 5)))
        number = on_draw(sketchpad_value(place_digits(indices, rng, test)), PRETRAINED, reader)[-2]
        right += number == "".join(str(int(test.labels[i])) for i in indices)
    assert right >= 90, right


def test_bad_input_gets_a_message_not_a_crash(reader, tmp_path):
    empty = sketchpad_value(np.zeros((SIZE, SIZE), np.uint8))
    assert on_draw(empty, PRETRAINED, reader) == ({}, None, None, None, "", HINT)
    assert on_draw(None, PRETRAINED, reader)[-1] == HINT
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    assert "not an image file" in on_upload(str(tmp_path / "notes.png"), PRETRAINED, reader)[-1]
    Image.new("L", (6000, 5000), 255).save(tmp_path / "huge.png")
    assert "over the cap" in on_upload(str(tmp_path / "huge.png"), PRETRAINED, reader)[-1]


def test_predict_multi_reads_a_number(tmp_path, capsys):
    from conftest import run_cli

    test, rng = load_split(None, False), np.random.default_rng(3)
    path = tmp_path / "number.png"
    Image.fromarray(255 - place_digits([0, 1, 2], rng, test)).save(path)
    code, out, err = run_cli(capsys, "predict", path, "--multi", "--json")
    assert code == 0, err
    item = __import__("json").loads(out.strip().splitlines()[-1])["predictions"][0]
    assert item["text"] == "".join(str(int(test.labels[i])) for i in (0, 1, 2))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(runs, accounts=None, **limits) -> tuple:
    """The app served for real on 127.0.0.1 with runs/ at `runs`, with the options
    `digitlab app` launches it with (sign-in, the upload cap): (demo, its URL)."""
    demo = build_app(runs_dir=runs, **limits)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **serve_options(accounts),
    )
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app served for real on 127.0.0.1 (runs/ pointed at an empty folder)."""
    demo, url = serve(tmp_path_factory.mktemp("runs"))
    yield url
    demo.close()


def test_served_app_answers_gradio_client(server, tmp_path):
    from gradio_client import Client, handle_file

    test = load_split(None, False)
    path = tmp_path / "seven.png"
    Image.fromarray(255 - test.images[0].numpy()).resize((200, 200)).save(path)
    client = Client(server, verbose=False)
    label, seen, why, maps, number, message = client.predict(
        handle_file(str(path)), PRETRAINED, api_name="/read_upload"
    )
    assert number == "7" and label["label"] == "7"
    assert message.startswith("7 (")


@pytest.mark.slow
@needs(CHROMIUM is not None, "chromium (apt-get install chromium)")
def test_browser_draws_a_digit_and_sees_the_answer(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, (cx, cy, h) = open_canvas(p, server, height=1000)
        # A "7": a bar across the top, then a stroke down to the lower left.
        points = [
            (cx - 0.25 * h, cy - 0.35 * h),
            (cx + 0.25 * h, cy - 0.35 * h),
            (cx - 0.05 * h, cy + 0.38 * h),
        ]
        stroke(page, points, steps=4)  # straight lines need few moves; each costs time
        wait_for_number(page, "7")
        page.screenshot(path=str(tmp_path / "app.png"))
        # Clear, and the canvas is ready for the next digit: a "1", one stroke down. The page
        # knows the pad was cleared after it was drawn on (so a value that lags the canvas is
        # read as the empty canvas it shows), and drawn on after that.
        page.click("#clear")
        wait_for_number(page, "")
        shown = f"({PAD_AS_SHOWN})('a value', 'a model')"  # what reading and saving send
        assert page.evaluate(shown) == [None, "a model"]
        stroke(page, [(cx, cy - 0.35 * h), (cx, cy + 0.35 * h)], steps=4)
        wait_for_number(page, "1")
        assert page.evaluate(shown) == ["a value", "a model"]
        browser.close()


def open_canvas(p, url: str, height: int):
    """Headless Chromium on the app, ready to draw: (browser, page, (centre x, centre y, canvas
    height)) in page pixels."""
    browser = p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.goto(url)
    canvas = page.locator("#sketchpad canvas").first
    canvas.wait_for()
    # The app picks the brush on load (no click needed): wait until it shows as chosen.
    page.wait_for_function(
        """() => document.querySelector('#sketchpad button[aria-label="Brush"]')
            ?.classList.contains('highlight')""",
        timeout=30000,
    )
    box = canvas.bounding_box()
    return browser, page, (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["height"])


def stroke(page, points, steps: int = 15):
    """Press, move through `points` in small steps, release: one stroke of the mouse."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        for t in np.linspace(0, 1, steps)[1:]:
            page.mouse.move(x0 + t * (x1 - x0), y0 + t * (y1 - y0))
    page.mouse.up()


def wait_for_number(page, text: str):
    from playwright.sync_api import TimeoutError

    try:
        page.wait_for_function(
            f"() => document.querySelector('#number textarea, #number input')?.value === '{text}'",
            timeout=30000,
        )
    except TimeoutError:
        shown = page.locator("#number textarea, #number input").first.input_value()
        said = page.locator("#message").inner_text()
        raise AssertionError(f"number read is {shown!r}, not {text!r}; message: {said!r}") from None


def test_served_app_serves_concurrent_users(server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    test = load_split(None, False)
    paths = []
    for k in range(8):
        path = tmp_path / f"{k}.png"
        Image.fromarray(255 - test.images[k].numpy()).resize((160, 160)).save(path)
        paths.append(path)

    def ask(path):
        client = Client(server, verbose=False)
        return client.predict(handle_file(str(path)), PRETRAINED, api_name="/read_upload")[-2]

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(ask, paths))
    assert numbers == [str(int(test.labels[k])) for k in range(8)]


@pytest.mark.slow
def test_twenty_concurrent_clients_each_sending_ten_drawings(server, tmp_path, capfd, reader):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    test, rng = load_split(None, False), np.random.default_rng(4)
    jobs = []  # (path, digit) for drawings the model reads right when called directly
    k = 0
    while len(jobs) < 200:
        path = tmp_path / f"{k}.png"
        Image.fromarray(255 - place_digits([k], rng, test)).save(path)
        truth = str(int(test.labels[k]))
        # The reading the server's answer comes from, without its pictures of why.
        if reader.predictor(PRETRAINED).read(path, multi=True).text == truth:
            jobs.append((path, truth))
        k += 1
    capfd.readouterr()  # the server's log from here on

    def client_session(share):
        # The answer is in the reply itself; the pictures stay on the server (not downloaded).
        client = Client(server, verbose=False, download_files=False)
        return [
            client.predict(handle_file(str(path)), PRETRAINED, api_name="/read_upload")[-2] == truth
            for path, truth in share
        ]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(client_session, [jobs[i::20] for i in range(20)]))
    assert [len(r) for r in results] == [10] * 20
    assert all(all(r) for r in results)
    log = capfd.readouterr()
    for text in (log.out, log.err):
        assert "Traceback" not in text and "Error" not in text, text[-2000:]


def test_a_busy_port_is_a_one_line_error(server, capsys):
    from conftest import assert_one_line_error, run_cli

    port = server.rstrip("/").rsplit(":", 1)[1]
    code, _, err = run_cli(capsys, "app", "--port", port)
    assert_one_line_error(code, err, 1, f"cannot serve on 127.0.0.1:{port}", "another --port")


def test_feature_mosaic_keeps_white_gaps_between_maps():
    from digitlab.study.plots import GAP, feature_mosaic

    # Two blocks of all-zero maps: every map is the colour of zero, the gaps must still be white.
    maps = {"conv1": torch.zeros(4, 14, 14), "conv2": torch.zeros(4, 7, 7)}
    mosaic = feature_mosaic(maps, columns=4, cell=48)
    zero = mosaic[18 + 2, 2]  # inside the first map of conv1, below its caption
    assert tuple(zero) != (255, 255, 255)
    column = 14 * (48 // 14)  # the first 14x14 map, enlarged 3x, ends here; the gap follows
    assert (mosaic[18 : 18 + 14 * 3, column : column + GAP] == 255).all()


@pytest.mark.slow
def test_bad_uploads_get_digitlabs_one_line_message_through_the_server(server, tmp_path, capfd):
    """Through the real server: each bad file reaches digitlab's own checks, the page gets their
    one line, and the server logs no traceback."""
    from gradio_client import Client, handle_file

    (tmp_path / "notes.png").write_text("not an image at all", encoding="utf-8")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("1", (40000, 40000)).save(tmp_path / "bomb.png", optimize=True)
    Image.new("1", (6000, 5000)).save(tmp_path / "huge.png", optimize=True)
    client = Client(server, verbose=False)
    expected = {
        "notes.png": "not an image file",
        "empty.png": "not an image file",
        "bomb.png": "bomb.png: declares more pixels than the cap",
        "huge.png": "huge.png: 6000x5000 pixels is over the cap",
    }
    for name, words in expected.items():
        result = client.predict(
            handle_file(str(tmp_path / name)), PRETRAINED, api_name="/read_upload"
        )
        message = result[-1]
        assert message.startswith("Could not read that upload:") and words in message, message
        assert len(message.splitlines()) == 1
    blank = client.predict(None, PRETRAINED, api_name="/read_drawing")
    assert blank[-1] == HINT
    assert "Traceback" not in capfd.readouterr().err


def blocky_three(cx, cy, h):
    """A "3" in the blocky hand of tests/handwriting.py, as two mouse strokes."""
    left, right, top, mid, bottom = cx - 0.25 * h, cx + 0.25 * h, cy - 0.35 * h, cy, cy + 0.35 * h
    return [
        [(left, top), (right, top), (right, mid), (right, bottom), (left, bottom)],
        [(left, mid), (right, mid)],
    ]


@pytest.mark.slow
@needs(CHROMIUM is not None, "chromium (apt-get install chromium)")
def test_browser_explains_doubts_and_learns_a_hand(tmp_path):
    """Draw a 7 and see why; draw a hash and hear "not sure"; correct five drawings, press
    Learn, and the new model is in the menu and reads the next drawing."""
    from playwright.sync_api import sync_playwright

    runs = tmp_path / "runs"
    demo, url = serve(runs)
    try:
        with sync_playwright() as p:
            browser, page, (cx, cy, h) = open_canvas(p, url, height=1400)
            stroke(
                page,
                [
                    (cx - 0.25 * h, cy - 0.35 * h),
                    (cx + 0.25 * h, cy - 0.35 * h),
                    (cx - 0.05 * h, cy + 0.38 * h),
                ],
                steps=4,  # straight lines need few moves; each costs the browser and server time
            )
            wait_for_number(page, "7")
            page.locator("#why img").wait_for()  # the saliency and occlusion maps are shown
            page.click("#clear")
            wait_for_number(page, "")
            for x in (-0.15, 0.15):  # a hash: two slanted verticals, two horizontals
                stroke(
                    page, [(cx + x * h, cy - 0.35 * h), (cx + x * h - 0.05 * h, cy + 0.35 * h)], 4
                )
            for y in (-0.12, 0.12):
                stroke(page, [(cx - 0.35 * h, cy + y * h), (cx + 0.35 * h, cy + y * h)], 4)
            wait_for_message(page, "not sure:")
            for k in range(5):
                page.click("#clear")
                wait_for_number(page, "")
                for line in blocky_three(cx + 0.02 * k * h, cy, h * (1 - 0.03 * k)):
                    stroke(page, line, steps=4)
                page.wait_for_function(
                    "() => document.querySelector('#number textarea, #number input')?.value"
                )
                page.locator("#right input").click()
                page.locator("[role=option]", has_text="3").first.click()
                page.click("#save")
                page.wait_for_function(
                    "() => document.querySelector('#teach')"
                    f"?.innerText.includes('{k + 1} drawing')",
                    timeout=30000,
                )
            page.click("#learn")
            page.wait_for_function(
                "() => document.querySelector('#teach')?.innerText.includes('Learned your')",
                timeout=240000,
            )
            chosen = page.locator("#model input").input_value()
            assert "handwriting-" in chosen
            page.click("#clear")
            wait_for_number(page, "")
            for line in blocky_three(cx, cy, h):
                stroke(page, line, steps=4)
            wait_for_message(page, f"(model {Path(chosen).name})")
            browser.close()
    finally:
        demo.close()
    saved = list((runs / "handwriting").glob("*/3/*.png"))  # one session's folder
    assert len(saved) == 5 and all(p.stat().st_size > 0 for p in saved)


def wait_for_message(page, text: str):
    page.wait_for_function(
        f"() => document.querySelector('#message')?.innerText.includes({text!r})",
        timeout=30000,
    )


def drawn_shape(lines):
    """Strokes in a unit box as the sketchpad would hold them (white ink on black, uint8)."""
    from PIL import ImageDraw

    page = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(page)
    for points in lines:
        draw.line([(x * SIZE, y * SIZE) for x, y in points], fill=255, width=18, joint="curve")
    return np.asarray(page)


CIRCLE = [(0.5 + 0.35 * np.cos(t), 0.5 + 0.35 * np.sin(t)) for t in np.linspace(0, 6.3, 40)]
SHAPES = {
    "letter A": [[(0.25, 0.85), (0.5, 0.15), (0.75, 0.85)], [(0.35, 0.55), (0.65, 0.55)]],
    "letter H": [[(0.3, 0.15), (0.3, 0.85)], [(0.7, 0.15), (0.7, 0.85)], [(0.3, 0.5), (0.7, 0.5)]],
    "hash": [
        [(0.4, 0.15), (0.35, 0.85)],
        [(0.65, 0.15), (0.6, 0.85)],
        [(0.2, 0.4), (0.8, 0.4)],
        [(0.2, 0.65), (0.8, 0.65)],
    ],
    "star": [
        [(0.5, 0.15), (0.5, 0.85)],
        [(0.2, 0.5), (0.8, 0.5)],
        [(0.25, 0.25), (0.75, 0.75)],
        [(0.75, 0.25), (0.25, 0.75)],
    ],
    "smiley": [
        CIRCLE,
        [(0.38, 0.38), (0.39, 0.4)],
        [(0.62, 0.38), (0.63, 0.4)],
        [(0.35 + 0.3 * t, 0.62 + 0.08 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 10)],
    ],
}


# A drawn H is read as a 4 (73.7%) by the shipped model, and its detector lets it pass: hand-drawn
# H's are among the letters it catches least (docs/reading.md#not-sure). Strict: when it is
# caught, this says so, and the H joins the others.
MISSED = pytest.mark.xfail(strict=True, reason="a drawn H passes for a 4 (docs/reading.md)")


@pytest.mark.parametrize(
    "shape", [pytest.param(s, marks=MISSED) if s == "letter H" else s for s in SHAPES]
)
def test_letters_and_doodles_are_answered_not_sure(reader, shape):
    *_, number, message = on_draw(sketchpad_value(drawn_shape(SHAPES[shape])), PRETRAINED, reader)
    assert message.startswith("not sure:") and f"looks most like {number}" in message


def test_the_app_and_the_cli_say_a_reading_in_the_same_words(reader, tmp_path, capsys):
    """One wording, from read.predictor.describe: the app's message for an upload is what
    `digitlab predict --multi` (which reads the way the app does) prints for the same file."""
    from conftest import run_cli

    seven = tmp_path / "seven.png"
    Image.fromarray(255 - load_split(None, False).images[0].numpy()).resize((200, 200)).save(seven)
    doodle = tmp_path / "hash.png"
    Image.fromarray(255 - drawn_shape(SHAPES["hash"])).save(doodle)
    said = []
    for path in (seven, doodle):
        code, out, err = run_cli(capsys, "predict", path, "--multi")
        assert code == 0, err
        said.append(on_upload(str(path), PRETRAINED, reader)[-1])
        assert out.strip() == f"{path}: {said[-1]}"
    assert said[0].startswith("7 (") and said[1].startswith("not sure: looks most like ")


# Serving a class: each session its own handwriting, fine-tunes one at a time, sign-in off the
# loopback, and caps on what visitors can store.


def drawing_value(digit: int, seed: int, folder: Path) -> dict:
    """A drawing in tests/handwriting.py's hand as gradio_client sends a sketchpad value."""
    from gradio_client import handle_file

    from handwriting import draw_hand

    path = folder / f"{digit}-{seed}.png"
    draw_hand(digit, np.random.default_rng(seed)).save(path)
    return {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}


@pytest.mark.slow
def test_each_session_learns_only_its_own_drawings_one_fine_tune_at_a_time(tmp_path, monkeypatch):
    """Two gradio_client sessions save drawings of different digits; each Learn trains on its
    own session's drawings only (the run's config.json says which) and adds its run to its own
    menu only, fine-tunes never overlap (a waiting one is shown its place in their queue), and
    Learns stamped with the same second get their own runs."""
    import json
    import threading
    import time

    from gradio_client import Client
    from gradio_client.utils import Status

    from digitlab.app import server as app_server

    monkeypatch.setattr(app_server, "stamp", lambda: "20260101-000000")  # one second for all
    running, most, lock, real = [0], [0], threading.Lock(), app_server.finetune

    def counted(*args, **kwargs):  # how many fine-tunes run at once
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(app_server, "finetune", counted)
    runs = tmp_path / "runs"
    demo, url = serve(runs, steps=3)
    try:
        a, b = Client(url, verbose=False), Client(url, verbose=False)
        for k in range(5):
            assert a.predict(
                drawing_value(3, k, tmp_path), "3", api_name="/save_drawing"
            ).startswith("Saved")
        for k in range(6):
            assert b.predict(
                drawing_value(5, k, tmp_path), "5", api_name="/save_drawing"
            ).startswith("Saved")
        jobs = [c.submit(PRETRAINED, api_name="/learn") for c in (a, b, a)]
        places = set()  # the places in the fine-tunes' queue that waiting sessions were shown
        while not all(job.done() for job in jobs):
            places |= {(s.code, s.rank) for s in (job.status() for job in jobs)}
            time.sleep(0.05)
        learned = [job.result() for job in jobs]
        # A direct API call naming another session's run (or any folder) is refused by the
        # session's own menu (Gradio checks a value against the choices this session was given);
        # its own run reads.
        own, other = str(Path(learned[1][0]["value"])), str(Path(learned[0][0]["value"]))
        for name in (other, str(tmp_path)):
            with pytest.raises(Exception, match="not in the list of choices"):
                b.predict(drawing_value(3, 9, tmp_path), name, api_name="/read_drawing")
        mine = b.predict(drawing_value(5, 9, tmp_path), own, api_name="/read_drawing")
        assert mine[-1].endswith(f"(model {Path(own).name})"), mine[-1]
    finally:
        demo.close()
    assert all(text.startswith("Learned your handwriting") for _, text in learned), learned
    made = [Path(menu["value"]) for menu, _ in learned]
    assert len(set(made)) == 3 and all((run / "model.safetensors").exists() for run in made)
    assert all("-20260101-000000-" in run.name for run in made)
    assert most[0] == 1
    assert {rank for code, rank in places if code == Status.IN_QUEUE} & {0, 1}, places
    # Each session's menu: the shipped model and its own runs, never the other session's.
    menus = [[value for value, _ in menu["choices"]] for menu, _ in learned]
    assert menus[1] == [PRETRAINED, str(made[1])]
    first, second = sorted([menus[0], menus[2]], key=len)  # session a's two Learns, either order
    assert len(first) == 2 and set(second) == {PRETRAINED, str(made[0]), str(made[2])}
    assert first[0] == PRETRAINED and first[1] in second
    hands = [
        json.loads((run / "config.json").read_text(encoding="utf-8"))["handwriting"] for run in made
    ]
    assert [h["per_label"] for h in hands] == [{"3": 5}, {"5": 6}, {"3": 5}]
    assert hands[0]["dir"] == hands[2]["dir"] != hands[1]["dir"]


def test_the_model_menu_shows_a_sessions_own_runs_not_others(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.safetensors").write_bytes(b"")
    reader = Reader(runs_dir=tmp_path)
    (tmp_path / "later").mkdir()  # another visitor's run, made after the start
    (tmp_path / "later" / "model.safetensors").write_bytes(b"")
    assert reader.choices() == [PRETRAINED, str(tmp_path / "old")]
    assert reader.choices([str(tmp_path / "mine")]) == [
        PRETRAINED,
        str(tmp_path / "old"),
        str(tmp_path / "mine"),
    ]


def test_sign_in_refuses_anonymous_requests_and_answers_signed_in_ones(tmp_path):
    import httpx
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AuthenticationError

    demo, url = serve(tmp_path / "runs", accounts=[("teacher", "s3cret")])
    try:
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False)
        with pytest.raises((AuthenticationError, ValueError), match="Could not login"):
            Client(url, verbose=False, auth=("teacher", "wrong"))
        # Past the client: the server itself refuses a request without the sign-in cookie.
        anonymous = httpx.post(f"{url}gradio_api/upload", files={"files": ("a.png", b"x")})
        assert anonymous.status_code in (401, 403), anonymous.status_code
        path = tmp_path / "seven.png"
        Image.fromarray(255 - load_split(None, False).images[0].numpy()).save(path)
        client = Client(url, verbose=False, auth=("teacher", "s3cret"))
        number = client.predict(handle_file(str(path)), PRETRAINED, api_name="/read_upload")[-2]
        assert number == "7"
    finally:
        demo.close()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 lets anyone on the network"),
        (["--host", "192.168.1.20"], "add --auth USER:PASSWORD"),
        (["--host", "0.0.0.0", "--auth", "teacher"], "--auth: expected USER:PASSWORD"),
        (["--auth", "a:b", "--no-auth"], "--no-auth contradicts"),
        (["--host", "0.0.0.0", "--auth-file", "missing.txt"], "cannot read it"),
    ],
)
def test_serving_off_the_loopback_needs_sign_in_or_no_auth(flags, words, capsys, monkeypatch):
    """Refused before any server starts (launch would fail the test if reached)."""
    from conftest import assert_one_line_error, run_cli
    from digitlab.app import server as app_server

    monkeypatch.setattr(app_server, "launch", lambda *a: pytest.fail("a server was started"))
    code, _, err = run_cli(capsys, "app", *flags)
    assert_one_line_error(code, err, 1, words)


def test_auth_file_holds_one_pair_a_line(tmp_path):
    from digitlab.app.server import sign_in
    from digitlab.errors import DigitlabError

    accounts = tmp_path / "class.txt"
    accounts.write_text("ana:pw1\n\nben:pw:2\n", encoding="utf-8")
    assert sign_in("0.0.0.0", None, str(accounts), False) == [("ana", "pw1"), ("ben", "pw:2")]
    assert sign_in("127.0.0.1", None, None, False) is None
    assert sign_in("0.0.0.0", None, None, True) is None
    accounts.write_text("ana\n", encoding="utf-8")
    with pytest.raises(DigitlabError, match="expected USER:PASSWORD"):
        sign_in("0.0.0.0", None, str(accounts), False)


def test_an_oversized_upload_is_refused_in_one_line(server, tmp_path):
    import httpx
    from gradio_client import Client, handle_file

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (11 * 1024 * 1024))  # over MAX_UPLOAD (10 MB)
    with pytest.raises(ValueError, match="exceeds the maximum file size of 10485760 bytes") as e:
        Client(server, verbose=False).predict(
            handle_file(str(big)), PRETRAINED, api_name="/read_upload"
        )
    assert len(str(e.value).splitlines()) == 1
    # Past the client's own check: the server refuses it before storing it.
    with big.open("rb") as f:
        reply = httpx.post(f"{server}gradio_api/upload", files={"files": ("big.png", f)})
    assert reply.status_code == 413 and "maximum allowed size" in reply.text, reply.text


def test_saved_drawings_are_capped_per_session_and_on_disk(tmp_path, monkeypatch):
    from gradio_client import Client

    from digitlab.train import calibration

    monkeypatch.setattr(calibration, "warm_up", lambda: None)  # no Learn here: nothing to draw
    demo, url = serve(tmp_path / "a", max_drawings=2)
    try:
        client = Client(url, verbose=False)
        said = [
            client.predict(drawing_value(1, k, tmp_path), "1", api_name="/save_drawing")
            for k in range(3)
        ]
        other = Client(url, verbose=False).predict(
            drawing_value(1, 9, tmp_path), "1", api_name="/save_drawing"
        )
    finally:
        demo.close()
    assert said[1].startswith("Saved as a 1. 2 drawing(s)") and other.startswith("Saved")
    assert said[2] == "Not saved: 2 drawings is this session's limit; press Learn with them."
    demo, url = serve(tmp_path / "b", max_disk_mb=0.000_001)  # one drawing fills it
    try:
        client = Client(url, verbose=False)
        said = [
            client.predict(drawing_value(1, k, tmp_path), "1", api_name="/save_drawing")
            for k in range(2)
        ]
    finally:
        demo.close()
    assert said[0].startswith("Saved") and said[1].startswith("Not saved: the saved drawings use")


def test_a_forged_session_never_becomes_a_path(tmp_path):
    from types import SimpleNamespace

    from digitlab.app.server import Classroom, save_drawing

    room = Classroom(tmp_path / "hw")
    value = sketchpad_value(255 * np.eye(SIZE, dtype=np.uint8))  # a stroke: something to save
    said = save_drawing(value, "1", room, SimpleNamespace(session_hash="../../etc"))
    assert said == "Could not save: this page has no session; reload it"
    assert not (tmp_path / "hw").exists()


def test_a_saved_drawing_starts_drawing_the_outliers_that_learn_needs(tmp_path, monkeypatch):
    """Learn refits the "not sure" detector against drawn outliers; the first save starts
    drawing them in the background, so Learn does not wait for them."""
    from types import SimpleNamespace

    from digitlab.app import server

    started = []
    monkeypatch.setattr(server.calibration, "warm_up", lambda: started.append(True))
    room = server.Classroom(tmp_path / "hw")
    value = sketchpad_value(255 * np.eye(SIZE, dtype=np.uint8))
    said = server.save_drawing(value, "1", room, SimpleNamespace(session_hash="abc123"))
    assert said.startswith("Saved as a 1") and started == [True]


@pytest.mark.slow
def test_the_app_says_where_it_listens_and_whether_sign_in_is_on(tmp_path):
    """`digitlab app` for real (on 127.0.0.1, in its own process): its start line."""
    import subprocess
    import sys
    import threading

    port = free_port()
    command = [sys.executable, "-m", "digitlab", "app", "--port", str(port), "--auth", "t:pw"]
    src = str(Path(__import__("digitlab").__file__).parents[1])  # this checkout, from any cwd
    env = {**__import__("os").environ, "PYTHONPATH": src}
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    watchdog = threading.Timer(180, proc.kill)  # never hang the suite on a silent server
    watchdog.start()
    try:
        said = ""
        for line in proc.stdout:
            said = line.strip()
            if said.startswith("digitlab app:"):
                break
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(timeout=30)
    assert said == f"digitlab app: listening on http://127.0.0.1:{port}/, sign-in on (1 account(s))"
