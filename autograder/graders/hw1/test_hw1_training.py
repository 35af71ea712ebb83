"""HW1 accuracy, measured by the grader: the submission trains in the worker, the harness holds the test episodes.

The bar comes from `calibration.json` (written by `python -m autograder calibrate hw1 --profile P`): full credit
from the threshold (the reference's worst calibration seed minus a margin), linear partial credit down to the floor
(an untrained model's accuracy), nothing at or below it. The evaluation episodes are drawn with a fresh secret
seed on every run, so nothing about them can be learnt in advance.

PYTEST_DONT_REWRITE: the feedback shows each assertion's message alone, without pytest's introspection.
"""

import secrets
from pathlib import Path

import pytest

from autograder.calibration import CalibrationError, load_bar
from autograder.harness import GraderError, StudentError
from autograder.harness import run_data_dir
from metrics import GRADING_TRAIN_SEED, mann_accuracy

GRADERS_DIR = Path(__file__).resolve().parent


@pytest.mark.points(20)
@pytest.mark.timeout(900)
@pytest.mark.data_splits("train", "val")  # the trained code never holds the test characters
def test_mann_accuracy(student, profile, partial_credit, request):
    """MANN trained by your code reaches the calibrated query accuracy on secret test-split episodes"""
    try:
        bar = load_bar(GRADERS_DIR, "mann_accuracy", profile.name, budget=dict(profile))
    except CalibrationError as error:
        raise GraderError(str(error)) from None
    accuracy = mann_accuracy(student, profile, profile.device, train_seed=GRADING_TRAIN_SEED,
                             eval_seed=secrets.randbits(63), data_dir=run_data_dir(request.config))
    summary = (f"query accuracy {accuracy:.3f} on {profile['eval_episodes']} secret {profile['num_classes']}-way "
               f"{profile['num_shot']}-shot test-split episodes, after {profile['train_steps']} training steps "
               f"(batch {profile['meta_batch_size']}, hidden {profile['hidden_dim']}, Adam lr "
               f"{profile['learning_rate']}); {bar.describe()}")
    try:
        student.run("say", text=summary)
    except StudentError:
        pass  # only the explanation is lost, not the score
    credit = bar.credit(accuracy)
    assert credit > 0, summary
    partial_credit(credit)
