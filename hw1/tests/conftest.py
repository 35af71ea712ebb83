# hw1/tests/conftest.py: public tests, provided. Run them with `pytest hw1`; you need not change them.
"""Shared set-up of the HW1 public tests (`pytest hw1` from the repository root).

- puts the homework folder first on `sys.path`, so `import load_data` and `import hw1` find your files;
- skips the data tests with instructions when the Omniglot data has not been built yet, and reports a function that
  still raises NotImplementedError as "not implemented yet" instead of a traceback (both from `omniglot_data.testing`);
- gives the data tests `drawing_index`, which finds which drawing of the store an image is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from omniglot_data.testing import pytest_pyfunc_call, store  # noqa: F401 (importing registers the hook and fixture)

HOMEWORK_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HOMEWORK_DIR))


def pytest_configure(config):
    config.addinivalue_line("markers", "extra_credit: tests of the extra-credit attention learner "
                                       "(skip them with `pytest hw1 -m 'not extra_credit'`)")


@pytest.fixture(scope="session")
def drawing_index(store):
    """Finds which (row, drawing) of the store an image is: `drawing_index.find(image) -> [(row, drawing), ...]`."""
    return store.drawing_index()
