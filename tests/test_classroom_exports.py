"""grade-all's exports: exact header rows of the Canvas import and the Gradescope upload, short test ids, score text."""

import csv
import shutil
from pathlib import Path

import pytest

from autograder.classroom.exports import (CANVAS_HEADER, GRADESCOPE_HEADER, score_text, short_test_id,
                                          short_test_ids, write_canvas_csv, write_detailed_csv, write_gradescope_csv)
from autograder.classroom.gradebook import ClassGradebook, GradingKey
from autograder.classroom.intake import Submission

KEY = GradingKey("hash", "fingerprint", "cpu")


def results(*tests):
    """tests: (name, score, max_score, node id)."""
    return {"score": sum(t[1] for t in tests), "max_score": sum(t[2] for t in tests),
            "tests": [{"name": t[0], "score": t[1], "max_score": t[2], "status": "passed",
                       "extra_data": {"id": t[3]}} for t in tests]}


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def book(tmp_path, empty_gradebook_file):
    """hw1-like: 25 + 55 autograded points, a 10-point extra-credit test, written questions 6 + 14."""
    shutil.copy(empty_gradebook_file, tmp_path / "grades.db")
    with ClassGradebook(tmp_path / "grades.db") as gradebook:
        gradebook.ensure_assignment("hw1", {"Q1": 6.0, "Q2": 14.0})
        gradebook.update_students({"1001": {"first_name": "Alice", "last_name": "Smith, Jr.", "email": "a@x.edu"},
                                   "111": {"last_name": "jonesbob"}, "4004": {"first_name": "Eve"}})
        full = results(("test_sample_shapes: _sample() shapes", 25, 25, "test_hw1_data.py::test_sample_shapes"),
                       ("test_forward[2,3]", 55, 55, "test_hw1_models.py::test_forward[2,3]"),
                       ("test_attention: extra credit", 10, 0, "test_hw1_models.py::TestAttention::test_attention"))
        gradebook.record("hw1", "1001", KEY, results=full)
        gradebook.record("hw1", "111", KEY, results=full)
        gradebook.record("hw1", "3003", KEY, results=None, error="killed")
        gradebook.set_manual_score("hw1", "1001", "Q1", 5)
        gradebook.record_intake("hw1", [Submission("111", Path("x"), source="canvas", late=True),
                                        Submission("1001", Path("y"), source="gradescope")])
        yield gradebook


def test_short_test_ids():
    assert short_test_id("hw1", "test_hw1_data.py::test_sample_shapes") == "hw1.data.sample_shapes"
    assert short_test_id("hw2", "test_protonet.py::test_step[5-1]") == "hw2.protonet.step.5-1"
    assert short_test_id("hw1", "test_hw1_models.py::TestAttention::test_mask[a, b]") == \
        "hw1.models.TestAttention.mask.a-b"
    assert short_test_id("toy", "test_toy.py::test_add") == "toy.add"


def test_detailed_csv_columns_are_short_stable_ids(book, tmp_path):
    rows, names = book.rows("hw1"), book.test_names("hw1")
    ids = short_test_ids("hw1", rows, names)
    assert list(ids.values()) == ["hw1.data.sample_shapes", "hw1.models.forward.2-3",
                                  "hw1.models.TestAttention.attention"]
    assert short_test_ids("hw1", list(reversed(rows)), names) == ids  # does not depend on whose results come first
    write_detailed_csv(tmp_path / "d.csv", "hw1", rows, names, book.written_questions("hw1"))
    header, *lines = read(tmp_path / "d.csv")
    assert header[-9:] == ["hw1.data.sample_shapes", "hw1.models.forward.2-3", "hw1.models.TestAttention.attention",
                           "written.Q1", "written.Q2", "grading_seconds", "graded_at", "content_sha256", "error"]
    assert all("," not in name and len(name) < 40 for name in header)
    alice = dict(zip(header, lines[0]))
    assert (alice["student_id"], alice["score"], alice["max_score"], alice["auto_max"]) == ("1001", "95", "100", "80")
    assert alice["score_text"] == "autograded 80 / 80 + 10 extra credit; written: 5 / 20 (some questions not graded yet)"


def test_score_text(book):
    rows = {row.student_id: row for row in book.rows("hw1")}
    assert score_text(rows["111"]) == "autograded 80 / 80 + 10 extra credit; written: not graded yet / 20; late " \
                                       "(no submission time: no deduction)"
    assert score_text(rows["3003"]) == "autograded 0 / 80; written: not graded yet / 20; grading failed: killed"
    assert score_text(rows["4004"]) == "no submission"


def test_canvas_import_csv(book, tmp_path):
    write_canvas_csv(tmp_path / "canvas.csv", "HW1 (123456)", book.rows("hw1"))
    assert read(tmp_path / "canvas.csv") == [
        CANVAS_HEADER + ["HW1 (123456)"],
        ["Points Possible", "", "", "", "", "100"],
        ["Smith, Jr., Alice", "", "1001", "", "", "95"],
        ["jonesbob", "111", "", "", "", "90"],  # from a Canvas download: matched by Canvas user id
        ["", "", "3003", "", "", ""],  # grading failed: no score sent
        ["Eve", "", "4004", "", "", ""],  # no submission
    ]
    assert CANVAS_HEADER == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def test_gradescope_upload_csv(book, tmp_path):
    write_gradescope_csv(tmp_path / "gradescope.csv", book.rows("hw1"))
    assert read(tmp_path / "gradescope.csv") == [
        ["Name", "SID", "Email", "Score"],
        ["Alice Smith, Jr.", "1001", "a@x.edu", "95"],
        ["jonesbob", "111", "", "90"],
        ["", "3003", "", ""],
        ["Eve", "4004", "", ""],
    ]
    assert GRADESCOPE_HEADER == ["Name", "SID", "Email", "Score"]


def test_late_policy_deduction_reaches_nbgrader(book):
    import datetime as dt

    from autograder.assignment import LatePolicy

    due = dt.datetime(2026, 10, 1, 23, 59, tzinfo=dt.timezone.utc)
    book.record_intake("hw1", [Submission("1001", Path("y"), source="gradescope",
                                          submitted_at=due + dt.timedelta(hours=30), late=True)])
    book.apply_late_policy("hw1", LatePolicy(due=due, penalty_per_day=0.1))
    alice = {row.student_id: row for row in book.rows("hw1")}["1001"]
    assert alice.late_penalty == pytest.approx(19.0)  # 2 started days: 20% of 80 + 10 + 5
    assert alice.score == pytest.approx(76.0)
    assert book._nb.find_submission("hw1", "1001").late_submission_penalty == pytest.approx(19.0)
    assert score_text(alice).endswith("; late: -19")
