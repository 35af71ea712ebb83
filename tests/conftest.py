"""Fixtures shared by the project's test modules."""

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sandbox():
    """Skip where bubblewrap is not installed; where it is installed (CI) but cannot run, fail with its words."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    from autograder.engine.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem:
        pytest.fail(f"bubblewrap is installed but cannot sandbox: {problem}")


# Top-level module names of the bench scripts and the homework folders: another test may import the released
# (stub) versions under the same names, so they are swapped out around the test that imports the references.
SCRIPT_MODULES = ("batched_tasks", "common", "gpu_profile", "hw1", "load_data", "maml", "omniglot", "protonet", "util")


@pytest.fixture
def reference_modules(monkeypatch):
    """The reference homework modules and bench scripts importable by their top-level names, for one test."""
    saved = {name: sys.modules.pop(name) for name in SCRIPT_MODULES if name in sys.modules}
    for folder in (REPO / "bench", REPO / "autograder" / "solutions" / "hw1", REPO / "autograder" / "solutions" / "hw2"):
        monkeypatch.syspath_prepend(str(folder))
    yield
    for name in SCRIPT_MODULES:
        sys.modules.pop(name, None)
    sys.modules.update(saved)


@pytest.fixture(scope="module")
def empty_gradebook_file(tmp_path_factory):
    """Creating a gradebook runs nbgrader's alembic stamp (seconds); tests start from a copy of one made once."""
    from autograder.classroom.gradebook import ClassGradebook

    path = tmp_path_factory.mktemp("template") / "grades.db"
    ClassGradebook(path).close()
    return path
