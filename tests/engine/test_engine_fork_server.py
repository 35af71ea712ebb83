"""The fork server on its own: one sandbox per grading run and data view, a fresh forked worker per test.

The attack corpus (test_engine_attacks.py) runs every attack under both worker starts; this file checks what the
server itself promises: each worker is a new process that looks like a freshly started one, one sandbox serves
many workers, a worker's exit is reported, and a server that is gone is replaced at the next worker.
"""

import stat
import tempfile
from pathlib import Path

import pytest

from autograder.assignment import SandboxLimits
from autograder.engine.harness.runner import ForkedWorker, ForkServer, OutputLog
from autograder.engine.sandbox import WorkerSpec
from autograder.engine.workdir import build_worker_files

pytestmark = pytest.mark.usefixtures("sandbox")

PROBES = '''
import os
import sys

import numpy as np


def who():
    return {"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[1:], "draw": float(np.random.random()),
            "cwd": os.getcwd(), "tmp": sorted(os.listdir("/tmp"))}


def litter():
    open("/tmp/litter", "w").write("x")
    return {}


def leave(code):
    sys.stdout.write("leaving\\n")
    sys.stdout.flush()
    os._exit(code)
'''


@pytest.fixture
def spec(tmp_path):
    # the sandbox uid must traverse the scratch folder (pytest's own tmp root is private to root)
    scratch = Path(tempfile.mkdtemp(prefix="fork-server-test-", dir="/tmp"))
    scratch.chmod(stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH)
    (tmp_path / "probes.py").write_text(PROBES)
    files = build_worker_files(scratch / "files", {}, tmp_path / "probes.py")
    yield WorkerSpec(files_dir=files, probes="probes.py", mode="bwrap", device="cpu",
                     limits=SandboxLimits(memory_mb=2048), scratch_dir=scratch, preload=("numpy",))
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


def _run(server: ForkServer, probe: str, **inputs) -> tuple[dict, ForkedWorker, OutputLog]:
    log = OutputLog(4096)
    worker = server.spawn(log)
    reply = worker.call(probe, inputs, timeout=60)
    return reply, worker, log


def test_one_sandbox_forks_a_fresh_worker_per_test(spec):
    server = ForkServer(spec)
    try:
        seen = []
        for index in range(3):
            reply, worker, _ = _run(server, "who")
            assert reply["ok"], reply
            seen.append(reply["outputs"])
            if index == 0:
                assert _run_litter(server, worker)
            else:
                worker.stop(grace=1)
                assert worker.exit_description() == "exited with code 0"
        assert server.starts == 1
        assert len({entry["pid"] for entry in seen}) == 3 and all(entry["ppid"] == 1 for entry in seen)
        # what a freshly started worker would see: its own argv, the worker folder, a reseeded numpy, and a /tmp
        # holding only what the sandbox itself put there (mount points, when the Python environment lies under /tmp)
        assert all(entry["argv"][:2] == ["--probes", "probes.py"] and "--requests" in entry["argv"] for entry in seen)
        assert all(entry["cwd"] == "/sandbox" and entry["tmp"] == seen[0]["tmp"] for entry in seen)
        assert "litter" not in seen[0]["tmp"]
        assert len({entry["draw"] for entry in seen}) == 3
    finally:
        server.close()


def _run_litter(server: ForkServer, worker) -> bool:
    """The same worker leaves a file in /tmp; ending it must wipe that for the next worker."""
    reply = worker.call("litter", {}, timeout=60)
    worker.stop(grace=1)
    return reply["ok"]


def test_a_workers_exit_is_reported_and_a_lost_server_is_replaced(spec):
    server = ForkServer(spec)
    try:
        log = OutputLog(4096)
        worker = server.spawn(log)
        with pytest.raises(Exception):
            worker.call("leave", {"code": 3}, timeout=60)
        worker.wait_exit(5)
        assert worker.exit_description() == "exited with code 3"
        worker.stop()
        assert "leaving" in log.text()
        server.kill()  # e.g. the harness killed a server that did not confirm its wipe
        reply, worker, _ = _run(server, "who")
        assert reply["ok"] and server.starts == 2
        worker.stop(grace=1)
    finally:
        server.close()


def test_only_bubblewrap_gets_a_fork_server(spec):
    for mode in ("insecure", "trusted"):
        with pytest.raises(ValueError, match="bubblewrap"):
            ForkServer(WorkerSpec(**{**spec.__dict__, "mode": mode}))
