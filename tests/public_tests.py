"""Run a homework's public tests (what students run with `pytest hwN`) as a student would, and read the results.

Used by `test_hw1_public_tests.py` and `test_hw2_public_tests.py`: each run happens in a subprocess on a temporary
copy of the homework folder (optionally with bugs put in by exact substitution), and the outcomes come from pytest's
JUnit report.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = REPO_ROOT / "autograder" / "solutions"
NOT_IMPLEMENTED_MESSAGE = "not implemented yet"
RUN_TIMEOUT_S = 600

# What a failure report must not hold: dumps of tensors, arrays or the data store (a short repr is fine).
DUMP = re.compile(r"tensor\(\[|array\(\[|OmniglotStore\(.*images=")
MAX_FAILURE_LINES = 3  # the message (it may wrap onto a second line) and where it was checked


class Outcome(NamedTuple):
    kind: str  # passed | failure | error | skipped
    message: str  # JUnit's message attribute (pytest prefixes "Failed: " to a pytest.fail message)
    report: str  # the failure's full text as pytest prints it


Outcomes = dict[str, Outcome]  # test id -> outcome


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


def run_public_tests(homework_dir: Path, tmp_path: Path, *pytest_args: str,
                     bugs: dict[str, list[tuple[str, str]]] | None = None) -> Outcomes:
    """Run the public tests of a copy of `homework_dir` (named like it), with `pytest_args`; {test id: outcome}.

    `bugs` maps a file of the copy to (old, new) substitutions; each `old` must occur exactly once."""
    copy = tmp_path / homework_dir.name
    shutil.copytree(homework_dir, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    for name, substitutions in (bugs or {}).items():
        source = (copy / name).read_text()
        for old, new in substitutions:
            assert source.count(old) == 1, f"{homework_dir / name}: the bug's snippet no longer occurs once: {old!r}"
            source = source.replace(old, new)
        (copy / name).write_text(source)
    report = tmp_path / "report.xml"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("PYTEST_ADDOPTS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args,
         str(copy)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert report.is_file(), f"pytest wrote no report (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        problem = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = (
            Outcome("passed", "", "") if problem is None
            else Outcome(problem.tag, problem.get("message") or "", problem.text or ""))
    assert outcomes, f"no test ran:\n{completed.stdout}\n{completed.stderr}"
    return outcomes


def base_name(test_id: str) -> str:
    """The test function's name: `module::test_x[param]` -> `test_x`."""
    return test_id.rsplit("::", 1)[-1].split("[", 1)[0]


def assert_all_passed(outcomes: Outcomes) -> None:
    """The reference must pass every public test."""
    problems = {name: result for name, result in outcomes.items() if result.kind != "passed"}
    assert not problems, "the reference fails public tests:\n" + "\n".join(
        f"{name}: {kind}: {message.strip()[:400]}" for name, (kind, message, _) in problems.items())


def assert_starter_fails_cleanly(outcomes: Outcomes, is_provided_code_test: Callable[[str], bool]) -> None:
    """On the unmodified starter: no error or skip; a test of provided code (`is_provided_code_test(base name)`)
    passes, every other test fails with the "not implemented yet" message."""
    errors = {name: message for name, (kind, message, _) in outcomes.items() if kind in ("error", "skipped")}
    assert not errors, "the starter's public tests must fail cleanly, not error or skip:\n" + "\n".join(
        f"{name}: {message.strip()[:400]}" for name, message in errors.items())
    for name, (kind, message, _) in outcomes.items():
        if is_provided_code_test(base_name(name)):
            assert kind == "passed", f"{name} tests provided code, so it must pass on the starter: {message[:400]}"
        else:
            assert kind == "failure" and message.removeprefix("Failed: ").startswith(NOT_IMPLEMENTED_MESSAGE), (
                f"{name} on the starter: expected a failure saying {NOT_IMPLEMENTED_MESSAGE!r}, got {kind}: "
                f"{message.strip()[:400]}")
    assert_failures_are_one_clear_message(outcomes)


def failed(outcomes: Outcomes) -> set[str]:
    """Ids of the tests that failed."""
    return {name for name, outcome in outcomes.items() if outcome.kind == "failure"}


def assert_failures_are_one_clear_message(outcomes: Outcomes) -> None:
    """Each failure reports its message first and alone: the report starts with the message's first line, holds
    at most MAX_FAILURE_LINES lines, and dumps no tensor, array or data store."""
    problems = []
    for name, (kind, message, report) in outcomes.items():
        if kind != "failure":
            continue
        lines = report.strip().splitlines()
        first = message.removeprefix("Failed: ").strip().splitlines()[:1]
        dumps = [line for line in lines if DUMP.search(line)]
        if not first or lines[:1] != first or len(lines) > MAX_FAILURE_LINES or dumps:
            problems.append(f"{name}: {len(lines)} lines, first {lines[:1]}, message {first}, "
                            f"{len(dumps)} dump lines:\n" + "\n".join(lines[:12]))
    assert not problems, "failures that are not one clear message:\n" + "\n\n".join(problems)


def checks_without_a_message(homework_dir: Path) -> list[str]:
    """`file:line` of each check of the public tests that would fail without saying what it observed: an `assert`
    with no message, a `pytest.fail` that prints a traceback, a module without `PYTEST_DONT_REWRITE` in its
    docstring (pytest's assertion rewriting appends the values of the failed expression). Tests of provided code
    (`test_provided_*`) are not checked: they test code that students do not write."""
    found = []
    for path in sorted((homework_dir / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = [node for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef) and not node.name.startswith("test_provided_")]
        if any(f.name.startswith("test_") for f in functions) and "PYTEST_DONT_REWRITE" not in (
                ast.get_docstring(tree) or ""):
            found.append(f"{path.name}:1: no PYTEST_DONT_REWRITE in the module docstring")
        for function in functions:
            for node in ast.walk(function):
                if isinstance(node, ast.Assert) and node.msg is None:
                    found.append(f"{path.name}:{node.lineno}: assert without a message")
                elif (isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.fail"
                      and not any(k.arg == "pytrace" and ast.unparse(k.value) == "False" for k in node.keywords)):
                    found.append(f"{path.name}:{node.lineno}: pytest.fail without pytrace=False")
    return found
