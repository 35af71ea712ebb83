"""HW1's public tests (what students run with `pytest hw1`) against the reference and against the released starter.

Each run happens in a subprocess on a temporary copy, exactly as a student would run it: the reference must pass
every test, and the unmodified starter must fail every test of a TODO with the "not implemented yet" message, with
no collection error, while the tests of provided code pass. The reference with a few bugs must fail the tests of
those bugs, and only those, each with one clear message and no dump of tensors.
"""

from __future__ import annotations

import pytest

from public_tests import (REPO_ROOT, SOLUTIONS_DIR, assert_all_passed, assert_failures_are_one_clear_message,
                          assert_starter_fails_cleanly, base_name, checks_without_a_message, failed,
                          needs_omniglot_data, require_release, run_public_tests)

REFERENCE_DIR = SOLUTIONS_DIR / "hw1"
STARTER_DIR = REPO_ROOT / "hw1"
# Tests of code the starter provides: they pass before the student writes anything.
PROVIDED_TESTS = {"test_provided_image_file_to_array_matches_the_store", "test_provided_help_lists_every_flag"}

TRAINING_TEST = "test_training_script_runs_and_resumes"
# Three bugs at once, as a student's first attempt may have them: the query labels are not shuffled with their images,
# the query labels reach the model, the loss is taken on the first support row.
BUGS = {
    "load_data.py": [("labels[-1] = labels[-1, query_order]", "labels[-1] = labels[-1]")],
    "hw1.py": [("labels = torch.cat([input_labels[:, :-1], hidden_query], dim=1)", "labels = input_labels"),
               ("query_logits = preds[:, -1].reshape(", "query_logits = preds[:, 0].reshape(")],
}
BUG_TESTS = {"test_query_row_is_shuffled", "test_images_belong_to_their_labels_class_and_to_the_split",
             "test_episode_sequence_layout", "test_mann_forward_ignores_the_query_labels",
             "test_loss_is_the_query_cross_entropy", "test_loss_ignores_the_support_rows",
             "test_attention_forward_ignores_the_query_labels_and_keeps_the_callers_tensors"}
needs_data = needs_omniglot_data("HW1's public tests need the Omniglot data")


def test_every_public_check_says_what_it_observed():
    assert not checks_without_a_message(REFERENCE_DIR)


@pytest.mark.slow
@needs_data
def test_reference_passes_every_public_test(tmp_path):
    outcomes = run_public_tests(REFERENCE_DIR, tmp_path)
    assert_all_passed(outcomes)
    assert len(outcomes) >= 30, f"expected the full public test suite, only {len(outcomes)} tests ran"


@pytest.mark.slow
@needs_data
def test_starter_fails_each_todo_test_with_not_implemented(tmp_path):
    require_release(STARTER_DIR, "load_data.py")
    outcomes = run_public_tests(STARTER_DIR, tmp_path)
    assert_starter_fails_cleanly(outcomes, is_provided_code_test=PROVIDED_TESTS.__contains__)
    assert {base_name(name) for name in outcomes} >= PROVIDED_TESTS


@pytest.mark.slow
@needs_data
def test_bugs_fail_their_tests_only_with_one_clear_message_each(tmp_path):
    # -m "not slow" with --strict-markers: the marker is registered and deselects the training run.
    outcomes = run_public_tests(REFERENCE_DIR, tmp_path, "-m", "not slow", "--strict-markers", bugs=BUGS)
    assert TRAINING_TEST not in {base_name(name) for name in outcomes}, "-m 'not slow' ran the training test"
    assert {base_name(name) for name in failed(outcomes)} == BUG_TESTS
    assert_failures_are_one_clear_message(outcomes)
