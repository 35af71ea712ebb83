"""Feedback of an accuracy test (the training fixture): its explanation, the training curve the student's run
reported (a plot in HTML, a table in Markdown), what the student's code printed, and totals with extra credit."""

import base64
import math
import re

import pytest
import torch

from autograder.assignment import load_assignment
from autograder.classroom.report import render_html, render_markdown, render_table
from autograder.engine.grade import grade_submission
from autograder.engine.results import MAX_CURVE_POINTS, build_results, safe_curve, score_text
from omniglot_data.training_curve import TrainingCurve

from engine_helpers import FIXTURES, by_name

TRAINING = FIXTURES / "training"
ACCURACY_TEST = "test_training.py::test_trained_accuracy"
OUTPUT_MARK = "--- output of your code ---"


@pytest.fixture(scope="module")
def training():
    return load_assignment(TRAINING / "graders")


@pytest.fixture(scope="module")
def reference_results(training, sandbox):
    return grade_submission(training, TRAINING / "solution")


def test_accuracy_test_explains_itself_and_shows_what_the_code_printed(reference_results):
    test = by_name(reference_results)["test_trained_accuracy"]
    assert test["status"] == "passed" and test["score"] == 20
    explanation, printed = test["output"].split(OUTPUT_MARK)
    assert "query accuracy 0.892 on 450 toy steps" in explanation and "full credit from 0.800" in explanation
    assert "trainer says: step 100, accuracy 0.64" in printed and "trainer says: step 400" in printed
    assert "query accuracy" not in printed  # the grader's words are not passed off as the student's output


def test_accuracy_test_keeps_the_curve_of_the_run(reference_results):
    curve = by_name(reference_results)["test_trained_accuracy"]["extra_data"]["training_curve"]
    assert len(curve["steps"]) == 150 and curve["steps"][:2] == [3, 6] and curve["steps"][-1] == 450  # windows of 3
    def accuracy(step):  # the solution's, after `step` steps
        return 0.9 - 0.7 * 0.99 ** step

    assert curve["accuracy"][0] == pytest.approx(sum(map(accuracy, (1, 2, 3))) / 3)
    assert curve["loss"][-1] == pytest.approx(sum(1 - accuracy(step) for step in (448, 449, 450)) / 3)
    assert curve["threshold"] == 0.8 and curve["floor"] == 0.3 and curve["measured"] == pytest.approx(0.8924, 1e-4)


def test_feedback_draws_the_curve_in_html_and_lists_it_in_markdown(reference_results):
    page = render_html(reference_results)
    found = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert found and base64.b64decode(found.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "img-src data:" in page  # the page's policy lets the inline image show, and nothing else
    curve = by_name(reference_results)["test_trained_accuracy"]["extra_data"]["training_curve"]
    markdown = render_markdown(reference_results)
    last = f"| 450 | {curve['loss'][-1]:.3f} | {curve['accuracy'][-1]:.3f} |"
    assert f"| 3 | {curve['loss'][0]:.3f} | {curve['accuracy'][0]:.3f} |" in markdown and last in markdown
    assert "full credit from 0.800, none at or below 0.300" in markdown
    assert "trainer says: step 100" in markdown


def test_totals_read_points_plus_extra_credit_everywhere(reference_results):
    assert reference_results["score"] == 22 and reference_results["max_score"] == 20  # Gradescope's numbers
    assert reference_results["output"].startswith("Score: 20 / 20 + 2 extra credit")
    assert "**Score: 20 / 20 + 2 extra credit**" in render_markdown(reference_results)
    assert "<strong>Score: 20 / 20 + 2 extra credit</strong>" in render_html(reference_results)
    assert "Total: 20 / 20 + 2 extra credit" in render_table(reference_results)
    assert "22 / 20" not in render_table(reference_results) + render_markdown(reference_results)


FORGERIES = {
    "too many points": "{'steps': list(range(1, 5002)), 'loss': [0.0] * 5001, 'accuracy': [1.0] * 5001}",
    "steps that go back": "{'steps': [3, 2, 1], 'loss': [0.1] * 3, 'accuracy': [1.0] * 3}",
    "steps past the training": "{'steps': [1, 10000], 'loss': [0.1, 0.0], 'accuracy': [1.0, 1.0]}",
    "not finite": "{'steps': [1, 2], 'loss': [float('nan'), 0.0], 'accuracy': [float('inf'), 1.0]}",
    "other keys": "{'steps': [1], 'loss': [0.1], 'accuracy': [1.0], 'score': [20]}",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_curve_is_dropped_and_never_changes_the_score(training, sandbox, reference_results, tmp_path,
                                                               forgery):
    source = (TRAINING / "solution" / "trainer.py").read_text()
    (tmp_path / "trainer.py").write_text(
        source + "\nimport omniglot_data.training_curve as _curve\n"
        f"_curve.TrainingCurve.reply = lambda self: {FORGERIES[forgery]}\n")
    test = by_name(grade_submission(training, tmp_path, select=[ACCURACY_TEST]))["test_trained_accuracy"]
    honest = by_name(reference_results)["test_trained_accuracy"]
    assert test["status"] == "passed" and test["score"] == honest["score"]
    assert "training_curve" not in test["extra_data"]
    assert "the training curve your run reported is not shown (" in test["output"].split(OUTPUT_MARK)[0]


def test_a_plausible_forged_curve_changes_only_the_picture(training, sandbox, reference_results, tmp_path):
    source = (TRAINING / "solution" / "trainer.py").read_text()
    (tmp_path / "trainer.py").write_text(
        source + "\nimport omniglot_data.training_curve as _curve\n"
        "_curve.TrainingCurve.reply = lambda self: {'steps': [1, 450], 'loss': [0.0, 0.0], 'accuracy': [1.0, 1.0]}\n"
        "Trainer.accuracy = lambda self: 0.55  # what the grader measures: half-way up the bar\n")
    test = by_name(grade_submission(training, tmp_path, select=[ACCURACY_TEST]))["test_trained_accuracy"]
    assert test["extra_data"]["training_curve"]["accuracy"] == [1.0, 1.0]
    assert test["score"] == pytest.approx(20 * (0.55 - 0.3) / (0.8 - 0.3))


# -- without the sandbox -------------------------------------------------------------------------------------------


def test_safe_curve_keeps_a_curve_as_the_probe_sends_it():
    curve, problem = safe_curve({"steps": [2, 4], "loss": [0.5, None], "accuracy": [1, 0.75]}, total_steps=4)
    assert problem is None and curve == {"steps": [2, 4], "loss": [0.5, None], "accuracy": [1.0, 0.75]}
    assert type(curve["accuracy"][0]) is float


@pytest.mark.parametrize("value, why", [
    ([1, 2], "not a map"),
    ({"steps": [], "loss": [], "accuracy": []}, f"1 to {MAX_CURVE_POINTS} points"),
    ({"steps": [1.0], "loss": [0.1], "accuracy": [0.5]}, "not whole numbers"),
    ({"steps": [True], "loss": [0.1], "accuracy": [0.5]}, "not whole numbers"),
    ({"steps": [0, 1], "loss": [0.1] * 2, "accuracy": [0.5] * 2}, "do not increase from 1"),
    ({"steps": [2, 2], "loss": [0.1] * 2, "accuracy": [0.5] * 2}, "do not increase from 1"),
    ({"steps": [1, 2], "loss": [0.1], "accuracy": [0.5] * 2}, "loss is not one value per step"),
    ({"steps": [1], "loss": ["0.1"], "accuracy": [0.5]}, "loss holds something other than finite numbers"),
    ({"steps": [1], "loss": [0.1], "accuracy": [math.inf]}, "accuracy holds something other than finite"),
    ({"steps": [1], "loss": [0.1], "accuracy": [[0.5]]}, "accuracy holds something other than finite"),
    ({"steps": [1, 11], "loss": [0.1] * 2, "accuracy": [0.5] * 2}, "past the 10 steps trained"),
])
def test_safe_curve_refuses_anything_else(value, why):
    curve, problem = safe_curve(value, total_steps=10)
    assert curve is None and why in problem


def test_results_check_the_recorded_curve_again():
    events = [{"event": "collected", "tests": [{"id": "t.py::test_a", "name": "test_a", "points": 1,
                                                "extra_credit": False, "visibility": "visible"}]},
              {"event": "result", "id": "t.py::test_a", "passed": True, "fraction": 1.0, "message": "",
               "training_curve": {"steps": [2, 1], "loss": [0, 0], "accuracy": [0, 0], "measured": 0.5}},
              {"event": "finished", "exitstatus": 0}]
    results = build_results(events, harness_problem=None, intake_summary="", extra_data={}, execution_time=0.0)
    assert "training_curve" not in results["tests"][0]["extra_data"]
    events[1]["training_curve"]["steps"] = [1, 2]
    events[1]["training_curve"]["measured"] = math.nan
    results = build_results(events, harness_problem=None, intake_summary="", extra_data={}, execution_time=0.0)
    assert results["tests"][0]["extra_data"]["training_curve"] == {
        "steps": [1, 2], "loss": [0.0, 0.0], "accuracy": [0.0, 0.0], "threshold": None, "floor": None,
        "measured": None}


def _test(score, max_score, extra_credit=False):
    return {"score": score, "max_score": 0.0 if extra_credit else max_score,
            "extra_data": {"extra_credit": extra_credit, "points": max_score}}


def test_score_text_separates_extra_credit():
    assert score_text([_test(50, 50), _test(30, 30), _test(10, 10, extra_credit=True)]) == \
        "80 / 80 + 10 extra credit"
    assert score_text([_test(42.5, 80), _test(0, 12, extra_credit=True)]) == "42.5 / 80 + 0 extra credit"
    assert score_text([_test(42.5, 80)]) == "42.5 / 80"


def test_training_curve_averages_windows_of_steps():
    curve = TrainingCurve(steps=450)
    assert curve.window == 3
    for step in range(1, 451):
        loss = None if step == 4 else torch.tensor(float(step))  # a missing value voids its window only
        curve.add(loss=loss, accuracy=float("nan") if step > 447 else step / 1000)
    reply = curve.reply()
    assert len(reply["steps"]) == 150 and reply["steps"][:2] == [3, 6] and reply["steps"][-1] == 450
    assert reply["loss"][:3] == [2.0, None, 8.0] and reply["accuracy"][0] == pytest.approx(0.002)
    assert reply["accuracy"][-1] is None and reply["accuracy"][-2] == pytest.approx(0.446)


def test_training_curve_of_a_run_that_does_not_fill_its_last_window():
    curve = TrainingCurve(steps=7, max_points=3)  # windows of 3: steps 3, 6 and a last short one at 7
    for step in range(1, 8):
        curve.add(loss=step, accuracy=torch.ones(2))  # not one number: no accuracy
    assert curve.reply() == {"steps": [3, 6, 7], "loss": [2.0, 5.0, 7.0], "accuracy": [None, None, None]}


def test_results_output_counts_only_what_students_see_now():
    def entry(name, visibility):
        return {"id": f"t.py::{name}", "name": name, "points": 2, "extra_credit": False, "visibility": visibility}

    events = [{"event": "collected", "tests": [entry("test_shown", "visible"), entry("test_secret", "hidden")]},
              *({"event": "result", "id": f"t.py::{name}", "passed": True, "fraction": 1.0, "message": ""}
                for name in ("test_shown", "test_secret")),
              {"event": "finished", "exitstatus": 0}]
    results = build_results(events, harness_problem=None, intake_summary="2 files", extra_data={},
                            execution_time=0.0)
    assert results["score"] == 4 and results["output"] == "Score: 2 / 2 (1 more test not shown yet)\n\n2 files"
    nothing = build_results([], harness_problem=None, intake_summary="Submission rejected: empty", extra_data={},
                            execution_time=0.0)
    assert nothing["output"].startswith("Submission rejected: empty")  # no "Score: 0 / 0" for what never ran
