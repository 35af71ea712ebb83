"""pytest plugin of the trusted grading harness (`-p autograder.engine.harness.plugin`).

Gives grader tests the `student`, `reference`, `partial_credit` and `profile` fixtures, the `points`,
`extra_credit`, `visibility` and `timeout` markers, and writes one JSON line per event to the harness-private
results file named in the run config (`--autograder-config`):

    {"event": "collected", "tests": [{"id", "name", "points", "extra_credit", "visibility", "timeout"}, ...]}
    {"event": "collect_error", "where": ..., "message": ...}
    {"event": "result", "id", "passed", "fraction", "message", "output", "grader_error", "seconds", "calls",
     "explanation", "training_curve"}

A test may leave `explanation` (text shown with its result, passed or not) and `training_curve` (the plain record
`scoring.calibration.grade_measured_accuracy` builds) in pytest's `request.node.user_properties`.
    {"event": "finished", "exitstatus": N}

Scores are not computed here: the grade process reads these lines and gives 0 to every collected test without a
passing result line (fail closed).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from autograder.engine import wire
from autograder.assignment import Assignment
from autograder.engine.harness.replies import ReplySchemaError, load_reply_schemas
from autograder.engine.harness.runner import ForkServer, GraderError, OutputLog, ProbeRunner, StudentError
from autograder.engine.sandbox import WorkerSpec, worker_device

VISIBILITIES = ("visible", "hidden", "after_due_date")
REFERENCE_TIMEOUT_FACTOR = 3  # the reference is trusted; its timeout only catches grader bugs
MARKERS = (
    "points(n): points this test is worth (required on every grader test; 0 allowed)",
    "extra_credit: the points are extra credit (max_score 0, score added on top)",
    "visibility(v): 'visible' (default), 'hidden' or 'after_due_date'",
    "timeout(seconds): wall-clock limit for each student.run call in this test",
    "data_splits(*splits): the workers of this test see only these Omniglot splits (e.g. 'train', 'val')",
)
DATA_SPLITS = ("train", "val", "test")

_CONFIG = pytest.StashKey[dict]()
_RECORD = pytest.StashKey[dict]()


class Profile(dict):
    """The assignment's budget table for the chosen profile, plus `.name` and `.device` (as seen in the worker)."""

    def __init__(self, name: str, device: str, values: dict):
        super().__init__(values)
        self.name = name
        self.device = device

    def __getitem__(self, key):
        try:
            return super().__getitem__(key)
        except KeyError:
            raise KeyError(f"profile {self.name!r} has no budget {key!r} in assignment.toml "
                           f"(it has {sorted(self)})") from None


def pytest_addoption(parser):
    parser.addoption("--autograder-config", default=None, help="run config written by `python -m autograder grade`")


def pytest_configure(config):
    # the grade process enforces the total timeout: if it is killed, the harness (its own session) must not linger
    wire.die_with_parent()
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    path = config.getoption("--autograder-config")
    if path is None:
        raise pytest.UsageError("the grading harness needs --autograder-config (run graders with "
                                "`python -m autograder grade`)")
    run = json.loads(Path(path).read_text())
    run["assignment"] = Assignment.from_json(run["assignment"])
    try:
        run["replies"] = load_reply_schemas(run["assignment"].probes_path)
    except (OSError, SyntaxError, ReplySchemaError) as exc:
        raise pytest.UsageError(f"the probes module's reply declarations cannot be used: {exc}") from None
    config.stash[_CONFIG] = run
    config.pluginmanager.register(_CollectErrors(config), "autograder-collect-errors")


def _emit(config, event: dict) -> None:
    with open(config.stash[_CONFIG]["results_path"], "a", encoding="utf-8") as stream:
        stream.write(json.dumps(event) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def _test_entry(item, default_timeout: float) -> dict:
    points_marker = item.get_closest_marker("points")
    where = item.nodeid
    if points_marker is None or len(points_marker.args) != 1:
        raise pytest.UsageError(f"{where}: every grader test needs @pytest.mark.points(n)")
    points = points_marker.args[0]
    if type(points) not in (int, float) or points < 0:
        raise pytest.UsageError(f"{where}: points must be a non-negative number, got {points!r}")
    visibility_marker = item.get_closest_marker("visibility")
    visibility = visibility_marker.args[0] if visibility_marker and visibility_marker.args else "visible"
    if visibility not in VISIBILITIES:
        raise pytest.UsageError(f"{where}: visibility must be one of {VISIBILITIES}, got {visibility!r}")
    timeout_marker = item.get_closest_marker("timeout")
    timeout = timeout_marker.args[0] if timeout_marker and timeout_marker.args else default_timeout
    if type(timeout) not in (int, float) or timeout <= 0:
        raise pytest.UsageError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
    function = getattr(item, "obj", None)
    doc = (function.__doc__ or "").strip().splitlines() if function is not None else []
    name = item.nodeid.split("::", 1)[-1]
    return {
        "id": item.nodeid,
        "name": f"{name}: {doc[0].strip()}" if doc else name,
        "points": points,
        "extra_credit": item.get_closest_marker("extra_credit") is not None,
        "visibility": visibility,
        "timeout": float(timeout),
    }


class _CollectErrors:
    """Records grader files that fail to collect: their tests are missing from the maximum, a grader error."""

    def __init__(self, config):
        self.config = config

    def pytest_collectreport(self, report):
        if report.failed:
            _emit(self.config, {"event": "collect_error", "where": report.nodeid,
                                "message": str(report.longrepr)[-4000:]})


def pytest_collection_modifyitems(session, config, items):
    default_timeout = config.stash[_CONFIG]["assignment"].timeout
    entries = [_test_entry(item, default_timeout) for item in items]
    short_names = [entry["id"].split("::", 1)[-1] for entry in entries]
    for entry, short in zip(entries, short_names):
        if short_names.count(short) > 1:  # same test name in two files: keep the file in the displayed name
            entry["name"] = entry["id"].replace(".py::", "::", 1) + entry["name"][len(short):]
    for item, entry in zip(items, entries):
        item.stash[_RECORD] = {"entry": entry, "fraction": 1.0, "failures": [], "grader_error": False,
                               "log": None, "calls": [], "started": None}
    _emit(config, {"event": "collected", "tests": entries})
    _start_ahead(config, items)


def _data_dir(config, node) -> Path | None:
    """The Omniglot folder this test's workers see: all of it, or only the splits its data_splits marker names.

    A worker that trains must not hold the test characters: the accuracy tests send it test-split episodes, and
    with the whole dataset at hand it could look up each query's character instead of learning. Both sides see the
    same subset, so that the probes behave alike.
    """
    run = config.stash[_CONFIG]
    if not run.get("data_dir"):
        return None
    full = Path(run["data_dir"])
    marker = node.get_closest_marker("data_splits")
    if marker is None:
        return full
    splits = tuple(marker.args)
    if not splits or any(split not in DATA_SPLITS for split in splits):
        raise GraderError(f"data_splits{splits}: expected one or more of {DATA_SPLITS}")
    subset = Path(run["scratch_dir"]) / ("data-" + "-".join(sorted(set(splits))))
    if not subset.is_dir():  # written once per grading run, then shared by the tests that ask for it
        from omniglot_data import load_store

        staging = Path(tempfile.mkdtemp(prefix=".data-", dir=run["scratch_dir"]))
        load_store(full).write_subset(splits, staging).chmod(0o644)
        staging.chmod(0o755)  # the sandbox uid reads it
        staging.rename(subset)
    return subset


def _spec(config, node, side: str) -> WorkerSpec:
    run = config.stash[_CONFIG]
    assignment: Assignment = run["assignment"]
    return WorkerSpec(
        files_dir=Path(run[f"{side}_files_dir"]),
        probes=assignment.probes,
        mode=run["mode"] if side == "student" else "trusted",
        device=run["device"],
        limits=assignment.limits,
        scratch_dir=Path(run["scratch_dir"]),
        data_dir=_data_dir(config, node),
        preload=assignment.preload,
    )


_FORK_SERVERS = pytest.StashKey[dict]()
_REFERENCE_RUNNERS = pytest.StashKey[dict]()


def _fork_server(config, spec: WorkerSpec) -> ForkServer | None:
    """The fork server of this grading run and data view, or None when every worker is to be a process of its
    own: `--worker-start fresh`, or no bubblewrap."""
    if config.stash[_CONFIG].get("worker_start", "fork") != "fork" or spec.mode != "bwrap":
        return None
    servers = config.stash.setdefault(_FORK_SERVERS, {})
    key = str(spec.data_dir)
    if key not in servers:
        servers[key] = ForkServer(spec)
    return servers[key]


def _reference_runner(config, node) -> ProbeRunner:
    """The trusted reference runner of this grading run and data view (see the `reference` fixture)."""
    runners = config.stash.setdefault(_REFERENCE_RUNNERS, {})
    spec = _spec(config, node, "reference")
    key = str(spec.data_dir)
    if key not in runners:
        limits = config.stash[_CONFIG]["assignment"].limits
        runners[key] = ProbeRunner(spec, node.stash[_RECORD]["entry"]["timeout"] * REFERENCE_TIMEOUT_FACTOR,
                                   OutputLog(limits.output_kb * 1024), "reference",
                                   replies=config.stash[_CONFIG]["replies"])
    return runners[key]


def _start_ahead(config, items) -> None:
    """Start, right after collection, the fork server and the reference worker of every data view the tests will
    use: their imports (~2 s each) then overlap the first tests instead of delaying them one by one. Anything
    that fails here is left for the test that needs it, which reports it in its place."""
    for item in items:
        try:
            if "student" in item.fixturenames:
                server = _fork_server(config, _spec(config, item, "student"))
                if server is not None:
                    server.start()
            if "reference" in item.fixturenames:
                _reference_runner(config, item).start()
        except Exception:  # noqa: BLE001 - see the docstring
            continue


@pytest.fixture
def student(request):
    """Runs probes against the submission, in a fresh sandboxed worker (forked by the run's fork server)."""
    config, node = request.config, request.node
    record = node.stash[_RECORD]
    record["log"] = OutputLog(config.stash[_CONFIG]["assignment"].limits.output_kb * 1024)
    spec = _spec(config, node, "student")
    runner = ProbeRunner(spec, record["entry"]["timeout"], record["log"], "student", server=_fork_server(config, spec),
                         replies=config.stash[_CONFIG]["replies"])
    try:
        yield runner
    finally:
        runner.close()
        record["calls"] += runner.calls


@pytest.fixture
def reference(request):
    """Runs the same probes against the reference solution, in a trusted worker.

    Unlike the student's, the reference's worker is shared by the tests of a grading run that see the same data
    (one per data view): its code is trusted and every probe seeds what it draws, so nothing a test could leave
    behind changes another's answer, and a test that needs the reference no longer pays for starting a worker and
    importing torch (~2 s). A worker that timed out or crashed is replaced at the next call, as before; the call
    timeout is the current test's."""
    runner = _reference_runner(request.config, request.node)
    runner.timeout = request.node.stash[_RECORD]["entry"]["timeout"] * REFERENCE_TIMEOUT_FACTOR
    yield runner


@pytest.fixture
def partial_credit(request):
    """`partial_credit(f)`: award the fraction 0 <= f <= 1 of this test's points if it passes (last call wins)."""
    record = request.node.stash[_RECORD]

    def award(fraction: float) -> None:
        if type(fraction) not in (int, float) or not 0 <= fraction <= 1:
            raise ValueError(f"partial_credit takes a number between 0 and 1, got {fraction!r}")
        record["fraction"] = float(fraction)

    return award


@pytest.fixture
def profile(request) -> Profile:
    """The chosen profile's budgets from assignment.toml, with `.name` and `.device` (pass it to probes)."""
    run = request.config.stash[_CONFIG]
    return Profile(run["profile"], worker_device(run["device"]), run["assignment"].profile(run["profile"]))


def _failure_message(call) -> str:
    exc = call.excinfo.value
    if isinstance(exc, StudentError):
        return str(exc)
    if isinstance(exc, GraderError):
        return f"grader error (not your fault; the course staff has been told): {exc}"
    if call.excinfo.typename == "Skipped":
        return f"skipped: {exc}"
    return call.excinfo.exconly()[:8000]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    record = item.stash.get(_RECORD, None)
    if record is None:
        return
    if call.when == "setup":
        record["started"] = time.monotonic()
    if call.excinfo is not None and not report.passed:
        record["failures"].append(_failure_message(call))
        if isinstance(call.excinfo.value, GraderError):
            record["grader_error"] = True
    if call.when == "teardown":
        passed = not record["failures"]
        _emit(item.config, {
            "event": "result",
            "id": item.nodeid,
            "passed": passed,
            "fraction": record["fraction"] if passed else 0.0,
            "message": "\n".join(record["failures"]),
            "output": record["log"].text() if record["log"] is not None else "",
            "grader_error": record["grader_error"],
            "seconds": time.monotonic() - (record["started"] or time.monotonic()),
            "calls": record["calls"],
            **{key: value for key, value in item.user_properties if key in ("explanation", "training_curve")},
        })


def pytest_sessionfinish(session, exitstatus):
    for runner in session.config.stash.get(_REFERENCE_RUNNERS, {}).values():
        runner.close()
    for server in session.config.stash.get(_FORK_SERVERS, {}).values():
        server.close()
    _emit(session.config, {"event": "finished", "exitstatus": int(exitstatus)})
