"""The result of digitlab.check_layers as an object: .ok, .layers, the text, and an HTML table.

Made from workbench.layercheck's result by workbench.report's functions, so the notebook sees
what `digitlab check --layers FILE` prints (str) and what its --json gives (.layers).
"""

from __future__ import annotations

import base64
from html import escape

from digitlab.workbench.report import as_json, format_report, map_png, summary

COLUMNS = ("layer", "interface", "case", "ok", "tensor", "max error", "diagnosis")


class LayerReport:
    """`result`: check_file's or check_classes' dict; `lang`: the language of the text."""

    def __init__(self, result: dict, lang: str = "en"):
        self.result, self.lang = result, lang
        self.ok: bool = result["ok"]
        self.layers: list[dict] = as_json(result)["layers"]

    def __str__(self) -> str:
        return "\n".join(format_report(self.result, lang=self.lang))

    def __repr__(self) -> str:
        return f"<LayerReport {summary(self.result)}>"

    def _repr_html_(self) -> str:
        """A table, one row per case, with the maps of wrong positions as inline PNGs (data
        URIs: a notebook keeps them in its file, no folder of pictures beside it)."""
        lines = format_report(self.result, lang=self.lang)
        head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
        found = self.result["found"]
        rows = [html_row(row, found.get(row["layer"], "")) for row in self.result["rows"]]
        return (
            f"<div><p>{escape(lines[0])}<br>{escape(lines[1])}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p><b>{escape(summary(self.result))}</b></p></div>"
        )


def html_row(row: dict, interface: str) -> str:
    """One case as a table row; a failure's map, where it has one, under its diagnosis."""
    first = row["failures"][0] if row["failures"] else {}
    verdict = "ok" if row["ok"] else "TODO" if row.get("not_written") else "FAIL"
    error = first.get("max_abs_error")
    diagnosis = escape(first.get("diagnosis") or first.get("message") or row.get("note", ""))
    for failure in row["failures"]:
        if failure.get("where") and failure.get("wrong"):
            data = base64.b64encode(map_png(row, failure)).decode("ascii")
            alt = escape(f"{failure['tensor']}: where it is wrong")
            diagnosis += f'<br><img src="data:image/png;base64,{data}" alt="{alt}">'
    color = "" if row["ok"] else ' style="color:#b00"'
    cells = (
        escape(row["layer"]),
        escape(interface or ""),
        escape(row["case"]),
        f"<b{color}>{verdict}</b>",
        escape(first.get("tensor") or ""),
        "" if error is None else f"{error:.3g}",
        diagnosis,
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
