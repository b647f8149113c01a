"""The report of `digitlab check`: text for a learner, JSON for tools, PNG maps.

Built from workbench.layercheck's result (check_file, check_classes or check_scratch); nothing
here runs the learner's code.
"""

from __future__ import annotations

import re
from pathlib import Path

from digitlab.workbench.diagnose import RTOL32, RTOL64, text_map
from digitlab.workbench.messages import Text, from_data, render
from digitlab.workbench.messages_zh import ZH_CASES

INTERFACES = {
    "digitlab": Text("digitlab's interface: backward(grad_out) returns dL/dx, adds into .grad"),
    "template": Text("the recruitment template's: backward(ones) sets .grad, returns dL/dx"),
    "torch.optim": Text("torch.optim's interface: zero_grad(), step()"),
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
    """The report a learner reads, in `lang` (workbench.messages): per class, per case, what is
    wrong, where and why; with `show_output`, what their code printed first."""
    found = result["found"]
    lines = [
        say("checking {path} against PyTorch", lang, path=result["path"]),
        say(
            "(in float32, each tensor within {rtol32:g} of its largest value, in float64 within "
            "{rtol64:g}: rounding cannot trip that, a bug does)",
            lang,
            rtol32=RTOL32,
            rtol64=RTOL64,
        ),
        say("found: {classes}", lang, classes=", ".join(f"{n} ({found[n]})" for n in found)),
    ]
    if result["missing"]:
        lines.append(
            say(
                "not in the file: {names} (digitlab.scratch's are used for those when you train)",
                lang,
                names=", ".join(result["missing"]),
            )
        )
    lines += output_lines(result, show_output, lang)
    for name, rows in by_layer(result).items():
        interface = INTERFACES.get(found.get(name))
        interface = interface.render(lang) if interface else found.get(name)
        lines += ["", f"{name} ({interface}): {verdict(rows, lang)}"]
        shown = set()
        for row in rows:
            lines += case_lines(row, shown, lang)
    lines += ["", summary(result, lang)]
    return lines


def say(msgid: str, lang: str, **fields) -> str:
    return Text(msgid, **fields).render(lang)


def output_lines(result: dict, show_output: bool, lang: str) -> list[str]:
    """What the learner's code printed: all of it with `show_output`, else a line about it."""
    count = result["output_lines"]
    if count and show_output:
        lines = [say("your code printed {count} lines:", lang, count=count)]
        return lines + [f"  | {line}" for line in result.get("output", "").splitlines()]
    if count:
        first = result["first_output"][0][:80] if result["first_output"] else ""
        return [
            say(
                "your code printed {count} lines (kept out of this report; the first: {first!r}; "
                "--show-output shows them)",
                lang,
                count=count,
                first=first,
            )
        ]
    return []


def verdict(rows: list[dict], lang: str) -> str:
    """A class's verdict: "all ok", or how many cases are wrong and how many not written."""
    wrong = sum(not r["ok"] and not r.get("not_written") for r in rows)
    todo = sum(bool(r.get("not_written")) for r in rows)
    if not wrong and not todo:
        return say("all ok", lang)
    parts = []
    if wrong:
        parts.append(say("{wrong} of {total} cases wrong", lang, wrong=wrong, total=len(rows)))
    if todo:
        parts.append(say("{todo} not written yet", lang, todo=todo))
    return ("，" if lang == "zh" else ", ").join(parts)


def text_of(holder: dict, key: str, lang: str) -> str:
    """holder[key] (a failure's message or diagnosis) in `lang`, from the data the check kept
    (holder["texts"]); as it is where there is none."""
    data = holder.get("texts", {}).get(key)
    return render(from_data(data), lang) if data is not None else holder.get(key) or ""


def case_name(row: dict, lang: str) -> str:
    """The case's name in `lang` (digitlab's own cases, beyond a learner's, are named in
    English only)."""
    return ZH_CASES.get(row["case"], row["case"]) if lang == "zh" else row["case"]


def case_lines(row: dict, shown: set, lang: str = "en") -> list[str]:
    row = {**row, "case": case_name(row, lang)}
    if row["ok"]:
        note = row.get("note_text", row.get("note"))
        note = [f"        {say('note: {note}', lang, note=from_data(note))}"] if note else []
        return [f"  ok    {row['case']}", *note]
    first = row["failures"][0]
    if row.get("skipped"):
        return [f"  SKIP  {row['case']}: {text_of(first, 'message', lang)}"]
    mark = "TODO " if row.get("not_written") else "FAIL "
    said = (tuple(row.get("traceback") or ()), first["diagnosis"])
    if row.get("not_written") and said in shown:
        words = say("{tensor} not written yet (as above)", lang, tensor=first["tensor"])
        return [f"  {mark} {row['case']}: {words}"]
    shown.add(said)
    cause = ("cause", first["tensor"], first["diagnosis"])
    if first["diagnosis"] and cause in shown:  # the same bug again: one line, not the block
        words = say("{message} (same as above)", lang, message=text_of(first, "message", lang))
        return [f"  {mark} {row['case']}: {words}"]
    shown.add(cause)
    lines = [f"  {mark} {row['case']}"]
    for failure in row["failures"]:
        lines += failure_lines(failure, lang)
    trace = row.get("traceback")
    if trace and tuple(trace) in shown:
        lines.append("        " + say("(the same traceback as above)", lang))
    elif trace:
        shown.add(tuple(trace))
        lines += [f"        {line}" for line in trace]
    return lines


def failure_lines(failure: dict, lang: str) -> list[str]:
    """One failure: what is wrong, by how much, the likely bug and the map of where."""
    lines = [f"        {text_of(failure, 'message', lang)}"]
    if failure.get("max_abs_error") is not None:
        lines.append(
            "        "
            + say(
                "max abs error {abs:.3g}, max rel error {rel:.3g}, {wrong} of {total} wrong",
                lang,
                abs=failure["max_abs_error"],
                rel=failure["max_rel_error"],
                wrong=failure["wrong"],
                total=failure["total"],
            )
        )
    if failure.get("diagnosis"):
        lines.append(
            "        "
            + say("likely: {diagnosis}", lang, diagnosis=text_of(failure, "diagnosis", lang))
        )
    if failure.get("where") and failure.get("wrong") and failure.get("total", 0) > 1:
        lines.append(
            "        " + say("where (rows x columns; for images H x W over all N and C):", lang)
        )
        lines += [f"          {line}" for line in text_map(failure["where"])]
    return lines


def summary(result: dict, lang: str = "en") -> str:
    rows = result["rows"]
    bad = [r for r in rows if not r["ok"]]
    if not bad:
        return say(
            "all ok: {cases} cases of {classes} classes match PyTorch",
            lang,
            cases=len(rows),
            classes=len(result["found"]),
        )
    todo = sum(bool(r.get("not_written")) for r in bad)
    classes = ", ".join(sorted({r["layer"] for r in bad}))
    fields = dict(wrong=len(bad) - todo, todo=todo, total=len(rows), classes=classes)
    if todo and len(bad) > todo:
        return say(
            "{wrong} wrong and {todo} not written yet of {total} cases, in {classes}",
            lang,
            **fields,
        )
    if todo:
        return say("{todo} not written yet of {total} cases, in {classes}", lang, **fields)
    return say("{wrong} wrong of {total} cases, in {classes}", lang, **fields)


def picture_title(row: dict, failure: dict) -> str:
    """The map's title; a tensor wrong everywhere (a plain red block) says so in words."""
    if failure.get("wrong") and failure["wrong"] == failure.get("total"):
        what = f"every element wrong ({failure['wrong']} of {failure['total']})"
    else:
        what = "red = wrong"
    return f"{row['layer']}: {row['case']}\n{failure['tensor']}: {what}"


def map_png(row: dict, failure: dict) -> bytes | None:
    """A PNG of where `failure`'s tensor is wrong (red) and right (white), or None when the
    failure has no map."""
    if not failure.get("where") or not failure.get("wrong"):
        return None
    import io

    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: a notebook's backend stays as it was

    where = np.asarray(failure["where"], dtype=float)
    fig = Figure(figsize=(4, 4 * where.shape[0] / max(where.shape[1], 1) + 0.8))
    ax = fig.subplots()
    ax.imshow(where, cmap="Reds", vmin=0, vmax=1)
    ax.set_title(picture_title(row, failure), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def write_pictures(result: dict, folder: str | Path) -> list[Path]:
    """One PNG per wrong tensor that has a map: red where wrong, white where right."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, row in enumerate(result["rows"]):
        for failure in row["failures"]:
            png = map_png(row, failure)
            if png is None:
                continue
            slug = re.sub(r"[^a-zA-Z0-9]+", "-", f"{row['layer']}-{k}-{failure['tensor']}")
            path = folder / f"{slug.strip('-')}.png"
            path.write_bytes(png)
            paths.append(path)
    return paths
