"""The harness side of the worker boundary: start a worker, send a probe call, read back plain data.

`ProbeRunner` is what graders see as the `student` and `reference` fixtures. It starts a fresh worker process on
first use (and again after a timeout or crash), enforces the wall-clock timeout per call by killing the worker
with everything it started, and captures the worker's stdout/stderr up to a cap. Nothing that comes back is
trusted: replies are decoded by `wire` (plain values and arrays only) and a reply that is not what a probe may
return fails the call with `StudentError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

from autograder.engine import wire
from autograder.engine.cgroups import Cgroup
from autograder.engine.harness.replies import reply_problem
from autograder.engine.sandbox import WorkerSpec, fork_server_command, prepare_workdir, sandbox_uid, worker_command


class CpuTimeExceeded(wire.WireTimeout):
    """The worker's sandbox used more CPU time during a call than the call may (`cpu_cores` x its timeout)."""


class StudentError(AssertionError):
    """The student's code failed a probe call: raised, timed out, crashed, or replied with something unusable.

    An AssertionError so that pytest reports it as a test failure; the message is what the feedback shows.
    """


class GraderError(RuntimeError):
    """The reference solution failed a probe call: a bug in the grader or the solution, not the student's fault."""


class OutputLog:
    """stdout/stderr of a test's workers, keeping the first `cap` bytes and counting the rest."""

    def __init__(self, cap: int):
        self.cap = cap
        self._chunks: list[bytes] = []
        self._kept = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            room = self.cap - self._kept
            if room > 0:
                self._chunks.append(data[:room])
                self._kept += min(room, len(data))
            self.dropped += max(0, len(data) - max(room, 0))

    def note(self, text: str) -> None:
        with self._lock:
            self._chunks.append(text.encode())

    def text(self) -> str:
        with self._lock:
            body = b"".join(self._chunks).decode("utf-8", errors="replace")
            if self.dropped:
                body += f"\n[... {self.dropped} more bytes of output not shown (limit {self.cap} bytes per test)]\n"
            return body


class _WorkerChannel:
    """The pipes to one running worker: requests and replies, and its output drained into the test's log."""

    def __init__(self, spec: WorkerSpec, log: OutputLog, requests_fd: int, replies_fd: int, output_fd: int,
                 cgroup: Cgroup | None = None):
        self.spec = spec
        self.log = log
        self.cgroup = cgroup  # the sandbox's control group, when the host gives one
        self._oom_kills = cgroup.oom_kills() if cgroup is not None else 0
        self.limits = wire.WireLimits(max_payload_bytes=spec.limits.reply_mb * 1024 * 1024)
        self._requests = requests_fd
        self._replies = replies_fd
        self._reader = threading.Thread(target=self._drain, args=(output_fd,), daemon=True)
        self._reader.start()

    def _drain(self, fd: int) -> None:
        _drain_into(fd, self.log)

    def call(self, probe: str, inputs: dict, timeout: float) -> dict:
        """Send one call; return the worker's reply message. Raises wire.WireError subclasses on failure."""
        deadline = time.monotonic() + timeout
        # A fresh nonce per call, echoed by the worker: a frame written before this request (or left over from an
        # earlier call) cannot pass for its reply.
        nonce = secrets.token_hex(16)
        frame = wire.encode({"op": "call", "probe": probe, "inputs": inputs, "nonce": nonce})
        cpu_started = self.cpu_seconds()
        self._send(frame, deadline)
        if cpu_started is not None:
            self._await_reply(deadline, cpu_started, self.spec.limits.cpu_cores * timeout)
        reply = wire.read_message(self._replies, self.limits, deadline)
        if reply.get("op") != "reply" or not isinstance(reply.get("ok"), bool):
            raise wire.WireError("the reply frame is not a probe reply")
        if reply.get("nonce") != nonce:
            raise wire.WireError("a reply frame that does not answer this call (written out of turn)")
        return reply

    def _await_reply(self, deadline: float, cpu_started: float, cpu_limit: float) -> None:
        """Wait for the reply's first byte (or the deadline), checking the sandbox's CPU time as it goes."""
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._replies], [], [], min(left, 0.25))
            if ready:
                return
            used = (self.cpu_seconds() or cpu_started) - cpu_started
            if used > cpu_limit:
                raise CpuTimeExceeded(f"{used:.1f} s of CPU time, more than the {cpu_limit:g} s allowed")

    def _send(self, frame: bytes, deadline: float) -> None:
        # Sent from a thread: a worker that never reads its requests must not block the harness past the deadline.
        errors: list[BaseException] = []

        def send():
            try:
                wire.write_frame(self._requests, frame)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(max(0.0, deadline - time.monotonic()))
        if sender.is_alive():
            raise wire.WireTimeout("the worker did not read its request before the deadline")
        if errors:
            raise wire.WireClosed(f"the worker closed its request pipe ({errors[0]})")

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this worker's sandbox for its memory since the worker started."""
        return self.cgroup is not None and self.cgroup.oom_kills() > self._oom_kills

    def cpu_seconds(self) -> float | None:
        return self.cgroup.cpu_seconds() if self.cgroup is not None else None

    def _close_pipes(self) -> None:
        _close_quietly(self._requests)
        _close_quietly(self._replies)
        self._reader.join(5)


def _pipes() -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(requests, replies, output) pipes as (harness end, worker end) pairs."""
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    output_read, output_write = os.pipe()
    return (requests_write, requests_read), (replies_read, replies_write), (output_read, output_write)


class WorkerProcess(_WorkerChannel):
    """A worker started as a process of its own (its own sandbox): the reference's, and the student's when grading
    with fresh workers (`--worker-start fresh`, or without bubblewrap)."""

    def __init__(self, spec: WorkerSpec, log: OutputLog):
        self._workdir = prepare_workdir(spec, sandbox_uid())
        cgroup = _sandbox_cgroup(spec) if spec.mode != "trusted" else None
        (requests, requests_end), (replies, replies_end), (output, output_end) = _pipes()
        try:
            command, env, cwd = worker_command(spec, requests_end, replies_end, self._workdir)
            if cgroup is not None:
                command = cgroup.enter(command)
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output_end, stderr=output_end, env=env, cwd=cwd,
                pass_fds=(requests_end, replies_end),
                # its own session, so that a kill reaches whatever it started (trusted workers stay in the
                # harness's group, so that a harness killed on its total timeout takes them along)
                start_new_session=spec.mode != "trusted",
            )
        except BaseException:
            for fd in (requests, replies, output):
                os.close(fd)
            if cgroup is not None:
                cgroup.destroy()
            raise
        finally:
            for fd in (requests_end, replies_end, output_end):
                os.close(fd)
        super().__init__(spec, log, requests, replies, output, cgroup)

    def exit_description(self) -> str:
        code = self.process.poll()
        if code is None:
            return "still running"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return f"killed by signal {name}"
        return f"exited with code {code}"

    def wait_exit(self, seconds: float) -> None:
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, grace: float = 0.0) -> None:
        """End the worker: close its requests (it exits on EOF) and give it `grace` seconds, then kill it and
        everything it started (its pid namespace dies with bwrap; otherwise its session)."""
        _close_quietly(self._requests)
        if grace > 0:
            self.wait_exit(grace)
        if self.process.poll() is None:
            try:
                if self.spec.mode == "trusted":
                    self.process.kill()
                else:
                    os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        if self.spec.mode == "insecure":
            _kill_all_of_uid(sandbox_uid())
        if self.cgroup is not None:
            self.cgroup.destroy()
        self._close_pipes()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


class ForkServerError(RuntimeError):
    """The fork server did not answer as it must; it is stopped and the next worker gets a new one."""


# What a fork server may say of a worker's end; anything else is shown as "ended".
_EXIT_STATUS = re.compile(r"(exited with code -?\d{1,3}|killed by signal [A-Z0-9]{1,12}|still running)")
SERVER_START_TIMEOUT = 300  # importing torch on a loaded machine; the total timeout still bounds the run
SERVER_REPLY_TIMEOUT = 10  # beyond the grace of an `end`: killing and wiping take milliseconds


class ForkServer:
    """One sandbox per grading run and data view whose first process imports the heavy libraries once (never the
    submission) and forks a fresh worker per test (`autograder/engine/worker.py`, fork-server mode).

    Between workers it kills every other process of the sandbox and wipes its writable folders; when it does not
    confirm both, or does not answer, the whole sandbox is killed and the next worker gets a new one. A worker can
    stop its server (same uid) but not steer it: the server cannot be traced and ignores catchable signals."""

    def __init__(self, spec: WorkerSpec):
        if spec.mode != "bwrap":
            raise ValueError("a fork server runs only inside bubblewrap")
        self.spec = spec
        self.log = OutputLog(16 * 1024)  # the server's own output: only shown when it fails
        self.starts = 0
        self._fresh = True  # the next request goes to a server still importing `preload`
        self._process: subprocess.Popen | None = None
        self.cgroup: Cgroup | None = None
        self._socket: socket.socket | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the sandbox now (if it is not running), so that its imports overlap the harness's other work."""
        if self._process is None:
            self._start()

    def spawn(self, log: OutputLog) -> "ForkedWorker":
        """A new worker whose output goes to `log`. Retried once on a new server if the current one fails."""
        for attempt in (1, 2):
            self.start()
            (requests, requests_end), (replies, replies_end), (output, output_end) = _pipes()
            try:
                timeout = SERVER_START_TIMEOUT if self._fresh else SERVER_REPLY_TIMEOUT
                self._request({"op": "spawn"}, timeout, fds=(requests_end, replies_end, output_end))
            except ForkServerError:
                for fd in (requests, replies, output):
                    os.close(fd)
                self.kill()
                if attempt == 2:
                    raise
                continue
            finally:
                for fd in (requests_end, replies_end, output_end):
                    os.close(fd)
            self._fresh = False
            return ForkedWorker(self, log, requests, replies, output, self.cgroup)
        raise AssertionError("unreachable")

    def _start(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        output_read, output_write = os.pipe()
        self.cgroup = _sandbox_cgroup(self.spec)
        try:
            command, env, cwd = fork_server_command(self.spec, theirs.fileno())
            if self.cgroup is not None:
                command = self.cgroup.enter(command)
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output_write,
                                             stderr=output_write, env=env, cwd=cwd, pass_fds=(theirs.fileno(),),
                                             start_new_session=True)
        except BaseException:
            mine.close()
            os.close(output_read)
            self._destroy_cgroup()
            raise
        finally:
            theirs.close()
            os.close(output_write)
        self._socket = mine
        self._fresh = True
        self.starts += 1
        self._reader = threading.Thread(target=_drain_into, args=(output_read, self.log), daemon=True)
        self._reader.start()

    def _request(self, message: dict, timeout: float, fds: tuple[int, ...] = ()) -> dict:
        if self._socket is None:
            raise ForkServerError("the fork server is not running")
        nonce = secrets.token_hex(16)
        try:
            self._socket.settimeout(timeout)
            socket.send_fds(self._socket, [json.dumps({**message, "nonce": nonce}).encode()], list(fds))
            data = self._socket.recv(65536)
            reply = json.loads(data) if data else None
        except (OSError, ValueError) as exc:
            raise ForkServerError(f"{message['op']}: no usable answer from the fork server ({exc})") from None
        if not isinstance(reply, dict) or reply.get("nonce") != nonce or reply.get("ok") is not True:
            raise ForkServerError(f"{message['op']}: the fork server answered {str(reply)[:200]!r}\n"
                                  f"{self.log.text()[-2000:]}")
        return reply

    def end(self, grace: float) -> str:
        """Stop the current worker (after up to `grace` s for it to exit by itself) and everything it started, and
        wipe the writable folders; the worker's exit description. A server that cannot vouch for both is killed."""
        try:
            reply = self._request({"op": "end", "grace": grace}, grace + SERVER_REPLY_TIMEOUT)
        except ForkServerError:
            self.kill()
            return "stopped with its sandbox"
        if reply.get("clean") is not True:
            self.kill()
        return _exit_status(reply.get("status"))

    def wait(self, seconds: float) -> str:
        try:
            return _exit_status(self._request({"op": "wait", "seconds": seconds}, seconds + SERVER_REPLY_TIMEOUT)
                                .get("status"))
        except ForkServerError:
            self.kill()
            return "stopped with its sandbox"

    def kill(self) -> None:
        """Kill the whole sandbox (its pid namespace goes with bwrap); the next spawn starts a new one."""
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._process.wait()
            self._process = None
        self._destroy_cgroup()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    close = kill

    def _destroy_cgroup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.destroy()
            self.cgroup = None


class ForkedWorker(_WorkerChannel):
    """A worker forked by a `ForkServer`: the same calls as a `WorkerProcess`; its end goes through the server."""

    def __init__(self, server: ForkServer, log: OutputLog, requests: int, replies: int, output: int,
                 cgroup: Cgroup | None):
        self.server = server
        self._status = "still running"
        super().__init__(server.spec, log, requests, replies, output, cgroup)

    def exit_description(self) -> str:
        return self._status

    def wait_exit(self, seconds: float) -> None:
        self._status = self.server.wait(seconds)

    def stop(self, grace: float = 0.0) -> None:
        _close_quietly(self._requests)  # a well-behaved worker exits on EOF
        self._status = self.server.end(grace)
        self._close_pipes()


def _sandbox_cgroup(spec: WorkerSpec) -> Cgroup | None:
    """A control group for one sandbox (memory of all its processes and folders, its process count), if any."""
    return Cgroup.create(spec.limits.sandbox_memory_mb, spec.limits.max_processes + 16)


def _drain_into(fd: int, log: OutputLog) -> None:
    with os.fdopen(fd, "rb", buffering=0) as stream:
        while chunk := stream.read(65536):
            log.add(chunk)


def _exit_status(text) -> str:
    return text if isinstance(text, str) and _EXIT_STATUS.fullmatch(text) else "ended"


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _kill_all_of_uid(uid: int | None) -> None:
    """Without a pid namespace, a `setsid` child escapes the process group: kill every process of the worker uid."""
    if uid is None:
        return
    subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", "kill", "-KILL", "-1"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


class ProbeRunner:
    """`.run(probe, **inputs) -> dict` against one side (student or reference). One per test."""

    def __init__(self, spec: WorkerSpec, timeout: float, log: OutputLog, side: str,
                 server: ForkServer | None = None, replies: dict | None = None):
        self.spec = spec
        self.replies = replies  # the probes' declared replies (`replies.load_reply_schemas`); None checks none
        self.timeout = timeout
        self.log = log
        self.side = side
        self.server = server  # workers are forked by it; without one, each is a process (and sandbox) of its own
        self._timeout_note = ""  # appended to a timeout's message within `time_limit`
        self._worker: WorkerProcess | ForkedWorker | None = None
        self.calls: list[dict] = []  # (probe, seconds) of each call, for timing reports

    @contextlib.contextmanager
    def time_limit(self, seconds: float, why: str = ""):
        """Within the block, calls time out after `seconds` (never more than the test's own timeout); `why` is
        added to the timeout's message."""
        saved = self.timeout, self._timeout_note
        self.timeout, self._timeout_note = min(self.timeout, max(0.001, float(seconds))), why
        try:
            yield self
        finally:
            self.timeout, self._timeout_note = saved

    def start(self) -> None:
        """Start this side's worker now if none is running (it imports `spec.preload` while the harness goes on)."""
        if self._worker is None:
            self._worker = (self.server.spawn(self.log) if self.server is not None
                            else WorkerProcess(self.spec, self.log))

    def run(self, probe: str, /, **inputs) -> dict:
        """Run `probe(**inputs)` in this side's worker and return its outputs (plain values and arrays)."""
        error = GraderError if self.side == "reference" else StudentError
        try:
            self.start()
        except Exception as exc:  # the machinery failed, not the student's code
            raise GraderError(f"{probe}: could not start the {self.side} worker: {exc}") from exc
        worker = self._worker
        started, cpu_started = time.perf_counter(), worker.cpu_seconds()
        try:
            reply = worker.call(probe, inputs, self.timeout)
        except CpuTimeExceeded as exc:
            self.close(grace=0)
            raise error(f"{probe}: used {exc} ({self.spec.limits.cpu_cores:g} cores' worth of its {self.timeout:g} s "
                        "timeout; the worker was stopped): run on fewer processes or threads") from None
        except wire.WireTimeout:
            self.close(grace=0)
            raise error(f"{probe}: timed out after {self.timeout:g} s (the worker was stopped){self._timeout_note}"
                        ) from None
        except wire.WireClosed:
            worker.wait_exit(2)
            how, out_of_memory = worker.exit_description(), worker.oom_killed()
            self.close(grace=0)
            if out_of_memory:
                raise error(f"{probe}: ran out of memory: the worker's processes together passed the sandbox's "
                            f"{self.spec.limits.sandbox_memory_mb} MiB (their memory and the files written to its "
                            f"folders), and the kernel stopped one ({how})") from None
            raise error(f"{probe}: the worker process {how} before replying{self._memory_hint(how)}") from None
        except wire.WireError as exc:
            self.close(grace=0)
            raise error(f"{probe}: unusable reply from the worker: {exc}") from None
        cpu_now = worker.cpu_seconds()
        self.calls.append({"probe": probe, "seconds": time.perf_counter() - started,
                           "cpu_seconds": None if cpu_started is None or cpu_now is None else cpu_now - cpu_started,
                           "worker_seconds": reply.get("seconds")})
        if reply["ok"]:
            outputs = reply.get("outputs")
            if not isinstance(outputs, dict):
                raise error(f"{probe}: the reply carries no outputs dict")
            problem = reply_problem(probe, outputs, self.replies) if self.replies is not None else None
            if problem is not None:
                raise error(f"{probe}: unusable reply from the worker: {problem}")
            return outputs
        raise error(_describe_failure(probe, reply.get("error"), self.spec))

    def _memory_hint(self, how: str) -> str:
        if "SIGKILL" in how or "SIGSEGV" in how or "SIGXFSZ" in how:
            return (f" (a common cause is exceeding a limit: {self.spec.limits.memory_mb} MiB of memory, "
                    f"{self.spec.limits.max_file_mb} MiB per file written)")
        return ""

    def close(self, grace: float = 1.0) -> None:
        """Stop this side's worker (a well-behaved one exits by itself within `grace` seconds)."""
        if self._worker is not None:
            self._worker.stop(grace)
            self._worker = None


def _describe_failure(probe: str, error, spec: WorkerSpec) -> str:
    if not isinstance(error, dict):
        return f"{probe}: the worker reported a failure without details"
    kind = str(error.get("type", "Exception"))
    message = str(error.get("message", ""))
    trace = str(error.get("traceback", ""))
    if kind == "OutOfMemoryError" or "CUDA out of memory" in message:
        first_line = message.splitlines()[0] if message else ""
        headline = f"{probe}: ran out of GPU memory on {spec.device} (CUDA OOM): {first_line}"
    elif kind == "MemoryError":
        headline = f"{probe}: ran out of memory (the limit is {spec.limits.memory_mb} MiB)"
    else:
        headline = f"{probe} raised {kind}: {message}"
    return f"{headline}\n{trace}".rstrip()
