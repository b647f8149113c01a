"""Peak resident memory of this process over a stretch of work (Linux's /proc; None elsewhere).

start = reset_peak()        # the peak counter (VmHWM) restarts at the current size
...work...
added = peak_since(start)   # MiB the work needed at its peak, beyond what was held before
"""

from __future__ import annotations


def _status_kib(key: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def reset_peak() -> int | None:
    """Restart the peak counter; returns the resident size in KiB, or None where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return _status_kib("VmRSS:")
    except OSError:
        return None


def peak_since(start: int | None) -> float | None:
    """MiB of resident memory at the peak since reset_peak() returned `start`, beyond `start`."""
    if start is None:
        return None
    try:
        return round((_status_kib("VmHWM:") - start) / 1024, 1)
    except OSError:
        return None
