"""The report of `digitlab check`: text for a learner, JSON for tools, PNG maps.

Built from workbench.layercheck's result (check_file, check_classes or check_scratch); nothing
here runs the learner's code.
"""

from __future__ import annotations

import re
from pathlib import Path

from digitlab.workbench.diagnose import RTOL32, RTOL64, text_map

INTERFACES = {
    "digitlab": "digitlab's interface: backward(grad_out) returns dL/dx, adds into .grad",
    "template": "the recruitment template's: backward(ones) sets .grad, returns dL/dx",
    "torch.optim": "torch.optim's interface: zero_grad(), step()",
}


def by_layer(result: dict) -> dict[str, list[dict]]:
    layers: dict[str, list[dict]] = {name: [] for name in result["found"]}
    for row in result["rows"]:
        layers.setdefault(row["layer"], []).append(row)
    return layers


def as_json(result: dict) -> dict:
    """{"layers": [{"name", "interface", "ok", "cases": [{"case", "ok", "tensor",
    "max_abs_error", "diagnosis", ...}]}], "ok"}."""
    layers = []
    for name, rows in by_layer(result).items():
        cases = []
        for row in rows:
            first = row["failures"][0] if row["failures"] else {}
            cases.append(
                {
                    "case": row["case"],
                    "ok": row["ok"],
                    "tensor": first.get("tensor"),
                    "max_abs_error": first.get("max_abs_error"),
                    "diagnosis": first.get("diagnosis") or first.get("message"),
                    "not_written": bool(row.get("not_written")),
                    "failures": row["failures"],
                    "traceback": row.get("traceback"),
                    "note": row.get("note", ""),
                }
            )
        layers.append(
            {
                "name": name,
                "interface": result["found"].get(name),
                "ok": all(c["ok"] for c in cases),
                "cases": cases,
            }
        )
    return {
        "layers": layers,
        "missing": result["missing"],
        "output_lines": result["output_lines"],
        "ok": result["ok"],
    }


def format_report(result: dict, show_output: bool = False, lang: str = "en") -> list[str]:
    """The report a learner reads: per class, per case, what is wrong, where and why; with
    `show_output`, what their code printed first."""
    found = result["found"]
    lines = [
        f"checking {result['path']} against PyTorch",
        f"(in float32, each tensor within {RTOL32:g} of its largest value, in float64 within "
        f"{RTOL64:g}: rounding cannot trip that, a bug does)",
        "found: " + ", ".join(f"{n} ({found[n]})" for n in found),
    ]
    if result["missing"]:
        lines.append(
            "not in the file: " + ", ".join(result["missing"]) + " (digitlab.scratch's are used "
            "for those when you train)"
        )
    if result["output_lines"] and show_output:
        lines.append(f"your code printed {result['output_lines']} lines:")
        lines += [f"  | {line}" for line in result.get("output", "").splitlines()]
    elif result["output_lines"]:
        first = result["first_output"][0][:80] if result["first_output"] else ""
        lines.append(
            f"your code printed {result['output_lines']} lines (kept out of this report; the "
            f"first: {first!r}; --show-output shows them)"
        )
    for name, rows in by_layer(result).items():
        wrong = sum(not r["ok"] and not r.get("not_written") for r in rows)
        todo = sum(bool(r.get("not_written")) for r in rows)
        verdict = (
            "all ok"
            if not wrong and not todo
            else ", ".join(
                part
                for part in (
                    f"{wrong} of {len(rows)} cases wrong" if wrong else "",
                    f"{todo} not written yet" if todo else "",
                )
                if part
            )
        )
        lines += ["", f"{name} ({INTERFACES.get(found.get(name), found.get(name))}): {verdict}"]
        shown = set()
        for row in rows:
            lines += case_lines(row, shown)
    lines += ["", summary(result)]
    return lines


def case_lines(row: dict, shown: set) -> list[str]:
    if row["ok"]:
        note = [f"        note: {row['note']}"] if row.get("note") else []
        return [f"  ok    {row['case']}", *note]
    if row.get("skipped"):
        return [f"  SKIP  {row['case']}: {row['failures'][0]['message']}"]
    mark = "TODO " if row.get("not_written") else "FAIL "
    lines = [f"  {mark} {row['case']}"]
    said = (tuple(row.get("traceback") or ()), row["failures"][0]["diagnosis"])
    if row.get("not_written") and said in shown:
        return [
            f"  {mark} {row['case']}: {row['failures'][0]['tensor']} not written yet (as above)"
        ]
    shown.add(said)
    first = row["failures"][0]
    cause = ("cause", first["tensor"], first["diagnosis"])
    if first["diagnosis"] and cause in shown:  # the same bug again: one line, not the block
        return [f"  {mark} {row['case']}: {first['message']} (same as above)"]
    shown.add(cause)
    for failure in row["failures"]:
        lines.append(f"        {failure['message']}")
        if failure.get("max_abs_error") is not None:
            lines.append(
                f"        max abs error {failure['max_abs_error']:.3g}, max rel error "
                f"{failure['max_rel_error']:.3g}, {failure['wrong']} of {failure['total']} wrong"
            )
        if failure.get("diagnosis"):
            lines.append(f"        likely: {failure['diagnosis']}")
        if failure.get("where") and failure.get("wrong") and failure.get("total", 0) > 1:
            lines.append("        where (rows x columns; for images H x W over all N and C):")
            lines += [f"          {line}" for line in text_map(failure["where"])]
    trace = row.get("traceback")
    if trace:
        key = tuple(trace)
        if key in shown:
            lines.append("        (the same traceback as above)")
        else:
            shown.add(key)
            lines += [f"        {line}" for line in trace]
    return lines


def summary(result: dict) -> str:
    rows = result["rows"]
    bad = [r for r in rows if not r["ok"]]
    if not bad:
        return f"all ok: {len(rows)} cases of {len(result['found'])} classes match PyTorch"
    todo = sum(bool(r.get("not_written")) for r in bad)
    classes = sorted({r["layer"] for r in bad})
    parts = [f"{len(bad) - todo} wrong" * (len(bad) > todo), f"{todo} not written yet" * bool(todo)]
    return f"{' and '.join(p for p in parts if p)} of {len(rows)} cases, in {', '.join(classes)}"


def picture_title(row: dict, failure: dict) -> str:
    """The map's title; a tensor wrong everywhere (a plain red block) says so in words."""
    if failure.get("wrong") and failure["wrong"] == failure.get("total"):
        what = f"every element wrong ({failure['wrong']} of {failure['total']})"
    else:
        what = "red = wrong"
    return f"{row['layer']}: {row['case']}\n{failure['tensor']}: {what}"


def write_pictures(result: dict, folder: str | Path) -> list[Path]:
    """One PNG per wrong tensor that has a map: red where wrong, white where right."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, row in enumerate(result["rows"]):
        for failure in row["failures"]:
            if not failure.get("where") or not failure.get("wrong"):
                continue
            slug = re.sub(r"[^a-zA-Z0-9]+", "-", f"{row['layer']}-{k}-{failure['tensor']}").strip(
                "-"
            )
            path = folder / f"{slug}.png"
            path.write_bytes(map_png(row, failure))
            paths.append(path)
    return paths


def map_png(row: dict, failure: dict) -> bytes:
    """The PNG of one failure's map of wrong positions (failure["where"], 1 = wrong)."""
    import io

    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: a notebook's backend stays as it is

    where = np.asarray(failure["where"], dtype=float)
    fig = Figure(figsize=(4, 4 * where.shape[0] / max(where.shape[1], 1) + 0.8))
    ax = fig.subplots()
    ax.imshow(where, cmap="Reds", vmin=0, vmax=1)
    ax.set_title(picture_title(row, failure), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    return png.getvalue()
