"""HW2 accuracy, measured by the grader: the submission trains in the worker, the harness holds the test tasks.

The bars come from `calibration.json` (written by `python -m autograder calibrate hw2 --profile P`): full credit
from the threshold (the reference's worst calibration seed minus a margin), linear partial credit down to the floor
(the same model untrained), nothing at or below it. The evaluation tasks are drawn with a fresh secret seed on
every run, so nothing about them can be learnt in advance.

The feedback explains the score and shows the training curve the submission's run reported (loss and accuracy
against the steps, a plot in HTML), beside the bar and what its code printed; the curve is drawn, never scored.

PYTEST_DONT_REWRITE: the feedback shows each assertion's own message, without pytest's expression dump.
"""

from pathlib import Path

import pytest

from autograder.scoring.calibration import grade_measured_accuracy
from metrics import maml_accuracy, protonet_accuracy

GRADERS_DIR = Path(__file__).resolve().parent


def grade_accuracy(metric, measure, settings, student, reference, profile, partial_credit, request):
    describe = (f"{profile['eval_tasks']} secret {profile['num_way']}-way {profile['num_support']}-shot test-split "
                f"tasks ({profile['eval_num_query']} queries per class), after {settings}")
    grade_measured_accuracy(GRADERS_DIR, metric, measure, describe, student=student, reference=reference,
                            profile=profile,
                            partial_credit=partial_credit, request=request)


@pytest.mark.points(10)
@pytest.mark.timeout(1500)
@pytest.mark.data_splits("train", "val")  # the trained code never holds the test characters
def test_protonet_accuracy(student, reference, profile, partial_credit, request):
    """ProtoNet trained by your code reaches the calibrated query accuracy on secret test-split tasks"""
    settings = (f"{profile['protonet_steps']} training steps of your ProtoNet.train_step (batch "
                f"{profile['protonet_batch_size']} tasks, {profile['train_num_query']} queries per class, Adam lr "
                f"{profile['protonet_learning_rate']}); predictions from the nearest prototype of the trained "
                "network's embeddings")
    grade_accuracy("protonet_accuracy", protonet_accuracy, settings, student, reference, profile, partial_credit,
                   request)


@pytest.mark.points(10)
@pytest.mark.timeout(1500)
@pytest.mark.data_splits("train", "val")  # the trained code never holds the test characters
def test_maml_accuracy(student, reference, profile, partial_credit, request):
    """MAML trained by your code reaches the calibrated query accuracy on secret test-split tasks"""
    settings = (f"{profile['maml_steps']} training steps of your MAML.train_step (batch {profile['maml_batch_size']} "
                f"tasks, {profile['maml_hidden_channels']} channels, {profile['maml_inner_steps']} inner step(s) of "
                f"lr {profile['maml_inner_lr']}, outer Adam lr {profile['maml_outer_lr']}); predictions of the "
                "trained meta-parameters adapted to each support set by the reference's inner loop (train=False)")
    grade_accuracy("maml_accuracy", maml_accuracy, settings, student, reference, profile, partial_credit, request)
