"""Run a homework's public tests (what students run with `pytest hwN`) as a student would, and read the results.

Used by `test_hw1_public_tests.py` and `test_hw2_public_tests.py`: each run happens in a subprocess on a temporary
copy of the homework folder, and the outcomes come from pytest's JUnit report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = REPO_ROOT / "autograder" / "solutions"
NOT_IMPLEMENTED_MESSAGE = "not implemented yet"
RUN_TIMEOUT_S = 600

Outcomes = dict[str, tuple[str, str]]  # test id -> (passed | failure | error | skipped, message)


def needs_omniglot_data(reason: str) -> pytest.MarkDecorator:
    """A mark (for `pytestmark`) that skips with `reason: <what is missing>` when the Omniglot data is not built."""
    from omniglot_data import DataNotFoundError, load_store

    try:
        load_store()
        missing = None
    except DataNotFoundError as error:
        missing = error
    return pytest.mark.skipif(missing is not None, reason=f"{reason}: {missing}")


def require_release(starter_dir: Path, released_file: str) -> None:
    """Fails with the command to run when the generated starter `starter_dir` lacks `released_file`."""
    if not (starter_dir / released_file).is_file():
        pytest.fail(f"{starter_dir} has no release: run `python -m autograder release --assignment {starter_dir.name}`")


def run_public_tests(homework_dir: Path, tmp_path: Path) -> Outcomes:
    """Run the public tests of a copy of `homework_dir` (named like it); {test id: (outcome, message)}."""
    copy = tmp_path / homework_dir.name
    shutil.copytree(homework_dir, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    report = tmp_path / "report.xml"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("PYTEST_ADDOPTS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", str(copy)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert report.is_file(), f"pytest wrote no report (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        problem = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcome = "passed" if problem is None else problem.tag
        message = "" if problem is None else (problem.get("message") or "") + "\n" + (problem.text or "")
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = (outcome, message)
    assert outcomes, f"no test ran:\n{completed.stdout}\n{completed.stderr}"
    return outcomes


def base_name(test_id: str) -> str:
    """The test function's name: `module::test_x[param]` -> `test_x`."""
    return test_id.rsplit("::", 1)[-1].split("[", 1)[0]


def assert_all_passed(outcomes: Outcomes) -> None:
    """The reference must pass every public test."""
    problems = {name: result for name, result in outcomes.items() if result[0] != "passed"}
    assert not problems, "the reference fails public tests:\n" + "\n".join(
        f"{name}: {outcome}: {message.strip()[:400]}" for name, (outcome, message) in problems.items())


def assert_starter_fails_cleanly(outcomes: Outcomes, is_provided_code_test: Callable[[str], bool]) -> None:
    """On the unmodified starter: no error or skip; a test of provided code (`is_provided_code_test(base name)`)
    passes, every other test fails with the "not implemented yet" message."""
    errors = {name: message for name, (outcome, message) in outcomes.items() if outcome in ("error", "skipped")}
    assert not errors, "the starter's public tests must fail cleanly, not error or skip:\n" + "\n".join(
        f"{name}: {message.strip()[:400]}" for name, message in errors.items())
    for name, (outcome, message) in outcomes.items():
        if is_provided_code_test(base_name(name)):
            assert outcome == "passed", f"{name} tests provided code, so it must pass on the starter: {message[:400]}"
        else:
            assert outcome == "failure" and message.removeprefix("Failed: ").startswith(NOT_IMPLEMENTED_MESSAGE), (
                f"{name} on the starter: expected a failure saying {NOT_IMPLEMENTED_MESSAGE!r}, got {outcome}: "
                f"{message.strip()[:400]}")
