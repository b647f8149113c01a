"""What is wrong with a tensor, in words a learner acts on.

`compare(mine, ref, ...)` returns None when `mine` matches PyTorch's `ref` within float32's
rounding, else a Failure: the max absolute and relative error, how many elements are wrong, a map
of where, and a diagnosis read from the pattern (a constant factor, a sign, the border, windows
that overlap, ...). Pure tensor code: it runs in the child process that runs the learner's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from digitlab.workbench.messages import Text, Texts, as_data

# float32 sums of a few hundred products round at about 1e-6 of their size; 1e-4 of the
# largest value cannot be tripped by rounding, and every bug in the tests is far above it.
RTOL32 = 1e-4
RTOL64 = 1e-9


@dataclass
class Failure:
    tensor: str
    message: str | Text  # what is wrong, one line
    diagnosis: str | Text = ""  # the likely bug, when the pattern names one
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    wrong: int = 0
    total: int = 0
    where: list = field(default_factory=list)  # (H, W) or (rows, cols) of bools: wrong there

    def as_dict(self) -> dict:
        """Its fields, the texts in English; "texts" keeps them as data, to be shown in another
        language (workbench.messages)."""
        texts = {k: as_data(getattr(self, k)) for k in ("message", "diagnosis")}
        return {
            **self.__dict__,
            "message": str(self.message),
            "diagnosis": str(self.diagnosis),
            "texts": texts,
        }


def tolerance(ref: torch.Tensor, rtol: float = RTOL32) -> float:
    return rtol * max(1.0, ref.abs().max().item() if ref.numel() else 0.0)


def close(a, b, rtol: float = RTOL32) -> bool:
    """a matches b (same shape, finite where b is) within `rtol` of b's scale."""
    if not torch.is_tensor(a) or a.shape != b.shape:
        return False
    a, b = a.detach().double(), b.detach().double()
    return bool((a - b).abs().max() <= tolerance(b, rtol)) if b.numel() else True


def where_map(wrong: torch.Tensor) -> torch.Tensor:
    """A 2-D view of wrong positions: (N, C, H, W) -> (H, W) (any image, any channel);
    (N, F) stays; 1-D -> one row; a scalar -> 1x1."""
    if wrong.dim() >= 3:
        return wrong.flatten(0, -3).any(0)
    if wrong.dim() == 1:
        return wrong[None]
    if wrong.dim() == 0:
        return wrong.view(1, 1)
    return wrong


def text_map(where, limit: int = 32) -> list[str]:
    """Rows of '#' (wrong) and '.' (right), at most `limit` by `limit`."""
    rows = [row[:limit] for row in where[:limit]]
    lines = ["".join("#" if v else "." for v in row) for row in rows]
    if len(where) > limit or (where and len(where[0]) > limit):
        lines.append(f"(first {limit}x{limit} shown)")
    return lines


def compare(mine, ref: torch.Tensor, tensor: str, ctx: dict, rtol: float = RTOL32):
    """None if `mine` is right, else a Failure. ctx may hold alternatives the diagnosis tries:
    ctx["alternatives"] {bug description: the tensor that bug would give}, ctx["batch"],
    ctx["padding"], ctx["stride"], ctx["overlap"] (an (H, W) count of windows per pixel)."""
    if mine is None or not torch.is_tensor(mine) or mine.shape != ref.shape:
        return form_failure(mine, ref, tensor, ctx)
    return value_failure(mine, ref, tensor, ctx, rtol)


def form_failure(mine, ref: torch.Tensor, tensor: str, ctx: dict) -> Failure:
    """`mine` is missing, not a tensor, or of another shape than `ref`."""
    if mine is None:
        return Failure(
            tensor, Text("{tensor} is missing (None)", tensor=tensor), missing_hint(tensor)
        )
    if not torch.is_tensor(mine):
        return Failure(
            tensor,
            Text("{tensor} is a {kind}, not a tensor", tensor=tensor, kind=type(mine).__name__),
            Text("return a torch.Tensor"),
        )
    if mine.shape != ref.shape:
        return Failure(
            tensor,
            Text(
                "your {tensor} is {mine}, PyTorch's is {ref}",
                tensor=tensor,
                mine=shape(mine),
                ref=shape(ref),
            ),
            shape_diagnosis(mine, ref, tensor, ctx),
        )
    raise ValueError("form_failure: the tensor has the right form")


def value_failure(mine, ref, tensor: str, ctx: dict, rtol: float) -> Failure | None:
    """None if `mine`'s values match `ref`'s (the same shape), else what is wrong with them."""
    a, b = mine.detach().double(), ref.detach().double()
    if not torch.isfinite(a).all() and torch.isfinite(b).all():
        bad = ~torch.isfinite(a)
        return Failure(
            tensor,
            Text(
                "{tensor} holds NaN or inf in {wrong} of {total} elements",
                tensor=tensor,
                wrong=int(bad.sum()),
                total=a.numel(),
            ),
            Text("exp() overflowed: subtract each row's max before exp (log-sum-exp)")
            if ctx.get("large_logits")
            else Text("NaN or inf where PyTorch's numbers are finite"),
            wrong=int(bad.sum()),
            total=a.numel(),
            where=where_map(bad).tolist(),
        )
    diff = (a - b).abs()
    tol = tolerance(b, rtol)
    if diff.max() <= tol:
        return None
    wrong = diff > tol
    return Failure(
        tensor,
        Text(
            "{tensor} is wrong in {wrong} of {total} elements",
            tensor=tensor,
            wrong=int(wrong.sum()),
            total=a.numel(),
        ),
        value_diagnosis(a, b, wrong, tensor, ctx),
        max_abs_error=diff.max().item(),
        max_rel_error=(diff / b.abs().clamp(min=1e-12)).max().item(),
        wrong=int(wrong.sum()),
        total=a.numel(),
        where=where_map(wrong).tolist(),
    )


def shape(t) -> str:
    return str(tuple(t.shape))


def missing_hint(tensor: str) -> Text:
    if tensor.startswith("dL/dW") or tensor.startswith("dL/db"):
        return Text("backward must put the parameter's gradient in .grad")
    return Text("return it from the method")


TRANSPOSED = Text("transposed: swap the two dimensions (dW of Linear is gy^T @ x, (out, in))")


def shape_diagnosis(mine, ref, tensor: str, ctx: dict) -> Text:
    ms, rs = tuple(mine.shape), tuple(ref.shape)
    squeezed = tuple(d for d in ms if d != 1) == tuple(d for d in rs if d != 1)
    if squeezed:
        return Text(
            "the same numbers with an extra or missing dimension of 1: {mine} only matches {ref} "
            "by broadcasting, which hides bugs; reshape to PyTorch's shape (sum over the batch "
            "for a bias gradient)",
            mine=str(ms),
            ref=str(rs),
        )
    if len(ms) == 2 and ms == rs[::-1]:
        return TRANSPOSED
    if mine.numel() == ref.numel():
        return Text("the right number of elements in the wrong shape: a missing reshape or view")
    if tensor == "output" and len(ms) == 4 and len(rs) == 4 and ms[:2] == rs[:2]:
        pad, stride, size = ctx.get("padding", 0), ctx.get("stride", 1), ctx.get("spatial")
        hints = []
        forward = ctx.get("forward", "")
        if size and pad and ms[2:] == ctx.get("unpadded"):
            hints.append(Text("padding {pad} looks ignored", pad=pad))
        if size and stride > 1 and ms[2:] == ctx.get("unstrided"):
            hints.append(Text("stride {stride} looks ignored", stride=stride))
        if size and pad and stride > 1 and ms[2:] == ctx.get("neither"):
            hints.append(
                Text("padding {pad} and stride {stride} both look ignored", pad=pad, stride=stride)
            )
        if hints and "conv2d(" in forward and "padding" not in forward:
            hints.append(
                Text(
                    "your forward calls self.conv2d(input, weight, bias) and so gets conv2d's "
                    "defaults (stride 1, padding 0): pass stride=self.stride[0], "
                    "padding=self.padding[0]"
                )
            )
        if hints:
            return Texts(hints)
        return Text("the height and width differ: check how padding and stride size the output")
    if tensor == "dL/dx" and ctx.get("padding") and len(ms) == 4 and ms[2:] == ctx.get("padded"):
        return crop_hint(ctx["padding"])
    return Text("check the shape each step produces against the docstring's shapes")


def crop_hint(p: int) -> Text:
    if p == 1:
        return Text(
            "the padded input's gradient: crop the padding off (1 pixel on each side: "
            "dxp[:, :, 1:-1, 1:-1])"
        )
    return Text(
        "the padded input's gradient: crop the padding off ({p} pixels on each side: "
        "dxp[:, :, {p}:-{p}, {p}:-{p}])",
        p=p,
    )


def value_diagnosis(a, b, wrong, tensor: str, ctx: dict) -> Text | str:
    """The likeliest bug behind wrong values of the right shape, or "" when none fits."""
    for description, alternative in ctx.get("alternatives", {}).items():
        if alternative is not None and close(a, alternative.double()):
            return description
    if a.dim() == 2 and a.shape[0] == a.shape[1] and close(a, b.t()):
        return TRANSPOSED
    bb = (b * b).sum()
    if bb > 0:
        r = ((a * b).sum() / bb).item()
        if close(a, r * b, 1e-6) and abs(r - 1) > 1e-3:
            return factor_diagnosis(r, ctx.get("batch"))
    if tensor == "dL/dx" and overwritten(a, b, wrong, ctx):
        return Text(
            "only pixels that several windows share are wrong, and each holds what one of its "
            "windows sends back: overlapping windows' gradients overwrite each other; add them "
            "(+=) instead"
        )
    pad = ctx.get("padding", 0)
    if pad and a.dim() == 4 and tensor in ("output", "dL/dx"):
        grid = where_map(wrong)
        inner = (
            grid[pad:-pad, pad:-pad]
            if grid.shape[0] > 2 * pad and grid.shape[1] > 2 * pad
            else None
        )
        if inner is not None and not inner.any():
            return Text(
                "only the border ({pad} pixels deep, the padding's reach) is wrong: check the "
                "padding",
                pad=pad,
            )
    if (a.sign() == -b.sign()).all():
        return Text("the sign looks flipped")
    return ""


def overwritten(a, b, wrong, ctx: dict) -> bool:
    """dL/dx `a` is wrong only at pixels several windows share (ctx["overlap"]), and each of
    those holds exactly what one of its windows sends back (ctx["contributions"], unfold's
    layout): the signature of = where += is meant, whatever the order of the writes."""
    overlap, cols = ctx.get("overlap"), ctx.get("contributions")
    if overlap is None or cols is None or a.dim() != 4:
        return False
    grid = where_map(wrong)
    if grid.shape != overlap.shape or not bool((overlap[grid] > 1).all()):
        return False
    k, s, p = ctx["kernel"], ctx["stride"], ctx["padding"]
    mine = torch.nn.functional.unfold(a, k, padding=p, stride=s)
    if mine.shape != cols.shape:
        return False
    same = ((mine - cols).abs() <= tolerance(b)).double()
    held = torch.nn.functional.fold(same, a.shape[2:], k, padding=p, stride=s)
    return bool((held[wrong] >= 1).all())


def factor_diagnosis(r: float, batch: int | None) -> Text:
    if abs(r) < 1e-12:
        return Text("it is all zeros")
    if abs(r + 1) < 1e-3:
        return Text("the sign is flipped (a - b where b - a is meant, or a missing minus)")
    if batch and batch > 1 and abs(r - batch) < 1e-3 * batch:
        return Text(
            "{batch} times too large: the 1/N of the mean over the batch (N = {batch}) is missing",
            batch=batch,
        )
    if batch and batch > 1 and abs(r - 1 / batch) < 1e-3 / batch:
        return Text(
            "{batch} times too small: divided by the batch size (N = {batch}) once too often",
            batch=batch,
        )
    if abs(r - 2) < 1e-3:
        return Text("twice PyTorch's value: a factor 2 (a value counted twice, or a stray 2)")
    if abs(r - 0.5) < 1e-3:
        return Text("half PyTorch's value: a factor 2 (a value counted twice, or a stray 2)")
    return Text("off by a constant factor {r:.4g}", r=r)
