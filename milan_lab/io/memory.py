"""How much memory this process may still take: the one answer for every size guard (an image's
decode, a teacher cache on the CPU)."""
from __future__ import annotations

import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")  # cgroup v2's mount point: memory.max / memory.current of this container


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable, within a cgroup v2 memory limit if one is
    set: a container's limit is often far below the machine's free memory; else the free pages), or
    None where neither can be read."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((CGROUP / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return max(0, min(found))
