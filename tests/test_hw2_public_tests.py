"""HW2's public tests (what students run with `pytest hw2`) against the reference and against the released starter.

Each run happens in a subprocess on a temporary copy, as a student would run it: the reference must pass every test,
and the unmodified starter must fail every test of a TODO with the "not implemented yet" message, with no collection
error, while the tests of provided code (named `test_provided_*`) pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "autograder" / "solutions" / "hw2"
STARTER_DIR = REPO_ROOT / "hw2"
PROVIDED_PREFIX = "test_provided_"
NOT_IMPLEMENTED_MESSAGE = "not implemented yet"
# What the suite must contain, so that a lost test file cannot make both checks pass vacuously.
REQUIRED_TESTS = {
    "test_loss_uses_class_means_and_negative_squared_distances",
    "test_prototypes_do_not_depend_on_the_support_order",
    "test_gradient_reaches_the_support_embeddings",
    "test_inner_gradients_have_a_graph_only_when_training",
    "test_inner_loop_never_modifies_the_meta_parameters",
    "test_learned_inner_learning_rates_receive_gradients",
    "test_outer_loss_depends_on_the_query_labels",
    "test_meta_gradient_is_second_order",
    "test_provided_sampler_is_seeded",
    "test_reptile_writes_theta_minus_phi_into_grad",
    "test_imaml_one_conjugate_gradient_step",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def omniglot_data_built():
    from omniglot_data import DataNotFoundError, load_store

    try:
        load_store()
    except DataNotFoundError as error:
        pytest.skip(f"HW2's public tests include training-script tests that need the Omniglot data: {error}")


def run_public_tests(homework_dir: Path, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Run the public tests of a copy of `homework_dir`; {test id: (outcome, message)} from the JUnit report."""
    copy = tmp_path / "hw2"
    shutil.copytree(homework_dir, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    report = tmp_path / "report.xml"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("PYTEST_ADDOPTS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", str(copy)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
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
    return test_id.rsplit("::", 1)[-1].split("[", 1)[0]


def test_reference_passes_every_public_test(tmp_path):
    outcomes = run_public_tests(REFERENCE_DIR, tmp_path)
    problems = {name: result for name, result in outcomes.items() if result[0] != "passed"}
    assert not problems, "the reference fails public tests:\n" + "\n".join(
        f"{name}: {outcome}: {message.strip()[:400]}" for name, (outcome, message) in problems.items())
    missing = REQUIRED_TESTS - {base_name(name) for name in outcomes}
    assert not missing, f"public tests missing from the suite: {sorted(missing)}"


def test_starter_fails_each_todo_test_with_not_implemented(tmp_path):
    if not (STARTER_DIR / "maml.py").is_file():
        pytest.fail(f"{STARTER_DIR} has no release: run `python -m autograder release --assignment hw2`")
    outcomes = run_public_tests(STARTER_DIR, tmp_path)
    errors = {name: message for name, (outcome, message) in outcomes.items() if outcome in ("error", "skipped")}
    assert not errors, "the starter's public tests must fail cleanly, not error or skip:\n" + "\n".join(
        f"{name}: {message.strip()[:400]}" for name, message in errors.items())
    for name, (outcome, message) in outcomes.items():
        if base_name(name).startswith(PROVIDED_PREFIX):
            assert outcome == "passed", f"{name} tests provided code, so it must pass on the starter: {message[:400]}"
        else:
            assert outcome == "failure" and message.removeprefix("Failed: ").startswith(NOT_IMPLEMENTED_MESSAGE), (
                f"{name} on the starter: expected a failure saying {NOT_IMPLEMENTED_MESSAGE!r}, got {outcome}: "
                f"{message.strip()[:400]}")
    assert sum(base_name(name).startswith(PROVIDED_PREFIX) for name in outcomes) >= 8
