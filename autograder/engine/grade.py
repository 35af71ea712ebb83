"""`python -m autograder grade ASSIGNMENT SUBMISSION`: grade one submission in the sandbox.

`grade_submission()` is the Python API (used by `grade-all` in parallel processes): every call works in its own
private temporary folder and shares no state with any other call.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder import REPO_ROOT
from autograder.assignment import Assignment, AssignmentError, load_assignment
from autograder.engine import cgroups
from autograder.engine.harness.runner import _kill_all_of_uid
from autograder.classroom.report import render_html, render_markdown, render_table
from autograder.engine.results import build_results, read_events
from autograder.engine.sandbox import (UID_BASE, SandboxUnavailable, check_bwrap, cuda_index, inode_caps_available,
                                       reachable_by_others, sandbox_uid)
from autograder.engine.submission import IntakeLimits, collect_submission
from autograder.engine.workdir import build_worker_files

HARNESS_LOG_TAIL = 6000
WORKER_STARTS = ("fork", "fresh")


def default_data_dir() -> Path | None:
    try:
        from omniglot_data import data_dir
    except ImportError:
        return None
    return Path(data_dir()).resolve()


def _private_dir(parent: Path, name: str, mode: int) -> Path:
    path = parent / name
    path.mkdir(mode=mode)
    path.chmod(mode)
    return path


def _scratch_dir(run_dir: Path) -> Path:
    """The folder the sandbox uid reads the worker's files from: in the run folder, unless that lies where the uid
    cannot go (a TMPDIR or work_root under a private home), then in the system's shared temporary folder. It holds
    nothing secret: the submission's whitelisted files, the provided files and the probes module."""
    if sandbox_uid() is None or reachable_by_others(run_dir, read=False):
        return _private_dir(run_dir, "scratch", 0o711)
    for shared in (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")):
        if shared.is_dir() and reachable_by_others(shared) and os.stat(shared).st_mode & stat.S_ISVTX:
            scratch = Path(tempfile.mkdtemp(prefix="autograder-scratch-", dir=shared))
            scratch.chmod(0o711)
            return scratch
    raise SandboxUnavailable(f"{run_dir} is not reachable by an unprivileged user and no shared temporary folder "
                             "(/tmp) is; set TMPDIR (or work_root) to a folder others can traverse")


def _selected_tests(assignment: Assignment, select) -> list[str]:
    """Node ids (`test_file.py::test_name`, relative to the graders folder) as pytest arguments; all tests if None."""
    if select is None:
        return [str(assignment.graders_dir)]
    targets = []
    for node_id in select:
        file_name, _, test_name = str(node_id).partition("::")
        if not test_name or "/" in file_name or not (assignment.graders_dir / file_name).is_file():
            raise ValueError(f"select: {node_id!r} is not a test of {assignment.graders_dir} "
                             "(expected 'test_file.py::test_name')")
        targets.append(str(assignment.graders_dir / node_id))
    if not targets:
        raise ValueError("select: no tests given")
    return targets


def _harness_command(assignment: Assignment, config_path: Path, ini_path: Path, targets: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *targets,
        "-p", "autograder.engine.harness.plugin", "-p", "no:cacheprovider",
        "--noconftest", "-c", str(ini_path), "--rootdir", str(assignment.graders_dir),
        "-q", "--tb=short", "--strict-markers",  # a misspelt marker (`@pytest.mark.point`) is a grader error
        "--autograder-config", str(config_path),
    ]


def _harness_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def _run_harness(command: list[str], env: dict, cwd: Path, log_path: Path, timeout: float) -> tuple[str | None, int]:
    """Run the harness; return a description of what went wrong with it (or None) and its pid."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return f"the grading run exceeded its total time limit of {timeout:g} s and was stopped", process.pid
        finally:
            _kill_leftover_workers(process.pid)
    # pytest exit codes: 0 all passed, 1 some tests failed (both normal for grading), others are harness trouble.
    if code in (0, 1):
        return None, process.pid
    tail = log_path.read_text(errors="replace")[-HARNESS_LOG_TAIL:]
    return f"the grading harness exited with code {code}:\n{tail}", process.pid


def _kill_leftover_workers(harness_pid: int) -> None:
    """Belt and braces after every run: nothing of the worker uid may outlive grading (insecure mode has no pid
    namespace to take a `setsid` child down with it)."""
    if os.geteuid() == 0:
        _kill_all_of_uid(UID_BASE + harness_pid)


# Linux pids stay below 2**22, so worker uids of live or dead grading runs fall in [UID_BASE, UID_BASE + 2**22).
_WORKER_UID_SPAN = 1 << 22


def live_process_uids() -> dict[int, int]:
    """pid -> real uid of every live (non-zombie) process."""
    uids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if not fields.get("State", "").strip().startswith("Z"):
            uids[int(entry)] = int(fields["Uid"].split()[0])
    return uids


def reap_orphaned_workers() -> list[int]:
    """Kill sandboxes whose grading run is gone; return the worker uids that were reaped.

    A worker's uid is UID_BASE + its harness's pid. bubblewrap's --die-with-parent has a window while it starts
    in which the death of the harness (the grader SIGKILLed or OOM-killed at that instant) goes unnoticed, and the
    sandbox would then run until its code ends. Every grading run starts by removing such orphans.
    """
    if os.geteuid() != 0:
        return []
    uids = live_process_uids()
    orphaned = {uid for uid in uids.values()
                if UID_BASE <= uid < UID_BASE + _WORKER_UID_SPAN and (uid - UID_BASE) not in uids}
    for uid in sorted(orphaned):
        _kill_all_of_uid(uid)
    cgroups.remove_orphans()
    return sorted(orphaned)


def grade_submission(
    assignment: Assignment,
    submission: str | Path,
    *,
    profile: str = "cpu",
    device: str = "cpu",
    insecure_no_sandbox: bool = False,
    data_dir: str | Path | None = None,
    intake_limits: IntakeLimits = IntakeLimits(),
    work_root: str | Path | None = None,
    select: list[str] | None = None,
    worker_start: str = "fork",
) -> dict:
    """Grade one submission (folder, zip or single file); return Gradescope-style results.

    Raises SandboxUnavailable when bubblewrap cannot run here and `insecure_no_sandbox` is False, and
    AssignmentError / ValueError for a bad profile or device. Anything the submission does only affects its score.
    `select` (node ids `test_file.py::test_name` of the graders folder) runs only those tests: the results hold
    just them (used by the graders' validity corpus to keep CI fast). `worker_start` is "fork" (each test's worker
    is forked by one pre-imported parent per data view inside the sandbox) or "fresh" (each is a sandbox and a
    Python of its own, as before the fork server; slower, same grades).
    """
    started = time.monotonic()
    assignment.profile(profile)
    cuda_index(device)
    targets = _selected_tests(assignment, select)
    if worker_start not in WORKER_STARTS:
        raise ValueError(f"worker_start must be one of {WORKER_STARTS}, got {worker_start!r}")
    reap_orphaned_workers()
    mode = "insecure" if insecure_no_sandbox else "bwrap"
    data_dir = Path(data_dir).resolve() if data_dir is not None else default_data_dir()
    run_dir = Path(tempfile.mkdtemp(prefix=f"autograder-{assignment.name}-", dir=work_root))
    scratch_dir = None
    try:
        run_dir.chmod(0o711)  # the sandbox uid must traverse it to reach scratch/, but not list it
        harness_dir = _private_dir(run_dir, "harness", 0o700)
        scratch_dir = _scratch_dir(run_dir)
        if mode == "bwrap":
            check_bwrap(scratch_dir)
        intake = collect_submission(submission, assignment.student_files, harness_dir / "submission", intake_limits)
        provided = assignment.provided_sources()
        build_worker_files(scratch_dir / "student", {**intake.files, **provided}, assignment.probes_path)
        build_worker_files(harness_dir / "reference", assignment.reference_sources(), assignment.probes_path)
        results_path = harness_dir / "events.jsonl"
        config = {
            "assignment": assignment.to_json(),
            "student_files_dir": str(scratch_dir / "student"),
            "reference_files_dir": str(harness_dir / "reference"),
            "scratch_dir": str(scratch_dir),
            "results_path": str(results_path),
            "profile": profile,
            "device": device,
            "mode": mode,
            "data_dir": str(data_dir) if data_dir else None,
            "worker_start": worker_start,
        }
        config_path = harness_dir / "run.json"
        config_path.write_text(json.dumps(config, indent=1))
        ini_path = harness_dir / "pytest.ini"
        ini_path.write_text("[pytest]\npython_files = test_*.py\n")
        command = _harness_command(assignment, config_path, ini_path, targets)
        if cuda_index(device) is None:  # the harness holds what workers send: bounded too (CUDA maps far more)
            command = ["prlimit", f"--as={assignment.limits.harness_memory_mb * 1024 * 1024}", "--", *command]
        problem, harness_pid = _run_harness(command, _harness_env(harness_dir), harness_dir,
                                            harness_dir / "harness.log", assignment.total_timeout)
        extra = {"assignment": assignment.name, "profile": profile, "device": device, "sandbox": mode,
                 "worker_start": worker_start if mode == "bwrap" else "fresh",
                 "inode_caps": mode == "bwrap" and inode_caps_available(),
                 "cgroups": cgroups.available(),
                 "submitted_files": sorted(intake.files), "missing_files": intake.missing,
                 "rejected": intake.rejected,
                 "worker_uid": UID_BASE + harness_pid if os.geteuid() == 0 else os.geteuid()}
        return build_results(read_events(results_path), harness_problem=problem, intake_summary=intake.summary(),
                             extra_data=extra, execution_time=time.monotonic() - started)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        if scratch_dir is not None and run_dir not in scratch_dir.parents:
            shutil.rmtree(scratch_dir, ignore_errors=True)


def add_arguments(parser) -> None:
    parser.add_argument("assignment", help="hw1, hw2, or a graders folder holding an assignment.toml")
    parser.add_argument("submission", help="the submission: a folder, a .zip, or a single file")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu", help="training budgets (default cpu)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--json", metavar="PATH", help="write Gradescope results.json here")
    parser.add_argument("--report", metavar="PATH", help="write the Markdown feedback report here")
    parser.add_argument("--html", metavar="PATH", help="write the HTML feedback report here")
    parser.add_argument("--show-hidden", action="store_true",
                        help="reports show hidden and after-due-date tests too (instructor view)")
    parser.add_argument("--after-due-date", action="store_true", help="reports show after_due_date tests")
    parser.add_argument("--solutions", metavar="DIR", help="reference files (default autograder/solutions/NAME)")
    parser.add_argument("--release", metavar="DIR", help="official release with the provided files (default NAME/)")
    parser.add_argument("--insecure-no-sandbox", action="store_true",
                        help="grade without bubblewrap (only where it cannot run); every result says so")
    parser.add_argument("--worker-start", choices=WORKER_STARTS, default="fork",
                        help="fork: one pre-imported parent per run forks each test's worker (default); "
                             "fresh: a new sandbox and Python per test (the old way, slower)")


def run(args) -> int:
    # `timeout`, batch systems and grade-all stop a grading with SIGTERM: unwind, so the run folder is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        assignment = load_assignment(args.assignment, solutions_dir=args.solutions, release_dir=args.release)
    except AssignmentError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    if not Path(args.submission).exists():
        print(f"grade: submission {args.submission} does not exist", file=sys.stderr)
        return 2
    try:
        results = grade_submission(assignment, args.submission, profile=args.profile, device=args.device,
                                   insecure_no_sandbox=args.insecure_no_sandbox, worker_start=args.worker_start)
    except SandboxUnavailable as exc:
        print(f"grade: cannot sandbox the student's code: {exc}\n"
              "Refusing to grade. Use --insecure-no-sandbox only where the submissions are trusted.", file=sys.stderr)
        return 2
    except (AssignmentError, ValueError) as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    show = {"show_hidden": args.show_hidden, "after_due_date": args.after_due_date or args.show_hidden}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.report:
        Path(args.report).write_text(render_markdown(results, **show))
    if args.html:
        Path(args.html).write_text(render_html(results, **show))
    print(render_table(results))
    return 1 if results["extra_data"]["grader_errors"] else 0
