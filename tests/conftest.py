"""Fixtures shared by the project's test modules."""

import shutil

import pytest


@pytest.fixture(scope="session")
def sandbox():
    """Skip where bubblewrap is not installed; where it is installed (CI) but cannot run, fail with its words."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    from autograder.engine.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem:
        pytest.fail(f"bubblewrap is installed but cannot sandbox: {problem}")
