"""HW1's public tests (what students run with `pytest hw1`) against the reference and against the released starter.

Each run happens in a subprocess on a temporary copy, exactly as a student would run it: the reference must pass
every test, and the unmodified starter must fail every test of a TODO with the "not implemented yet" message, with
no collection error, while the tests of provided code pass.
"""

from __future__ import annotations

import pytest

from public_tests import (REPO_ROOT, SOLUTIONS_DIR, assert_all_passed, assert_starter_fails_cleanly, base_name,
                          needs_omniglot_data, require_release, run_public_tests)

REFERENCE_DIR = SOLUTIONS_DIR / "hw1"
STARTER_DIR = REPO_ROOT / "hw1"
# Tests of code the starter provides: they pass before the student writes anything.
PROVIDED_TESTS = {"test_provided_image_file_to_array_matches_the_store", "test_provided_help_lists_every_flag"}

pytestmark = [pytest.mark.slow, needs_omniglot_data("HW1's public tests need the Omniglot data")]


def test_reference_passes_every_public_test(tmp_path):
    outcomes = run_public_tests(REFERENCE_DIR, tmp_path)
    assert_all_passed(outcomes)
    assert len(outcomes) >= 30, f"expected the full public test suite, only {len(outcomes)} tests ran"


def test_starter_fails_each_todo_test_with_not_implemented(tmp_path):
    require_release(STARTER_DIR, "load_data.py")
    outcomes = run_public_tests(STARTER_DIR, tmp_path)
    assert_starter_fails_cleanly(outcomes, is_provided_code_test=PROVIDED_TESTS.__contains__)
    assert {base_name(name) for name in outcomes} >= PROVIDED_TESTS
