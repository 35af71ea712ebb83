"""One control group per sandbox: the memory (tmpfs pages included), processes and CPU time of everything a worker
starts, counted together, in the spirit of the IOI's `isolate`.

The rlimits bound each process (address space, file size) and the uid (process count); they do not bound the sum:
64 processes of 4 GiB each, or /tmp and /dev/shm filled on top of a big heap. A cgroup does. Where the host
offers one we can write (the grader runs as root and the memory and pids controllers are mounted: cgroup v1 as on
these machines, or cgroup v2 with both enabled), each sandbox gets its own; the kernel's OOM killer then ends the
sandbox's own processes when their total passes the limit, and `fork` fails past the process cap. Elsewhere
`create` returns None and the rlimits alone remain; results say which (`extra_data.cgroups`).

The launcher enters the cgroup before it starts anything (`enter`), so no process of the sandbox is ever outside.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import time
from pathlib import Path

PARENT = "autograder"  # every sandbox's group lives below this one, in each hierarchy
_MOUNTS = Path("/proc/mounts")


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, type, options) of every cgroup file system."""
    found = []
    try:
        lines = _MOUNTS.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            found.append((parts[1], parts[2], set(parts[3].split(","))))
    return found


def _v1_roots() -> dict[str, Path] | None:
    roots = {}
    for point, kind, options in _mounts():
        if kind == "cgroup":
            for controller in ("memory", "pids", "cpuacct"):
                if controller in options and controller not in roots:
                    roots[controller] = Path(point)
    return roots if {"memory", "pids"} <= set(roots) else None


def _v2_root() -> Path | None:
    for point, kind, _ in _mounts():
        if kind == "cgroup2":
            try:
                enabled = set((Path(point) / "cgroup.subtree_control").read_text().split())
            except OSError:
                continue
            if {"memory", "pids"} <= enabled:
                return Path(point)
    return None


def available() -> str:
    """"v1", "v2" or "none": what `Cgroup.create` would use here (mounted, and writable by us)."""
    if os.geteuid() != 0:
        return "none"
    roots = _v1_roots()
    if roots is not None and all(_writable(root) for root in roots.values()):
        return "v1"
    root = _v2_root()
    return "v2" if root is not None and _writable(root) else "none"


def _writable(root: Path) -> bool:
    parent = root / PARENT
    return os.access(parent if parent.is_dir() else root, os.W_OK)


class Cgroup:
    """The group of one sandbox (one directory per hierarchy)."""

    def __init__(self, version: str, folders: dict[str, Path]):
        self.version = version
        self.folders = folders  # controller ("memory", "pids", "cpuacct"; "unified" for v2) -> its folder
        self.memory_limit_mb = 0

    @classmethod
    def create(cls, memory_mb: int, max_processes: int) -> "Cgroup | None":
        """A new group limited to `memory_mb` MiB and `max_processes` tasks, or None where none can be made."""
        version = available()
        if version == "none":
            return None
        name = f"sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            if version == "v1":
                folders = {controller: root / PARENT / name for controller, root in _v1_roots().items()}
            else:
                folders = {"unified": _v2_root() / PARENT / name}
                parent = folders["unified"].parent
                parent.mkdir(exist_ok=True)
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            for folder in folders.values():
                folder.mkdir(parents=True)
            group = cls(version, folders)
            group._limit(memory_mb * 1024 * 1024, max_processes)
        except OSError:
            if "group" in locals():
                group.destroy()
            return None
        group.memory_limit_mb = memory_mb
        return group

    def _limit(self, memory_bytes: int, max_processes: int) -> None:
        if self.version == "v1":
            (self.folders["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
            (self.folders["pids"] / "pids.max").write_text(str(max_processes))
        else:
            folder = self.folders["unified"]
            (folder / "memory.max").write_text(str(memory_bytes))
            if (folder / "memory.swap.max").exists():  # the limit is on memory, not memory + swap
                (folder / "memory.swap.max").write_text("0")
            (folder / "pids.max").write_text(str(max_processes))

    def enter(self, command: list[str]) -> list[str]:
        """`command`, started from a shell that first moves itself into this group (it then execs: same pid)."""
        procs = " ".join(shlex.quote(str(folder / "cgroup.procs")) for folder in self.folders.values())
        script = f'for procs in {procs}; do echo $$ > "$procs" || exit 125; done; exec "$@"'
        return ["sh", "-c", script, "sh", *command]

    def cpu_seconds(self) -> float | None:
        """CPU time used by the group's processes so far (None where the host does not account it)."""
        try:
            if self.version == "v1":
                folder = self.folders.get("cpuacct")
                return int((folder / "cpuacct.usage").read_text()) / 1e9 if folder else None
            for line in (self.folders["unified"] / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except (OSError, ValueError):
            return None
        return None

    def oom_kills(self) -> int:
        """How many of the group's processes the kernel killed for exceeding the memory limit."""
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        folder = self.folders["memory" if self.version == "v1" else "unified"]
        try:
            for line in (folder / name).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def _pids(self) -> list[int]:
        pids = set()
        for folder in self.folders.values():
            try:
                pids.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(pids)

    def destroy(self) -> None:
        """Kill whatever is left in the group and remove it."""
        deadline = time.monotonic() + 5
        while (pids := self._pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        for folder in self.folders.values():
            for _ in range(50):  # a group empties a moment after its last process is reaped
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def remove_orphans() -> list[str]:
    """Remove the groups of grading runs that are gone (a harness killed outright never destroys its own): their
    names carry the harness's pid. Returns the names removed."""
    if available() == "none":
        return []
    roots = list(_v1_roots().values()) if available() == "v1" else [_v2_root()]
    removed = set()
    for root in roots:
        parent = root / PARENT
        if not parent.is_dir():
            continue
        for folder in parent.iterdir():
            parts = folder.name.split("-")
            if len(parts) != 3 or parts[0] != "sandbox" or not parts[1].isdigit():
                continue
            if Path(f"/proc/{parts[1]}").exists():
                continue  # that run is still grading
            Cgroup(available(), {"orphan": folder}).destroy()
            removed.add(folder.name)
    return sorted(removed)
