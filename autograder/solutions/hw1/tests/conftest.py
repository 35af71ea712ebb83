"""Shared set-up of the HW1 public tests (`pytest hw1` from the repository root).

- puts the homework folder first on `sys.path`, so `import load_data` and `import hw1` find your files;
- skips the data tests with instructions when the Omniglot data has not been built yet, reports a function that
  still raises NotImplementedError as "not implemented yet" and a failed check as its message alone, instead of a
  traceback (all from `omniglot_data.testing`);
- registers the markers: `pytest hw1 -m "not slow"` skips the tests that take more than 2 s (the training run),
  `pytest hw1 -m "not extra_credit"` the tests of the extra-credit attention learner;
- gives the data tests `drawing_index`, which finds which drawing of the store an image is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from omniglot_data.testing import configure_public_tests
from omniglot_data.testing import pytest_pyfunc_call, store  # noqa: F401 (importing registers the hook and fixture)

HOMEWORK_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HOMEWORK_DIR))


def pytest_configure(config):
    configure_public_tests(config, "hw1", extra_credit="tests of the extra-credit attention learner")


@pytest.fixture(scope="session")
def drawing_index(store):
    """Finds which (row, drawing) of the store an image is: `drawing_index.find(image) -> [(row, drawing), ...]`."""
    return store.drawing_index()
