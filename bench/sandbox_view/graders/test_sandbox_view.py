"""The grading sandbox on this machine: the GPU (when graded with --device cuda) and nothing else of the host."""

import os
import sys
from pathlib import Path

import pytest

# Device nodes bubblewrap's --dev provides; the GPU's own (nvidia*) are bound in only for --device cuda.
STANDARD_DEV = {"console", "core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
                "tty", "urandom", "zero"}
ALLOWED_ENVIRONMENT = {"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE",
                       "PYTHONUNBUFFERED", "MPLBACKEND", "MPLCONFIGDIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                       "CUDA_VISIBLE_DEVICES", "OMNIGLOT_DATA_DIR", "LC_CTYPE", "PWD"}


def host_paths() -> list[str]:
    """Places of the grading machine a student must not see: homes, the repository, secrets, other mounts."""
    here = Path(__file__).resolve()
    candidates = {"/root", "/home", "/etc/shadow", "/etc/ssh", "/var/log", "/var/run/docker.sock", "/run", "/mnt",
                  "/srv", "/opt", "/media", str(Path.home()), str(here.parents[2]), str(Path(os.getcwd()))}
    # The Python environment itself is bound in read-only (the interpreter and its packages run the code).
    python = {str(Path(sys.prefix)), str(Path(sys.base_prefix))}
    return sorted(path for path in candidates
                  if os.path.exists(path) and not any(p == path or p.startswith(path + "/") for p in python))


@pytest.fixture
def seen(student):
    return student.run("look", host_paths=host_paths())


@pytest.mark.points(1)
def test_gpus_seen_are_the_ones_asked_for(seen, profile):
    """--device cuda: exactly one GPU, and a kernel runs on it; --device cpu: none"""
    expected = profile["expect_gpus"]
    assert len(seen["cuda_devices"]) == expected, (
        f"the sandbox sees {len(seen['cuda_devices'])} GPU(s) {seen['cuda_devices']} (error: {seen['cuda_error']}), "
        f"expected {expected} for --device {profile.device}")
    if expected:
        assert seen["tensor_sum"] == 499500.0, f"a CUDA kernel in the sandbox returned {seen['tensor_sum']}"


@pytest.mark.points(1)
def test_device_nodes_are_the_standard_ones_and_the_gpu(seen, profile):
    unexpected = [node for node in seen["dev_nodes"]
                  if node not in STANDARD_DEV and not (profile["expect_gpus"] and node.startswith("nvidia"))]
    assert not unexpected, f"/dev in the sandbox holds {unexpected} beyond the standard nodes"


@pytest.mark.points(1)
def test_no_host_path_network_or_process_is_visible(seen):
    assert not seen["host_paths"], f"host paths visible in the sandbox: {seen['host_paths']}"
    assert seen["network_interfaces"] == ["lo"], f"network interfaces in the sandbox: {seen['network_interfaces']}"
    assert seen["processes"] <= 3, f"{seen['processes']} processes visible (pid 1: {seen['pid_1']!r})"
    unexpected = sorted(set(seen["environment"]) - ALLOWED_ENVIRONMENT)
    assert not unexpected, f"environment variables from the host: {unexpected}"


@pytest.mark.points(1)
def test_only_the_scratch_folders_are_writable(seen):
    assert set(seen["writable"]) <= {"/tmp", "/dev/shm", "."}, f"writable in the sandbox: {seen['writable']}"
