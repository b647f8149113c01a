"""What a learner reads, in English and in Chinese: one catalogue.

gettext's way, without its compiled files: a message is written once, in English, where it is
made, as `Text(msgid, **fields)` (msgid a str.format template); it stays a Text until it is
shown, so the same check can be read in either language. `ZH` maps every msgid to its Chinese
(the catalogue; a test holds that every msgid in the code has its twin, with the same fields).
gettext proper would need .mo files built at install time, or Babel to read .po files, for the
same lookup.

    Text("{tensor} is missing (None)", tensor="dL/dx").render("zh")  ->  "dL/dx 缺失 (None)"

Texts cross from the child process that runs the learner's code to the parent as data
([msgid, fields], or a list of those for texts joined by "; "), see `as_data`/`from_data`.
"""

from __future__ import annotations

import locale
import os

from digitlab.workbench.messages_zh import ZH

LANGS = ("en", "zh")
SEPARATOR = {"en": "; ", "zh": "；"}


class Text:
    """A message not yet put into words of one language: msgid (English, a format template)
    and its fields (numbers, names, or other Texts)."""

    def __init__(self, msgid: str, **fields):
        self.msgid, self.fields = msgid, fields

    def render(self, lang: str = "en") -> str:
        template = self.msgid if lang == "en" else ZH.get(self.msgid, self.msgid)
        values = {k: render(v, lang) for k, v in self.fields.items()}
        return template.format(**values)

    def __str__(self) -> str:
        return self.render("en")

    def __eq__(self, other) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __bool__(self) -> bool:
        return bool(self.msgid)

    def startswith(self, prefix: str) -> bool:
        return str(self).startswith(prefix)

    def __contains__(self, words: str) -> bool:
        return words in str(self)


class Texts(Text):
    """Several texts shown as one, joined by "; "."""

    def __init__(self, parts: list):
        super().__init__("")
        self.parts = list(parts)

    def render(self, lang: str = "en") -> str:
        return SEPARATOR.get(lang, "; ").join(render(p, lang) for p in self.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)


def render(value, lang: str = "en"):
    """A Text in `lang`; anything else as it is."""
    return value.render(lang) if isinstance(value, Text) else value


def as_data(value):
    """A Text as JSON-ready data ([msgid, fields], or ["+", [parts]] for Texts); a str as is."""
    if isinstance(value, Texts):
        return ["+", [as_data(p) for p in value.parts]]
    if isinstance(value, Text):
        return [value.msgid, {k: as_data(v) for k, v in value.fields.items()}]
    return value


def from_data(data):
    """The inverse of as_data."""
    if isinstance(data, list) and len(data) == 2 and data[0] == "+":
        return Texts([from_data(p) for p in data[1]])
    if isinstance(data, list) and len(data) == 2 and isinstance(data[1], dict):
        return Text(data[0], **{k: from_data(v) for k, v in data[1].items()})
    return data


def default_lang() -> str:
    """DIGITLAB_LANG (en or zh; `--lang` sets it for a train run), else zh where the locale is
    Chinese (LC_ALL, LC_MESSAGES or LANG as POSIX reads them, or the system's locale on
    Windows), else en."""
    chosen = os.environ.get("DIGITLAB_LANG")
    if chosen in LANGS:
        return chosen
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    try:
        system = locale.getlocale()[0] or ""
    except ValueError:
        system = ""
    return "zh" if system.lower().startswith(("zh", "chinese")) else "en"
