"""The docs: a short README front page, no reference to files outside the repository, and
relative links that lead somewhere."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXT_SUFFIXES = {".md", ".py", ".txt", ".toml", ".cfg", ".json", ".yml", ".yaml", ".html"}
# Spelled in pieces, so that this file does not match itself.
SHARED = "shared"
OUTSIDE = (f"../{SHARED}", f"{SHARED}/seed", f"{SHARED}/DESIGN")
# [text](target) and ![alt](target), outside code spans
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_keeps_the_two_commands_ci_runs_first():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```" and lines[3] == "```"
    assert lines[1].startswith("python3 ") and "digitlab train" in lines[1]
    assert lines[2].startswith("python3 ") and "pytest" in lines[2]


def text_files():
    for folder in ("docs", "src", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                yield path
    yield ROOT / "README.md"
    yield ROOT / "pyproject.toml"


def test_nothing_refers_to_files_outside_the_repository():
    found = []
    for path in text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in OUTSIDE:
            if needle in text:
                found.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not found, found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces -> -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def links(path: Path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK.findall(text):
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            yield target


def test_relative_links_in_readme_and_docs_lead_to_files_that_exist():
    broken = []
    for doc in DOCS:
        for target in links(doc):
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file).resolve() if file else doc
            if not dest.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken
