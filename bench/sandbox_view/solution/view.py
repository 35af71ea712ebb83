"""Reports what this process can see: run inside the grading sandbox, it must see one GPU at most and no host."""

import os
from pathlib import Path

WRITABLE_CANDIDATES = ("/", "/usr", "/etc", "/dev", "/sys", "/proc/sys", "/tmp", "/dev/shm", ".")


def _writable(path: str) -> bool:
    probe = Path(path) / f".write-test-{os.getpid()}"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


def look(host_paths):
    """`host_paths`: paths of the grading machine (its home, the repository, ...) that the sandbox must not show."""
    import torch

    devices, error, total = [], None, None
    try:
        devices = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
        if devices:  # a kernel really runs, not only the driver answering
            total = float(torch.arange(1000, device="cuda", dtype=torch.float32).sum())
    except Exception as exc:  # noqa: BLE001 - the grader reports whatever went wrong
        error = f"{type(exc).__name__}: {exc}"
    interfaces = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    return {
        "cuda_devices": devices,
        "cuda_error": error,
        "dev_nodes": sorted(os.listdir("/dev")),
        "host_paths": [path for path in host_paths if os.path.exists(path)],
        "network_interfaces": interfaces,
        "environment": sorted(os.environ),
        "pid_1": Path("/proc/1/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200],
        "processes": sum(1 for entry in os.listdir("/proc") if entry.isdigit()),
        "writable": [path for path in WRITABLE_CANDIDATES if _writable(path)],
        "tensor_sum": total,
    }
