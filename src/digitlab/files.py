"""Files written so that a crash, or a reader at the wrong moment, sees the old or the new one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from digitlab.errors import DigitlabError

# Windows refuses os.replace onto a file another process has open (PermissionError); a virus
# scanner or an indexer holds a fresh file for a moment, so try again for about a second first.
REPLACE_TRIES = 10
REPLACE_PAUSE = 0.1


def cache_dir() -> Path:
    """Where digitlab keeps what it can make again but would rather not (MNIST-C's corrupted
    sets, the drawn outlier pages): $DIGITLAB_CACHE, else ~/.cache/digitlab."""
    return Path(os.environ.get("DIGITLAB_CACHE") or Path.home() / ".cache" / "digitlab")


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one.

    Writes a temporary file beside it, fsyncs, renames over `path`, then fsyncs the folder.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sync_folder(path.parent)


def replace(source: Path, target: Path) -> None:
    """os.replace, retried briefly where Windows refuses it because the target is open."""
    for attempt in range(REPLACE_TRIES):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if os.name != "nt":  # on POSIX a refusal is about rights: waiting will not help
                raise
            if attempt + 1 < REPLACE_TRIES:
                time.sleep(REPLACE_PAUSE)
    raise DigitlabError(
        f"{target}: cannot be replaced because another program holds it open; close that "
        "program (an editor or viewer of the file) and run the command again"
    )


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename in it survives a power cut. POSIX only: Windows cannot
    open a folder as a file (os.open raises PermissionError) and NTFS journals the rename."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
