"""The pictures of a run: how it learned, where it fails, what it sees.

Every function draws one figure with matplotlib's Agg backend (no screen needed) and writes it as
a PNG; `write_run_pictures` makes all of them for a trained model.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from digitlab.read.pictures import beside, caption, stack  # noqa: E402

DPI = 100
GAP = 3  # white pixels between feature maps in the mosaic
MISTAKE = "#d62728"
RIGHT = "#2a7f3f"


def smooth(values, span: float = 0.02) -> np.ndarray:
    """Exponential moving average with bias correction, like TensorBoard's smoothing, averaging
    over about `span` of the run (a fixed weight lagged a short run's falling loss by a fifth of
    its steps: the speedrun has 235)."""
    weight = 1 - 1 / max(1.0, span * len(values))
    out, average = [], 0.0
    for i, v in enumerate(values, 1):
        average = weight * average + (1 - weight) * v
        out.append(average / (1 - weight**i))
    return np.array(out)


def plain_log_axis(ax) -> None:
    """Log-scale y axis labelled 0.05, 0.1, 2 rather than 5 x 10^-2."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    label = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(label)
    low, high = ax.get_ylim()
    # Label the in-between ticks only when the curve spans less than a decade: else they crowd.
    ax.yaxis.set_minor_formatter(label if high < 10 * low else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def learning_curves(
    metrics: list[dict], path: Path, title: str = "", reference: list[dict] | None = None
) -> Path:
    """learning_curves_figure written as a PNG."""
    return save(learning_curves_figure(metrics, title, reference), path)


def learning_curves_figure(metrics: list[dict], title: str = "", reference=None):
    """Training loss per step (raw and smoothed) and accuracy per epoch, side by side; with a
    `reference` run's metrics (a learner's layers trained again on PyTorch's) both runs, the
    learner's as "your layers" and the reference as "PyTorch's layers". The figure."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    # The reference dashed, drawn over the learner's: where the two agree, both still show.
    runs = [(metrics, "#1f77b4", "your layers", "-")]
    if reference:
        runs.append((reference, "#ff7f0e", "PyTorch's layers", "--"))
    for k, (run, colour, name, dash) in enumerate(runs):
        loss_curve(ax_loss, run, colour, name if reference else "", dash)
        accuracy_points(ax_acc, run, colour, f"{name}, " if reference else "", -24 * k)
    plain_log_axis(ax_loss)
    ax_loss.set(
        xlabel="training step", ylabel="cross-entropy loss (log scale)", title="training loss"
    )
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    every = [r for run, *_ in runs for r in run]
    lowest = min(100 * r.get(k, 1.0) for r in every for k in ("test_accuracy", "val_accuracy"))
    ax_acc.set_ylim(max(0, lowest - 2), 100)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy after each epoch")
    # Epochs are whole numbers; a one-epoch run gets an axis around its one point, not 0.945..1.05.
    ax_acc.set_xlim(0.5, max(r["epoch"] for r in every) + 0.5)
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax_acc.legend(loc="lower right")
    ax_acc.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def loss_curve(ax, metrics: list[dict], colour: str, name: str = "", dash: str = "-") -> None:
    """A run's loss per step, faint, and smoothed; labelled "per step" and "smoothed", or with
    a name, the smoothed curve only, by the name."""
    losses = [v for record in metrics for v in record["step_loss"]]
    steps = np.arange(1, len(losses) + 1)
    raw = "_nolegend_" if name else "per step"
    ax.plot(steps, losses, color=colour, alpha=0.25, linewidth=0.8, label=raw)
    ax.plot(steps, smooth(losses), dash, color=colour, linewidth=2, label=name or "smoothed")


def accuracy_points(ax, metrics: list[dict], colour: str, prefix: str = "", nudge: int = 0):
    """A run's test and validation accuracy per epoch, the last value written beside its point
    (`nudge` points lower). Runs with a validation split read the test set only after the last
    epoch: one point."""
    for key, label, style in (
        ("test_accuracy", "test", "o-"),
        ("val_accuracy", "validation", "s--"),
    ):
        points = [(r["epoch"], 100 * r[key]) for r in metrics if key in r]
        if not points:
            continue
        ax.plot(*zip(*points, strict=True), style, color=colour, label=prefix + label)
        ax.annotate(
            f"{points[-1][1]:.2f}%",
            points[-1],
            textcoords="offset points",
            xytext=(0, (8 if key == "test_accuracy" else -14) + nudge),
            ha="center",
            color=colour,
        )


def confusion_heatmap(confusion, path: Path, title: str = "", names=None) -> Path:
    """The confusion matrix as a heat map with the count in every cell; `names` label the
    classes (default: their numbers)."""
    matrix = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    # Log colour scale: the diagonal holds ~1000s, the mistakes single digits.
    image = ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            dark = np.log1p(count) > 0.6 * np.log1p(matrix.max())
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    classes = range(len(matrix))
    ax.set_xticks(classes)
    ax.set_yticks(classes)
    if names:
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_yticklabels(names)
    ax.set(
        xlabel="predicted class",
        ylabel="true class",
        title=title or f"confusion matrix ({matrix.trace()} of {matrix.sum()} right)",
    )
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return save(fig, path)


def digit_grid(images, titles, colors, path: Path, title: str, columns: int = 8) -> Path:
    """Digits (N, 28, 28) in a grid, each with a coloured caption."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.3, rows * 1.5 + 0.6), constrained_layout=True
    )
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, image, text, color in zip(
        np.atleast_1d(axes).ravel(), images, titles, colors, strict=False
    ):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=255 if image.max() > 1 else 1)
        ax.set_title(text, color=color, fontsize=9)
        if color == MISTAKE:
            for side in ax.spines.values():
                side.set(visible=True, color=MISTAKE, linewidth=2)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    return save(fig, path)


def predictions_grid(
    images, labels, predicted, path: Path, count: int = 40, classes=None, what: str = "digits"
) -> Path:
    """The first test images with predicted and true labels; mistakes framed in red.
    classes: names of the classes (default: the class numbers); what: "digits" or "images"."""
    images, labels, predicted = images[:count], labels[:count], predicted[:count]
    name = (lambda c: classes[c]) if classes else str
    sep = "\n" if classes else " "  # class names are long: the true one on a line of its own
    titles = [
        f"{name(p)}{sep}(true {name(t)})" if p != t else name(p)
        for p, t in zip(predicted, labels, strict=True)
    ]
    colors = [RIGHT if p == t else MISTAKE for p, t in zip(predicted, labels, strict=True)]
    wrong = sum(c == MISTAKE for c in colors)
    return digit_grid(
        images,
        titles,
        colors,
        path,
        f"first {len(images)} test {what}: prediction (red: {wrong} mistake{'s' * (wrong != 1)})",
    )


def confident_mistakes(
    images, labels, probabilities, path: Path, count: int = 24, classes=None
) -> Path:
    """The mistakes the model was surest of, with its confidence and the true label."""
    name = (lambda c: classes[c]) if classes else str
    sep = "\n" if classes else " "
    predicted = probabilities.argmax(1)
    confidence = probabilities.max(1).values
    wrong = torch.nonzero(predicted != labels).flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:count]
    titles = [
        f"{name(int(predicted[i]))} ({100 * confidence[i]:.0f}%){sep}true {name(int(labels[i]))}"
        for i in order
    ]
    return digit_grid(
        images[order].numpy(),
        titles,
        [MISTAKE] * len(order),
        path,
        f"the {len(order)} most confident mistakes (of {len(wrong)})",
    )


def filters(weight: torch.Tensor, path: Path) -> Path:
    """The first convolution's filters (O, 1, KH, KW), each on its own symmetric colour scale."""
    weight = weight.detach().float().cpu()[:, 0]
    columns = 8
    rows = -(-len(weight) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.2, rows * 1.3 + 0.6), constrained_layout=True
    )
    for ax in axes.ravel():
        ax.axis("off")
    for k, (ax, w) in enumerate(zip(axes.ravel(), weight, strict=False)):
        limit = w.abs().max().item() or 1.0
        ax.imshow(w.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"filter {k}", fontsize=8)
    fig.suptitle("first layer's filters (red: positive weights, blue: negative)")
    return save(fig, path)


def feature_mosaic(
    maps: dict[str, torch.Tensor], columns: int = 16, cell: int = 48, most: int = 32
) -> np.ndarray:
    """The channels of every conv block ({name: (C, H, W)}, the first `most` of each), tiled and
    coloured with viridis, each block under a caption: an (H, W, 3) uint8 image. The app shows
    it as it is; feature_maps.png puts the input beside it."""
    # viridis as a 256-entry lookup table: indexing it is far faster than calling the colormap.
    lut = (255 * matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3]).astype(np.uint8)
    bands = []
    for name, block in maps.items():
        channels, h, w = block.shape
        shown = (
            f"{channels} channels" if channels <= most else f"first {most} of {channels} channels"
        )
        bands += [caption(f"{name}: {shown}, {h}x{w}"), tiles(block[:most], lut, columns, cell)]
    return stack(bands)


def tiles(block: torch.Tensor, lut: np.ndarray, columns: int, cell: int) -> np.ndarray:
    """Maps (C, H, W), each scaled to its own maximum, in rows of `columns`, enlarged to about
    `cell` pixels: (rows * (H*zoom + GAP), columns * (W*zoom + GAP), 3) uint8."""
    _, h, w = block.shape
    zoom = max(1, cell // max(h, w))
    rows = -(-len(block) // columns)
    # The gaps between maps stay white, so neighbouring maps never run together (a gap in the
    # colour of zero would).
    tile = np.full((rows * (h * zoom + GAP), columns * (w * zoom + GAP), 3), 255, np.uint8)
    for k, fmap in enumerate(block.numpy()):
        fmap = fmap / fmap.max() if fmap.max() > 0 else fmap
        r, c = divmod(k, columns)
        y, x = r * (h * zoom + GAP), c * (w * zoom + GAP)
        big = fmap.repeat(zoom, 0).repeat(zoom, 1)
        tile[y : y + h * zoom, x : x + w * zoom] = lut[(255 * big).astype(np.uint8)]
    return tile


def feature_maps(predictor, image: torch.Tensor, path: Path, label: str = "") -> Path:
    """One image (H, W), uint8 or in [0, 1], enlarged, beside the output of every conv block for
    it (feature_mosaic), under a title."""
    from PIL import Image

    from digitlab.data.mnist import to_unit

    mosaic = feature_mosaic(predictor.block_outputs(image))
    zoom = max(1, min(4, (mosaic.shape[0] - 18) // image.shape[0]))
    ink = (255 * (1 - to_unit(image).numpy())).astype(np.uint8)  # dark ink on white
    digit = np.repeat(np.kron(ink, np.ones((zoom, zoom), np.uint8))[..., None], 3, axis=2)
    left = stack([caption(f"input {label}".strip()), digit])
    title = caption("what each conv block sees: its output channels for this image", 28, 14)
    picture = stack([title, beside([left, mosaic], gap=12)], gap=6)
    Image.fromarray(np.pad(picture, ((4, 4), (8, 8), (0, 0)), constant_values=255)).save(path)
    return path


def write_run_pictures(
    predictor, metrics: list[dict], test, out: Path, reference: list[dict] | None = None
) -> list[Path]:
    """All pictures of a trained run (a read.predictor.Predictor) into `out`; their paths. With
    `reference`, the metrics of the same run on PyTorch's layers, the learning curves show both."""
    from digitlab.nets.evaluation import classification_report

    config, model = predictor.config, predictor.model
    classes = config.get("dataset", {}).get("classes")
    what = "images" if classes else "digits"
    probabilities = predictor.probabilities(test.images)
    predicted = probabilities.argmax(1)
    report = classification_report(predicted, test.labels)
    name = f"{config['model']} ({config.get('backend', 'torch')}, {config.get('optimizer', '')})"
    images = test.images.numpy()
    paths = []
    if metrics:
        paths.append(learning_curves(metrics, out / "learning_curves.png", name, reference))
    paths.append(
        confusion_heatmap(
            report["confusion"],
            out / "confusion_matrix.png",
            f"{name}: confusion matrix, accuracy {100 * report['accuracy']:.2f}%",
            classes,
        )
    )
    paths.append(
        predictions_grid(
            images,
            test.labels.tolist(),
            predicted.tolist(),
            out / "predictions.png",
            classes=classes,
            what=what,
        )
    )
    paths.append(
        confident_mistakes(
            test.images, test.labels, probabilities, out / "confident_mistakes.png", classes=classes
        )
    )
    first_conv = next(m for m in model.modules() if hasattr(m, "weight") and m.weight.dim() == 4)
    paths.append(filters(first_conv.weight, out / "filters.png"))
    label = int(test.labels[0])
    paths.append(
        feature_maps(
            predictor,
            test.images[0],
            out / "feature_maps.png",
            f"(label {classes[label] if classes else label})",
        )
    )
    return paths
