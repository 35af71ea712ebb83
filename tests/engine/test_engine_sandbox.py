"""How workers are launched (command lines only: the attack corpus runs them for real)."""

import os
from pathlib import Path

import pytest

from autograder.assignment import SandboxLimits
from autograder.engine.harness.runner import _describe_failure
from autograder.engine.sandbox import WORKDIR, WorkerSpec, cuda_index, worker_command, worker_device


def _spec(tmp_path: Path, device: str, mode: str = "bwrap") -> WorkerSpec:
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    (files / "probes.py").write_text("")
    return WorkerSpec(files_dir=files, probes="probes.py", mode=mode, device=device,
                      limits=SandboxLimits(memory_mb=123), scratch_dir=tmp_path, data_dir=tmp_path)


def _value_after(command: list[str], flag: str, key: str) -> str:
    for index, item in enumerate(command[:-2]):
        if item == flag and command[index + 1] == key:
            return command[index + 2]
    raise AssertionError(f"{flag} {key} not in the command")


def test_cpu_worker_is_confined(tmp_path):
    command, env, cwd = worker_command(_spec(tmp_path, "cpu"), 5, 6, None)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                 "--clearenv"):
        assert flag in command
    assert f"--as={123 * 1024 * 1024}" in command and "--core=0" in command
    assert _value_after(command, "--setenv", "CUDA_VISIBLE_DEVICES") == ""
    # bound read-only (from a staged mount point when the uid cannot reach the pytest tmp folder)
    probes_at = command.index(f"{WORKDIR}/probes.py")
    assert command[probes_at - 2] == "--ro-bind"
    remounted = [command[i + 1] for i, part in enumerate(command) if part == "--remount-ro"]
    assert remounted == ["/dev", "/"]  # only the capped /tmp, /dev/shm and workdir stay writable
    for folder in ("/dev/shm", "/tmp", WORKDIR):  # each writable folder is a capped tmpfs of its own
        if os.geteuid() == 0:  # mounted by the launcher with an inode cap, then bound in
            at = next(i for i in range(len(command) - 2) if command[i] == "--bind" and command[i + 2] == folder)
            script = command[command.index("-c") + 1]
            mount = script.split(f" {command[at + 1]} ")[0].rsplit("mount ", 1)[1]  # the one that made this stage
            assert mount.startswith("-t tmpfs -o size=") and "nr_inodes=20000,mode=0755" in mount
        else:
            assert any(command[i:i + 2] == ["--tmpfs", folder] for i in range(len(command)))
    assert not any(part.startswith("/dev/nvidia") for part in command)
    assert command[-6:] == ["--probes", "probes.py", "--requests", "5", "--replies", "6"]
    assert set(env) == {"PATH"} and cwd == "/"
    if os.geteuid() == 0:
        assert "setpriv" in command


def test_gpu_worker_sees_one_gpu_and_no_address_space_limit(tmp_path):
    command, _, _ = worker_command(_spec(tmp_path, "cuda:1"), 5, 6, None)
    assert _value_after(command, "--setenv", "CUDA_VISIBLE_DEVICES") == "1"
    assert not any(part.startswith("--as=") for part in command)
    for node in Path("/dev").glob("nvidia*"):
        assert _value_after(command, "--dev-bind", str(node)) == str(node)


@pytest.mark.parametrize("device, index, inside", [("cpu", None, "cpu"), ("cuda", "0", "cuda"),
                                                   ("cuda:3", "3", "cuda")])
def test_device_names(device, index, inside):
    assert cuda_index(device) == index and worker_device(device) == inside


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:-1", "tpu"])
def test_bad_device_names_are_refused(device):
    with pytest.raises(ValueError, match="expected cpu, cuda or cuda:N"):
        cuda_index(device)


def test_failure_messages_name_the_cause(tmp_path):
    spec = _spec(tmp_path, "cuda:0")
    oom = {"type": "OutOfMemoryError", "message": "CUDA out of memory. Tried to allocate 2.00 GiB", "traceback": "tb"}
    assert _describe_failure("train", oom, spec).startswith("train: ran out of GPU memory on cuda:0 (CUDA OOM)")
    memory = {"type": "MemoryError", "message": "", "traceback": ""}
    assert _describe_failure("train", memory, spec) == "train: ran out of memory (the limit is 123 MiB)"
    other = {"type": "ValueError", "message": "k must be positive", "traceback": "Traceback ...\nValueError"}
    expected = "make raised ValueError: k must be positive\nTraceback ...\nValueError"
    assert _describe_failure("make", other, spec) == expected
    assert "without details" in _describe_failure("make", "not a dict", spec)
