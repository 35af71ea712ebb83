"""Shared helpers of the engine's self-tests: fixture assignments (the `sandbox` check is tests/conftest.py's)."""

import pytest

from autograder.assignment import load_assignment
from engine_helpers import ATTACK, TOY


@pytest.fixture(scope="session")
def toy():
    return load_assignment(TOY / "graders")


@pytest.fixture(scope="session")
def attack():
    return load_assignment(ATTACK / "graders")
