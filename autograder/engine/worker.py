"""Probe worker: runs grader probes against one assignment's files and answers over the wire.

This file is copied into the worker's directory (as `_autograder_worker.py`, next to `_autograder_wire.py`, the
probes module and the assignment files) and started as::

    python -I _autograder_worker.py --probes probes.py --requests FD --replies FD

It imports nothing from `autograder`; inside the sandbox the repository does not exist. Each request is
``{"op": "call", "probe": NAME, "inputs": {...}, "nonce": N}``; each reply is ``{"op": "reply", "ok": true,
"outputs": {...}, "nonce": N}`` or ``{"op": "reply", "ok": false, "error": {"type", "message", "traceback"},
"nonce": N}``, echoing the request's nonce. The worker exits when the request
pipe closes. Nothing here is trusted by the harness: a reply only ever carries data to be checked.

With ``--fork-server FD --preload torch,numpy`` it is instead the sandbox's fork server: it imports the preloaded
libraries once (never a file of the submission: the worker's folder is not on its import path), then serves
`spawn`, `wait` and `end` requests from the harness on a SOCK_SEQPACKET socket. `spawn` carries the three pipe
ends of a new worker (requests, replies, output) and forks a child that runs `serve` on them; `end` kills every
other process of the sandbox and wipes the writable folders, so nothing of one test reaches the next.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_wire():
    """The wire module beside this file, loaded by path: the fork server keeps the worker's folder (which holds
    the submission's files) off its import path, so that nothing it imports can come from there."""
    spec = importlib.util.spec_from_file_location("_autograder_wire", os.path.join(_HERE, "_autograder_wire.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


wire = _load_wire()

# Frames from these files are the grading machinery, not the student's code: left out of tracebacks.
_MACHINERY = ("_autograder_worker.py", "_autograder_wire.py")
_probes_file: str | None = None  # the probes module's file name, once loaded (its frames are machinery too)


_full_tracebacks = False  # --full-tracebacks (the trusted reference worker): every frame but the machinery's


def _student_traceback(exc: BaseException) -> str:
    """The traceback of the submission's own frames only (the files beside this worker but the machinery and the
    probes), named relative to the submission: no library frame and no path of the grading host."""
    if _full_tracebacks:
        frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
                  if os.path.basename(frame.filename) not in _MACHINERY]
        return "".join(["Traceback (most recent call last):\n", *traceback.format_list(frames),
                        *traceback.format_exception_only(type(exc), exc)])
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(frame.filename)
        name = os.path.relpath(path, _HERE)
        if os.path.dirname(path) != _HERE or name in _MACHINERY or name == _probes_file:
            continue
        frame.filename = name
        frames.append(frame)
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines) if frames else "".join(lines)


def _error_reply(exc: BaseException) -> dict:
    try:
        message = str(exc)
    except BaseException:  # a student exception whose __str__ itself raises
        message = "<exception message could not be printed>"
    try:
        trace = _student_traceback(exc)
    except BaseException:
        trace = ""
    return {
        "op": "reply",
        "ok": False,
        "error": {"type": type(exc).__name__, "message": message[:20000], "traceback": trace[-20000:]},
    }


def _load_probes(path: str):
    global _probes_file
    _probes_file = os.path.basename(path)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _call(probes, request: dict) -> dict:
    name = request.get("probe")
    inputs = request.get("inputs")
    if not isinstance(name, str) or name.startswith("_") or not isinstance(inputs, dict):
        raise ValueError(f"malformed probe request {request!r}")
    probe = getattr(probes, name, None)
    if not callable(probe):
        raise AttributeError(f"the probes module has no probe named {name!r}")
    outputs = probe(**inputs)
    if not isinstance(outputs, dict):
        raise TypeError(f"probe {name!r} must return a dict, got {type(outputs).__name__}")
    return outputs


def serve(probes_path: str, requests_fd: int, replies_fd: int) -> None:
    probes = None
    while True:
        try:
            request = wire.read_message(requests_fd)
        except wire.WireClosed:
            return
        started = time.perf_counter()
        try:
            if probes is None:
                # Imported at the first call: a student module that fails to import fails that call, with its traceback.
                probes = _load_probes(probes_path)
            reply = {"op": "reply", "ok": True, "outputs": _call(probes, request)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from student code are failures too
            reply = _error_reply(exc)
        nonce = request.get("nonce") if isinstance(request, dict) else None
        reply["seconds"] = time.perf_counter() - started
        reply["nonce"] = nonce
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            frame = wire.encode(reply)
        except BaseException as exc:
            frame = wire.encode({**_error_reply(exc), "nonce": nonce})
        wire.write_frame(replies_fd, frame)


# ---------------------------------------------------------------- fork server

_PR_SET_DUMPABLE = 4
# The writable folders of the sandbox (tmpfs each): wiped between workers. In the working directory only what the
# harness bound there (read-only) stays.
_WRITABLE = ("/tmp", "/dev/shm", _HERE)
_SERVER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGALRM)


def _set_dumpable(flag: int) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, flag, 0, 0, 0)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by signal {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class _ForkServer:
    """The parent of every student worker of one sandbox, and its init (pid 1, bwrap --as-pid-1). It runs no student
    code: it only forks, reaps, kills and wipes. As init it cannot be killed or stopped from inside the sandbox,
    and it is not ptrace-able (not dumpable), so a worker can neither steer it nor hide a process in it: after
    `end` no process of the sandbox but this one is left."""

    def __init__(self, control_fd: int, probes_path: str):
        self.control = socket.socket(fileno=control_fd)
        self.probes_path = probes_path
        self.child: int | None = None
        self.status: str | None = None
        # what the sandbox itself put in its writable folders (mount points of read-only binds, and the folders
        # leading to them): path -> mode; everything else is the workers' and goes between them
        self.pristine = {path: _tree_modes(path) for path in _WRITABLE if os.path.isdir(path)}

    def run(self) -> None:
        self.control.settimeout(0.5)
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.control, 65536, 3)
            except TimeoutError:
                self.reap()  # as the sandbox's init it inherits every orphan: none may linger as a zombie
                continue
            except OSError:
                return
            if not data:
                return  # the harness closed its end
            try:
                request = json.loads(data)
                reply = self.handle(request, fds)
            except Exception as exc:  # noqa: BLE001 - a malformed request from the harness; say so, keep serving
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            finally:
                for fd in fds:
                    _close_quietly(fd)
            reply["nonce"] = request.get("nonce") if isinstance(request, dict) else None
            self.control.send(json.dumps(reply).encode())

    def handle(self, request: dict, fds: list[int]) -> dict:
        op = request.get("op")
        if op == "spawn":
            if self.child is not None or len(fds) != 3:
                return {"ok": False, "error": "a worker is still running" if self.child else "expected 3 fds"}
            self.child, self.status = self.spawn(*fds), None
            return {"ok": True}
        if op == "wait":
            return {"ok": True, "status": self.wait(float(request.get("seconds", 0)))}
        if op == "end":
            status = self.wait(float(request.get("grace", 0)))
            others = self.kill_others()
            return {"ok": True, "status": status, "clean": not others and self.wipe()}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def spawn(self, requests_fd: int, replies_fd: int, output_fd: int) -> int:
        pid = os.fork()
        if pid:
            return pid
        try:  # the worker: nothing of the server's reaches student code
            self.control.close()
            for number in _SERVER_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            low, high = sorted((requests_fd, replies_fd))  # every other descriptor of the server stays behind
            os.closerange(3, low)
            os.closerange(low + 1, high)
            os.closerange(high + 1, 1 << 16)
            _set_dumpable(1)
            wire.die_with_parent()
            try:  # past the sandbox's memory limit, the kernel picks a worker's process, never the server
                with open("/proc/self/oom_score_adj", "w") as stream:
                    stream.write("1000")
            except OSError:
                pass
            os.chdir(_HERE)
            sys.path.insert(0, _HERE)
            # what a worker started on its own would see (the server's --fork-server FD is no business of the child)
            sys.argv = [sys.argv[0], "--probes", self.probes_path, "--requests", str(requests_fd),
                        "--replies", str(replies_fd)]
            numpy = sys.modules.get("numpy")
            if numpy is not None:  # a fresh process would seed numpy's global generator from the OS: so does a fork
                numpy.random.seed()
            serve(self.probes_path, requests_fd, replies_fd)
        except BaseException:  # noqa: BLE001 - whatever happens, the child never returns into the server loop
            traceback.print_exc()
            os._exit(70)
        os._exit(0)

    def reap(self) -> None:
        """Collect every exited process: the worker (its exit is remembered) and orphans left to init."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.child, self.status = None, _describe_status(status)

    def wait(self, seconds: float) -> str:
        """The worker's exit, waiting up to `seconds` for it (the last description once it was reaped)."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            self.reap()
            if self.child is None:
                return self.status or "still running"
            if time.monotonic() >= deadline:
                return "still running"
            time.sleep(0.01)

    def kill_others(self) -> list[int]:
        """SIGKILL every other process of the sandbox; the pids still alive after 5 s."""
        deadline = time.monotonic() + 5
        while True:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.005)
            self.reap()
            alive = [pid for pid in _live_pids() if pid != os.getpid()]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.01)

    def wipe(self) -> bool:
        """Return the writable folders to what the sandbox put there: remove everything else (at any depth, never
        crossing into a read-only bind) and restore the modes. True when that state is reached."""
        subprocess.run(["ipcrm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        try:
            for root, pristine in self.pristine.items():
                folders = [path for path in pristine if os.path.isdir(path) and not os.path.islink(path)]
                for folder in sorted(folders, key=len):  # parents first: each must be listable
                    os.chmod(folder, 0o700)
                    for entry in os.scandir(folder):
                        if entry.path not in pristine and not _is_mount_point(entry.path, root):
                            _remove(entry.path)
                for folder, mode in pristine.items():
                    os.chmod(folder, mode)
            return all(_tree_modes(root) == pristine for root, pristine in self.pristine.items())
        except OSError:
            return False


def _tree_modes(root: str) -> dict[str, int]:
    """Every entry under `root` on root's own filesystem (not the binds mounted into it), with its mode."""
    device = os.stat(root).st_dev
    modes = {root: stat.S_IMODE(os.stat(root).st_mode)}
    stack = [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            info = entry.stat(follow_symlinks=False)
            if info.st_dev != device:
                continue
            modes[entry.path] = stat.S_IMODE(info.st_mode)
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
    return modes


def _is_mount_point(path: str, root: str) -> bool:
    """A read-only bind the harness made (another filesystem than the writable folder's own)."""
    return os.stat(path, follow_symlinks=False).st_dev != os.stat(root).st_dev


def _live_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stream:
                state = stream.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            pids.append(int(entry))
    return pids


def _remove(path: str) -> None:
    """Delete a file or a whole tree, whatever modes the worker left on it (iterative: no recursion limit)."""
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    stack = [path]
    while stack:
        current = stack[-1]
        os.chmod(current, 0o700)
        subdirs = []
        for entry in os.scandir(current):
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.path)
            else:
                os.unlink(entry.path)
        if subdirs:
            stack.extend(subdirs)
        else:
            os.rmdir(stack.pop())


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def fork_server(control_fd: int, probes_path: str, preload: list[str]) -> None:
    # It kills every other process it can and empties /tmp: only ever as the first process of its own sandbox.
    if os.getpid() != 1 or _HERE != "/sandbox":
        sys.exit("the fork server runs only as the init of its own sandbox (bubblewrap --as-pid-1)")
    _set_dumpable(0)
    for number in _SERVER_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    _preload(preload)
    _ForkServer(control_fd, probes_path).run()


def _preload(names: list[str]) -> None:
    for name in names:  # from the read-only Python environment only: the worker's folder is not on sys.path yet
        importlib.import_module(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", required=True)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--replies", type=int)
    parser.add_argument("--fork-server", type=int, metavar="FD", help="serve forks on this socket instead")
    parser.add_argument("--preload", default="", help="comma-separated modules imported before the first request")
    parser.add_argument("--full-tracebacks", action="store_true")
    args = parser.parse_args()
    global _full_tracebacks
    _full_tracebacks = args.full_tracebacks
    wire.die_with_parent()
    preload = [name for name in args.preload.split(",") if name]
    if args.fork_server is not None:
        fork_server(args.fork_server, args.probes, preload)
        return
    if args.requests is None or args.replies is None:
        parser.error("--requests and --replies are required (or --fork-server)")
    _preload(preload)  # while the harness is busy elsewhere: a worker started ahead of its first call is ready
    sys.path.insert(0, _HERE)
    serve(args.probes, args.requests, args.replies)


if __name__ == "__main__":
    main()
