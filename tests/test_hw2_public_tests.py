"""HW2's public tests (what students run with `pytest hw2`) against the reference and against the released starter.

Each run happens in a subprocess on a temporary copy, as a student would run it: the reference must pass every test,
and the unmodified starter must fail every test of a TODO with the "not implemented yet" message, with no collection
error, while the tests of provided code (named `test_provided_*`) pass. The reference with a few bugs must fail the
tests of those bugs, and only those, each with one clear message and no dump of tensors.
"""

from __future__ import annotations

import pytest

from public_tests import (REPO_ROOT, SOLUTIONS_DIR, assert_all_passed, assert_failures_are_one_clear_message,
                          assert_starter_fails_cleanly, base_name, checks_without_a_message, failed,
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

TRAINING_TESTS = {"test_training_script_trains_checkpoints_and_tests"}  # in test_hw2_protonet.py and test_hw2_maml.py
# Two bugs at once: ProtoNet's distance is not squared; MAML's inner gradients never keep their graph.
BUGS = {
    "protonet.py": [("logits_query = -(embeddings_query.unsqueeze(1) - prototypes.unsqueeze(0)).square().sum(dim=-1)",
                     "logits_query = -(embeddings_query.unsqueeze(1) - prototypes.unsqueeze(0)).square().sum(dim=-1)"
                     ".sqrt()")],
    "maml.py": [("create_graph=create_graph)))\n            parameters = {name: value - self._inner_lrs[name]",
                 "create_graph=False)))\n            parameters = {name: value - self._inner_lrs[name]")],
}
# Not test_step_averages_over_the_task_batch: the averaging is right, whatever the per-task loss.
BUG_TESTS = {"test_loss_uses_class_means_and_negative_squared_distances",
             "test_inner_gradients_have_a_graph_only_when_training", "test_meta_gradient_is_second_order"}
needs_data = needs_omniglot_data("HW2's public tests include training-script tests that need the Omniglot data")


def is_provided_code_test(name: str) -> bool:
    return name.startswith(PROVIDED_PREFIX)


def test_every_public_check_says_what_it_observed():
    assert not checks_without_a_message(REFERENCE_DIR)


@pytest.mark.slow
@needs_data
def test_reference_passes_every_public_test(tmp_path):
    outcomes = run_public_tests(REFERENCE_DIR, tmp_path)
    assert_all_passed(outcomes)
    missing = REQUIRED_TESTS - {base_name(name) for name in outcomes}
    assert not missing, f"public tests missing from the suite: {sorted(missing)}"


@pytest.mark.slow
@needs_data
def test_starter_fails_each_todo_test_with_not_implemented(tmp_path):
    require_release(STARTER_DIR, "maml.py")
    outcomes = run_public_tests(STARTER_DIR, tmp_path)
    assert_starter_fails_cleanly(outcomes, is_provided_code_test)
    assert sum(is_provided_code_test(base_name(name)) for name in outcomes) >= 8


@pytest.mark.slow
@needs_data
def test_bugs_fail_their_tests_only_with_one_clear_message_each(tmp_path):
    # -m "not slow" with --strict-markers: the marker is registered and deselects the training runs.
    outcomes = run_public_tests(REFERENCE_DIR, tmp_path, "-m", "not slow", "--strict-markers", bugs=BUGS)
    assert not TRAINING_TESTS & {base_name(name) for name in outcomes}, "-m 'not slow' ran a training test"
    assert {base_name(name) for name in failed(outcomes)} == BUG_TESTS
    assert_failures_are_one_clear_message(outcomes)
