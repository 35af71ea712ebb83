"""HW2's public tests (what students run with `pytest hw2`) against the reference and against the released starter.

Each run happens in a subprocess on a temporary copy, as a student would run it: the reference must pass every test,
and the unmodified starter must fail every test of a TODO with the "not implemented yet" message, with no collection
error, while the tests of provided code (named `test_provided_*`) pass.
"""

from __future__ import annotations

import pytest

from public_tests import (REPO_ROOT, SOLUTIONS_DIR, assert_all_passed, assert_starter_fails_cleanly, base_name,
                          needs_omniglot_data, require_release, run_public_tests)

REFERENCE_DIR = SOLUTIONS_DIR / "hw2"
STARTER_DIR = REPO_ROOT / "hw2"
PROVIDED_PREFIX = "test_provided_"
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

pytestmark = [pytest.mark.slow,
              needs_omniglot_data("HW2's public tests include training-script tests that need the Omniglot data")]


def is_provided_code_test(name: str) -> bool:
    return name.startswith(PROVIDED_PREFIX)


def test_reference_passes_every_public_test(tmp_path):
    outcomes = run_public_tests(REFERENCE_DIR, tmp_path)
    assert_all_passed(outcomes)
    missing = REQUIRED_TESTS - {base_name(name) for name in outcomes}
    assert not missing, f"public tests missing from the suite: {sorted(missing)}"


def test_starter_fails_each_todo_test_with_not_implemented(tmp_path):
    require_release(STARTER_DIR, "maml.py")
    outcomes = run_public_tests(STARTER_DIR, tmp_path)
    assert_starter_fails_cleanly(outcomes, is_provided_code_test)
    assert sum(is_provided_code_test(base_name(name)) for name in outcomes) >= 8
