"""Where the submissions of a class get graded: a local pool of processes, or Slurm through submitit.

Both executors take `GradingJob`s (a student id and a JSON-able spec for the task function) and yield one `Outcome`
per job as it finishes, in completion order. The task function (`module:function`, called with the spec) returns a
results dict; anything it raises, a crash of its process, or a timeout becomes an Outcome with `error` set, so one
submission can never take down, or change, the outcome of another.

Local: every job runs in a fresh `python -m autograder.classroom.cluster` process in its own session (a crash, a timeout kill or
an OOM kill touches only that process group). At most `jobs` run at once; with GPUs, each concurrent job owns one GPU
and gets `device="cuda:K"` in its spec. Ctrl-C (or SIGTERM, see `classroom`) kills every running job's process group.

Slurm: `submitit.AutoExecutor` submits the jobs as one job array; results come back through submitit's pickles in
`folder`, which must be on a filesystem shared by this machine and the compute nodes (as must the submissions, the
kit and its virtualenv). `cluster="local"` runs the same code path with submitit's local executor (used by the tests).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

DEFAULT_TASK = "autograder.classroom.grade_all:grade_task"
_STDERR_TAIL_CHARS = 2000
_STOP_GRACE_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@dataclass(frozen=True)
class GradingJob:
    student_id: str
    spec: dict[str, Any]  # JSON-able; the executor adds "device"


@dataclass
class Outcome:
    student_id: str
    results: dict[str, Any] | None  # the results.json dict, or None when the grading itself failed
    error: str = ""  # why there are no results
    seconds: float | None = 0.0  # grading time (never a queue's wait); None when it could not be measured
    device: str = "cpu"
    log: str = field(default="", repr=False)  # the tail of the grading process's stderr, for error reports


def resolve(function: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`"package.module:function"` -> the function."""
    module_name, _, attribute = function.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"task function {function!r} must be written module:function")
    return getattr(importlib.import_module(module_name), attribute)


def run_task(function: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Call the task function on `spec` and check that it returned a results dict (the unit a job runs)."""
    results = resolve(function)(spec)
    if not isinstance(results, dict):
        raise TypeError(f"task function {function} returned {type(results).__name__}, expected a results dict")
    return results


class LocalExecutor:
    """Run jobs as separate processes on this machine, `jobs` at a time (one per GPU when `gpus` is given)."""

    def __init__(self, jobs: int = 1, gpus: list[int] | None = None, timeout_s: float = 3600.0,
                 function: str = DEFAULT_TASK, env: dict[str, str] | None = None):
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        self.devices = [f"cuda:{gpu}" for gpu in gpus[:jobs]] if gpus else ["cpu"] * jobs
        self.timeout_s = timeout_s
        self.function = function
        self.env = env
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run(self, jobs: list[GradingJob]) -> Iterator[Outcome]:
        self._stopping.clear()
        free_devices: queue.SimpleQueue[str] = queue.SimpleQueue()
        for device in self.devices:
            free_devices.put(device)
        with tempfile.TemporaryDirectory(prefix="autograder-jobs-") as workdir, \
                concurrent.futures.ThreadPoolExecutor(max_workers=len(self.devices)) as pool:
            futures = [pool.submit(self._run_one, job, free_devices, Path(workdir)) for job in jobs]
            try:
                for future in concurrent.futures.as_completed(futures):
                    yield future.result()
            finally:
                # Reached on Ctrl-C, on an error in the caller, or when the caller stops iterating.
                for future in futures:
                    future.cancel()
                self._kill_running()

    def _run_one(self, job: GradingJob, free_devices: queue.SimpleQueue, workdir: Path) -> Outcome:
        device = free_devices.get()
        try:
            return self._run_on(job, device, workdir)
        finally:
            free_devices.put(device)

    def _run_on(self, job: GradingJob, device: str, workdir: Path) -> Outcome:
        spec_path = workdir / f"{job.student_id}.spec.json"
        out_path = workdir / f"{job.student_id}.out.json"
        log_path = workdir / f"{job.student_id}.log"
        spec_path.write_text(json.dumps({**job.spec, "device": device}))
        command = [sys.executable, "-m", "autograder.classroom.cluster", "--function", self.function, str(spec_path),
                   str(out_path)]
        started = time.monotonic()
        with open(log_path, "wb") as log:
            with self._lock:  # with _kill_running's lock: no job starts after the running ones were stopped
                if self._stopping.is_set():
                    return Outcome(job.student_id, None, "not started: grading was interrupted", 0.0, device)
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, env=self.env)
                self._running.add(process)
            try:
                returncode = process.wait(timeout=self.timeout_s)
                error = "" if returncode == 0 else _exit_reason(returncode)
            except subprocess.TimeoutExpired:
                _stop([process])
                error = f"grading took longer than {self.timeout_s:g} s and was stopped"
            finally:
                with self._lock:
                    self._running.discard(process)
        seconds = time.monotonic() - started
        log_tail = _tail(log_path)
        if not error:
            try:
                reply = json.loads(out_path.read_text())
            except (OSError, ValueError) as exc:
                reply = {"error": f"the grading process wrote no readable result ({exc})"}
            if "results" in reply:
                return Outcome(job.student_id, reply["results"], "", seconds, device, log_tail)
            error = str(reply.get("error") or "the grading process reported neither results nor an error")
        return Outcome(job.student_id, None, error, seconds, device, log_tail)

    def _kill_running(self) -> None:
        with self._lock:
            self._stopping.set()
            running = list(self._running)
        _stop(running)


def _stop(processes: list[subprocess.Popen], grace_s: float = _STOP_GRACE_S) -> None:
    """SIGTERM each job's process group (the job then kills every process it started, see `_end_job`), SIGKILL
    whatever is still there after `grace_s`."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` in the process tree (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
        if fields and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _end_job(signum: int, frame: Any) -> None:
    """A job told to stop kills its whole tree first: the engine starts its harness in a session of its own, which
    the executor's killpg would miss, and a stray harness would keep loading the machine other students share."""
    for _ in range(5):  # new processes may appear while we kill; a few rounds catch them
        pids = _descendants(os.getpid())
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    os._exit(128 + signum)


def _become_subreaper() -> None:
    """Orphans of the job's processes (a double fork) re-parent to the job, so `_end_job` still finds them."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (SIGKILL: often the out-of-memory killer)" if -returncode == signal.SIGKILL else ""
        return f"the grading process was killed by {name}{hint}"
    return f"the grading process exited with code {returncode}"


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-_STDERR_TAIL_CHARS:].decode("utf-8", "replace")


class SlurmExecutor:
    """Submit every job as one Slurm job array through submitit and yield outcomes as the array tasks finish."""

    def __init__(self, folder: str | Path, *, partition: str | None = None, time_min: int = 60, gpus: int = 0,
                 parallelism: int = 64, cpus_per_task: int = 2, mem_gb: float | None = None,
                 cluster: str | None = "slurm", function: str = DEFAULT_TASK, poll_s: float = 10.0,
                 extra_parameters: dict[str, Any] | None = None):
        import submitit  # lazy: only this executor needs it

        self._submitit = submitit
        self.function = function
        self.poll_s = poll_s
        self.gpus = gpus
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        parameters: dict[str, Any] = dict(timeout_min=time_min, gpus_per_node=gpus, cpus_per_task=cpus_per_task,
                                          slurm_array_parallelism=parallelism, name="autograder")
        if partition:
            parameters["slurm_partition"] = partition
        if mem_gb is not None:
            parameters["mem_gb"] = mem_gb
        parameters.update(extra_parameters or {})
        self.executor.update_parameters(**parameters)

    def run(self, jobs: list[GradingJob]) -> Iterator[Outcome]:
        if not jobs:
            return
        device = "cuda" if self.gpus else "cpu"  # the array task picks its allocated GPU: see _run_allocated
        specs = [{**job.spec, "device": device} for job in jobs]
        submitted = self.executor.map_array(_run_allocated, [self.function] * len(specs), specs)
        by_job = {id(array_job): job for array_job, job in zip(submitted, jobs)}
        finished = False
        try:
            for array_job in self._submitit.helpers.as_completed(submitted, poll_frequency=self.poll_s):
                job = by_job[id(array_job)]
                try:
                    reply = array_job.result()
                except Exception as exc:  # noqa: BLE001 - any failure of the array task is this submission's error
                    yield Outcome(job.student_id, None, _slurm_error(array_job, exc), _slurm_elapsed(array_job),
                                  device)
                    continue
                results, seconds = reply["results"], reply["seconds"]
                # The GPU the task was given, as the engine recorded it.
                graded_on = str((results.get("extra_data") or {}).get("device") or device)
                yield Outcome(job.student_id, results, "", seconds, graded_on)
            finished = True
        finally:
            if not finished:
                for array_job in submitted:
                    with contextlib.suppress(Exception):
                        if not array_job.done():
                            array_job.cancel(check=False)


def _run_allocated(function: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An array task: grade on the GPU Slurm allocated to this task; reply {"results", "seconds"}, the grading time
    measured here, in the task (seen from the submitting side it would include the wait in the queue).

    Slurm exports the allocation as CUDA_VISIBLE_DEVICES (physical indices, e.g. "3"). The engine gives the worker
    `CUDA_VISIBLE_DEVICES=<index of device>` outright, so the device must name that physical index, not cuda:0.
    """
    if spec.get("device") == "cuda":
        first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        spec = {**spec, "device": f"cuda:{first}" if first.isdigit() else "cuda"}
    started = time.monotonic()
    results = run_task(function, spec)
    return {"results": results, "seconds": time.monotonic() - started}


def _slurm_elapsed(array_job: Any) -> float | None:
    """A failed task's run time from Slurm's accounting (queue time excluded); None where sacct has none."""
    with contextlib.suppress(Exception):
        elapsed = array_job.get_info().get("Elapsed", "")
        if elapsed:
            parts = [float(p) for p in elapsed.replace("-", ":").split(":")]
            seconds = 0.0
            for part, unit in zip(reversed(parts), (1, 60, 3600, 86400)):
                seconds += part * unit
            return seconds
    return None


def _slurm_error(array_job: Any, exc: Exception) -> str:
    """The exception line of the task's traceback (submitit frames it between dashed rules), and where the log is."""
    text = str(exc)
    sections = text.split("-" * 22)
    lines = [line.strip() for line in (sections[1] if len(sections) > 2 else text).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    with contextlib.suppress(Exception):
        return f"Slurm job {array_job.job_id} failed: {reason} (log: {array_job.paths.stderr})"
    return f"Slurm job {array_job.job_id} failed: {reason}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of one local job: read the spec, run the task, write {"results": ...} or {"error": ...}."""
    parser = argparse.ArgumentParser(prog="python -m autograder.classroom.cluster",
                                     description="run one grading task (used by grade-all's local executor)")
    parser.add_argument("--function", default=DEFAULT_TASK)
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    _become_subreaper()
    signal.signal(signal.SIGTERM, _end_job)
    spec = json.loads(args.spec.read_text())
    try:
        reply: dict[str, Any] = {"results": run_task(args.function, spec)}
    except Exception as exc:  # noqa: BLE001 - reported to the parent as this submission's error
        traceback.print_exc()
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(reply))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
