"""Pytest pieces shared by the homeworks' public tests (`pytest hw1`, `pytest hw2`).

A homework's `tests/conftest.py` imports them by name; pytest registers the hooks and fixtures a conftest holds,
imported ones included:

    from omniglot_data.testing import pytest_pyfunc_call, store  # noqa: F401 (registers the hook and the fixture)

Needs pytest, so nothing else in `omniglot_data` imports this module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omniglot_data.errors import DataNotFoundError
from omniglot_data.store import load_store


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """Reports a test that hits a leftover `raise NotImplementedError` as "not implemented yet: <function>
    (<file>, line N) ..." instead of a traceback."""
    try:
        return (yield)
    except NotImplementedError as error:
        traceback = error.__traceback__
    # Failing outside the `except` block keeps the NotImplementedError traceback out of the report.
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    function = getattr(code, "co_qualname", code.co_name)
    pytest.fail(f"not implemented yet: {function} ({Path(code.co_filename).name}, line {traceback.tb_lineno}) "
                "still raises NotImplementedError. Replace that line with your code, following the TODO comments "
                "above it.", pytrace=False)


@pytest.fixture(scope="session")
def store():
    """The packed Omniglot store; skips the test when the data has not been built."""
    try:
        return load_store()
    except DataNotFoundError as error:
        pytest.skip(f"{error}. The data tests need it: run `bash data_download.sh` from the repository root, "
                    "then run the tests again.")
