"""Pytest pieces shared by the homeworks' public tests (`pytest hw1`, `pytest hw2`).

A homework's `tests/conftest.py` imports them by name; pytest registers the hooks and fixtures a conftest holds,
imported ones included, and calls `configure_public_tests` from its `pytest_configure`:

    from omniglot_data.testing import pytest_pyfunc_call, store  # noqa: F401 (registers the hook and the fixture)

A failing public test reports one message first, and no object or tensor dump: the test modules turn off pytest's
assertion rewriting (`PYTEST_DONT_REWRITE` in their docstring) and give every `assert` a message saying what was
observed; `pytest_pyfunc_call` reports that message alone, with the test line that checked it; any other error gets
pytest's short traceback (`--tb=short`, unless the student asks for another style), which shows no argument values.

Needs pytest, so nothing else in `omniglot_data` imports this module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omniglot_data.errors import DataNotFoundError
from omniglot_data.store import load_store


SLOW_TEST_SECONDS = 2  # a public test that may take longer carries @pytest.mark.slow


def configure_public_tests(config, homework: str, extra_credit: str) -> None:
    """From a homework conftest's `pytest_configure`: register its markers, make tracebacks short.

    `extra_credit` says what the homework's `extra_credit` tests test."""
    config.addinivalue_line("markers", f"slow: takes more than {SLOW_TEST_SECONDS} s, e.g. a short training run "
                                       f"(skip them with `pytest {homework} -m 'not slow'`)")
    config.addinivalue_line("markers", f"extra_credit: {extra_credit} (skip them with "
                                       f"`pytest {homework} -m 'not extra_credit'`)")
    if config.option.tbstyle == "auto":  # pytest's default: long tracebacks that print every argument's value
        config.option.tbstyle = "short"


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """Reports a test that hits a leftover `raise NotImplementedError` as "not implemented yet: <function>
    (<file>, line N) ..." and a failed `assert` of a test as its message and the test line, instead of a
    traceback."""
    try:
        return (yield)
    except NotImplementedError as error:
        traceback, failed_assert = error.__traceback__, None
    except AssertionError as error:
        if not str(error) or not _raised_in(error, pyfuncitem.path.parent):
            raise  # without a message, or an assert of the code under test: the traceback says more
        traceback, failed_assert = error.__traceback__, str(error)
    # Failing outside the `except` block keeps the original traceback out of the report.
    if failed_assert is not None:
        test_file, test_line = pyfuncitem.path, None
        while traceback is not None:  # the deepest frame in the test file: the assert, or the helper's call
            if Path(traceback.tb_frame.f_code.co_filename) == test_file:
                test_line = traceback.tb_lineno
            traceback = traceback.tb_next
        pytest.fail(f"{failed_assert}\n(checked in {test_file.name}, line {test_line})", pytrace=False)
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    function = getattr(code, "co_qualname", code.co_name)
    pytest.fail(f"not implemented yet: {function} ({Path(code.co_filename).name}, line {traceback.tb_lineno}) "
                "still raises NotImplementedError. Replace that line with your code, following the TODO comments "
                "above it.", pytrace=False)


def _raised_in(error: BaseException, folder: Path) -> bool:
    """Whether `error` was raised by code in `folder` (the public tests), not by the code they test."""
    traceback = error.__traceback__
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return Path(traceback.tb_frame.f_code.co_filename).parent == folder


@pytest.fixture(scope="session")
def store():
    """The packed Omniglot store; skips the test when the data has not been built."""
    try:
        return load_store()
    except DataNotFoundError as error:
        pytest.skip(f"{error}. The data tests need it: run `bash data_download.sh` from the repository root, "
                    "then run the tests again.")
