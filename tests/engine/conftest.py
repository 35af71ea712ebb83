"""Shared helpers of the engine's self-tests: fixture assignments and a sandbox check."""

import shutil

import pytest

from autograder.assignment import load_assignment
from autograder.sandbox import sandbox_problem
from engine_helpers import ATTACK, TOY


@pytest.fixture(scope="session")
def sandbox():
    """Skip where bubblewrap is not installed; where it is installed (CI) but cannot run, fail with its words."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    problem = sandbox_problem()
    if problem:
        pytest.fail(f"bubblewrap is installed but cannot sandbox: {problem}")


@pytest.fixture(scope="session")
def toy():
    return load_assignment(TOY / "graders")


@pytest.fixture(scope="session")
def attack():
    return load_assignment(ATTACK / "graders")
