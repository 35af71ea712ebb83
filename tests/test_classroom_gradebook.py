"""The class gradebook (nbgrader underneath), CSV export, class summary and submission discovery, on made-up results."""

import csv
import os
import shutil
import zipfile

import pytest

from autograder.classroom.grade_all import ClassroomError, _written_spec, content_hash, find_submissions, write_csv
from autograder.classroom.gradebook import ClassGradebook, GradebookError, GradingKey, cell_name
from autograder.classroom.summary import HISTOGRAM, PASS_RATES, TIMES, write_summary

KEY = GradingKey("hash", "fingerprint", "cpu")


def results(*tests):
    """tests: (name, score, max_score[, output])."""
    entries = [{"name": t[0], "score": t[1], "max_score": t[2], "status": "passed" if t[1] >= t[2] > 0 else "failed",
                "output": t[3] if len(t) > 3 else ""} for t in tests]
    return {"score": sum(t[1] for t in tests), "max_score": sum(t[2] for t in tests), "tests": entries}


@pytest.fixture
def gradebook(tmp_path, empty_gradebook_file):
    shutil.copy(empty_gradebook_file, tmp_path / "grades.db")
    with ClassGradebook(tmp_path / "grades.db") as book:
        book.ensure_assignment("hw1", {"Q1": 5.0})
        yield book


def by_id(rows):
    return {row.student_id: row for row in rows}


def test_auto_scores_extra_credit_and_error_rows(gradebook):
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 2, 2), ("loss", 1.5, 3), ("bonus", 1, 0)),
                     seconds=3.0)
    gradebook.record("hw1", "bob", KEY, results=None, error="grading took longer than 60 s and was stopped")

    rows = by_id(gradebook.rows("hw1"))
    alice, bob = rows["alice"], rows["bob"]
    assert alice.test_scores == {"shapes": 2.0, "loss": 1.5, "bonus": 1.0}
    assert (alice.auto_score, alice.max_score, alice.status) == (4.5, 10.0, "graded")  # 2 + 3 + 0 + Q1's 5
    assert alice.written_scores == {"Q1": None}
    assert (bob.status, bob.score, bob.error) == ("error", 0.0, "grading took longer than 60 s and was stopped")
    assert set(bob.test_scores.values()) == {0.0}
    assert gradebook.grading_key("hw1", "alice") == KEY
    assert gradebook.grading_key("hw1", "bob") is None  # failed gradings are retried
    assert gradebook.test_names("hw1") == ["shapes", "loss", "bonus"]


def test_nbgrader_sees_the_same_totals(gradebook):
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 2, 2), ("loss", 1, 3), ("bonus", 0.5, 0)))
    gradebook.set_manual_score("hw1", "alice", "Q1", 4)
    nb = gradebook._nb
    submission = nb.find_submission("hw1", "alice")
    assert submission.score == pytest.approx(7.5)
    assert submission.max_score == pytest.approx(10.0)
    assert not submission.needs_manual_grade
    assert nb.find_grade("loss", "hw1", "hw1", "alice").auto_score == 1.0
    assert nb.find_grade("bonus", "hw1", "hw1", "alice").extra_credit == 0.5


def test_regrade_keeps_manual_scores_and_replaces_auto_scores(gradebook):
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 0, 2)))
    gradebook.set_manual_score("hw1", "alice", "Q1", 3.5)
    gradebook.record("hw1", "alice", GradingKey("new", "fingerprint", "cpu"), results=results(("shapes", 2, 2)))
    gradebook.record("hw1", "alice", KEY, results=None, error="killed")  # even an error row keeps them
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 2, 2)))

    alice = by_id(gradebook.rows("hw1"))["alice"]
    assert alice.written_scores == {"Q1": 3.5}
    assert (alice.auto_score, alice.score) == (2.0, 5.5)


def test_a_test_added_later_scores_zero_for_students_graded_before(gradebook):
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 2, 2)))
    gradebook.record("hw1", "bob", KEY, results=results(("shapes", 2, 2), ("new_test", 3, 3)))
    rows = by_id(gradebook.rows("hw1"))
    assert rows["alice"].test_scores == {"shapes": 2.0, "new_test": 0.0}
    assert rows["alice"].max_score == rows["bob"].max_score == 10.0


def test_manual_score_checks(gradebook):
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 2, 2)))
    with pytest.raises(GradebookError, match="no written question 'Q9'.*Q1"):
        gradebook.set_manual_score("hw1", "alice", "Q9", 1)
    with pytest.raises(GradebookError, match="outside 0..5"):
        gradebook.set_manual_score("hw1", "alice", "Q1", 6)
    with pytest.raises(GradebookError, match="zed has no graded submission"):  # all or nothing
        gradebook.set_manual_scores("hw1", {("alice", "Q1"): 2.0, ("zed", "Q1"): 1.0})
    assert by_id(gradebook.rows("hw1"))["alice"].written_scores == {"Q1": None}
    gradebook.update_students({"carol": {"first_name": "Carol"}})
    for student in ("zed", "carol"):  # unknown, and on the roster without a submission
        with pytest.raises(GradebookError, match=f"{student} has no graded submission of hw1"):
            gradebook.set_manual_score("hw1", student, "Q1", 1)
    assert by_id(gradebook.rows("hw1"))["carol"].status == "missing"
    with pytest.raises(GradebookError, match="name of a written question"):
        gradebook.record("hw1", "alice", KEY, results=results(("Q1", 1, 1)))
    assert by_id(gradebook.rows("hw1"))["alice"].test_scores == {"shapes": 2.0}  # the failed record changed nothing


def test_an_interrupted_record_leaves_the_previous_grade(gradebook, monkeypatch):
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 2, 2), ("loss", 3, 3)))
    real_execute = gradebook._session.execute

    def interrupted(statement, *args, **kwargs):
        if "autograder_submission" in str(statement) and "INSERT" in str(statement):
            raise KeyboardInterrupt  # after the grades were flushed, before the commit
        return real_execute(statement, *args, **kwargs)

    monkeypatch.setattr(gradebook._session, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gradebook.record("hw1", "alice", GradingKey("other", "f", "cpu"), results=results(("shapes", 0, 2)))
    monkeypatch.undo()
    alice = by_id(gradebook.rows("hw1"))["alice"]
    assert alice.test_scores == {"shapes": 2.0, "loss": 3.0}
    assert gradebook.grading_key("hw1", "alice") == KEY


def test_long_test_names_fit_nbgrader(gradebook):
    long_a, long_b = "test_" + "a" * 200, "test_" + "a" * 199 + "b"
    assert len(cell_name(long_a)) == 128 and cell_name(long_a) != cell_name(long_b)
    gradebook.record("hw1", "alice", KEY, results=results((long_a, 1, 1), (long_b, 0, 1)))
    assert sorted(by_id(gradebook.rows("hw1"))["alice"].test_scores.values()) == [0.0, 1.0]


def test_csv_quotes_commas_quotes_and_newlines(gradebook, tmp_path):
    gradebook.update_students({"alice": {"first_name": 'Ann "Annie"', "last_name": "Doe, Jr.", "email": "a@x.edu"},
                               "carol": {"first_name": "Carol", "last_name": "Roe"}})
    gradebook.record("hw1", "alice", KEY, results=results(("param[1,2]", 1, 1), ("loss", 0, 2)), seconds=2.5)
    gradebook.record("hw1", "bob", KEY, results=None, error='crashed: "boom",\nsecond line')
    gradebook.set_manual_score("hw1", "alice", "Q1", 4)
    path = tmp_path / "out" / "grades.csv"
    write_csv(path, "hw1", gradebook.rows("hw1"), gradebook.test_names("hw1"), gradebook.written_questions("hw1"))

    with open(path, newline="") as handle:
        table = list(csv.DictReader(handle))
    rows = {row["student_id"]: row for row in table}
    assert list(rows) == ["alice", "bob", "carol"]
    alice = rows["alice"]
    assert (alice["first_name"], alice["last_name"]) == ('Ann "Annie"', "Doe, Jr.")
    # results without node ids (recorded before the engine stored them): ids from the test names, commas replaced
    assert (alice["hw1.param_1_2"], alice["hw1.loss"], alice["written.Q1"]) == ("1", "0", "4")
    assert (alice["score"], alice["max_score"], alice["status"], alice["grading_seconds"]) == ("5", "8", "graded", "2.5")
    assert rows["bob"]["error"] == 'crashed: "boom",\nsecond line'
    assert (rows["bob"]["status"], rows["bob"]["score"]) == ("error", "0")
    assert (rows["carol"]["status"], rows["carol"]["score"], rows["carol"]["hw1.loss"]) == ("missing", "0", "")


def test_summary_page(gradebook, tmp_path):
    gradebook.record("hw1", "alice", KEY, results=results(("shapes", 2, 2), ("loss", 3, 3)), seconds=10.0)
    gradebook.record("hw1", "bob", KEY, results=results(("shapes", 2, 2), ("loss", 0, 3, "AssertionError: loss is nan\n")),
                     seconds=30.0)
    gradebook.record("hw1", "carol", KEY, results=results(("shapes", 0, 2, "<script>alert(1)</script>"),
                                                          ("loss", 0, 3, "AssertionError: loss is nan")), seconds=20.0)
    gradebook.record("hw1", "dan", KEY, results=None, error="the grading process was killed by SIGKILL", seconds=5.0)
    page = write_summary(tmp_path / "summary", "hw1", gradebook.rows("hw1"), gradebook.test_names("hw1"))

    for name in ("summary.md", "summary.html", HISTOGRAM, PASS_RATES, TIMES):
        assert (tmp_path / "summary" / name).stat().st_size > 0
    assert (tmp_path / "summary" / HISTOGRAM).read_bytes().startswith(b"\x89PNG")
    markdown = (tmp_path / "summary" / "summary.md").read_text()
    assert "| mean score | 1.75 |" in markdown  # (5 + 2 + 0 + 0) / 4 submissions
    assert "| grading failed (0 points, retried on the next run) | 1 |" in markdown
    assert "| shapes | 2 | 2/3 | 67% | 1.333 |" in markdown
    assert "| loss | 2/3 | AssertionError: loss is nan (2x) |" in markdown  # most failed first, with its message
    assert "longest 30.0 s (bob)" in markdown
    assert "| dan | the grading process was killed by SIGKILL |" in markdown
    html = page.read_text()
    assert "AssertionError: loss is nan (2x)" in html
    assert "<script>" not in html and "&lt;script&gt;alert(#)&lt;/script&gt; (1x)" in html  # escaped, numbers as #


def test_submission_discovery(tmp_path):
    (tmp_path / "alice").mkdir()
    with zipfile.ZipFile(tmp_path / "bob.zip", "w") as archive:
        archive.writestr("hw1/hw1.py", "x = 1\n")
    (tmp_path / ".DS_Store").write_text("")
    (tmp_path / "__MACOSX").mkdir()
    found = find_submissions(tmp_path)
    assert [(s.student_id, s.path.name) for s in found] == [("alice", "alice"), ("bob", "bob.zip")]

    (tmp_path / "bad id").mkdir()
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "alice.zip").write_bytes(b"")
    with pytest.raises(ClassroomError) as error:
        find_submissions(tmp_path)
    message = str(error.value)
    assert "3 unusable entries" in message
    assert "'bad id' must start with a letter or digit" in message
    assert "notes.txt: expected a folder or a .zip" in message
    assert "student alice also has alice" in message


def test_content_hash_follows_content_only(tmp_path):
    folder = tmp_path / "alice"
    (folder / "sub").mkdir(parents=True)
    (folder / "hw1.py").write_text("x = 1\n")
    (folder / "sub" / "load_data.py").write_text("y = 2\n")
    first = content_hash(folder)
    assert content_hash(folder) == first
    (folder / "hw1.py").write_text("x = 2\n")
    assert content_hash(folder) != first
    (folder / "hw1.py").write_text("x = 1\n")
    assert content_hash(folder) == first
    (folder / "sub" / "load_data.py").rename(folder / "load_data.py")
    assert content_hash(folder) != first  # a moved file is a different submission
    os.mkfifo(folder / "pipe")
    assert content_hash(folder) != first  # and a FIFO is hashed by name, never opened (it would block)


def test_written_option():
    assert _written_spec("Q1:5,Q2 (essay):2.5") == {"Q1": 5.0, "Q2 (essay)": 2.5}
    for bad in ("Q1", "Q1:0", "Q1:x", ":3", "Q1:1,Q1:2"):
        with pytest.raises(Exception, match="QUESTION:POINTS"):
            _written_spec(bad)


def test_grader_fingerprint_follows_graders_and_reference(tmp_path):
    from pathlib import Path

    from autograder.assignment import load_assignment
    from autograder.classroom.grade_all import grader_fingerprint

    toy = tmp_path / "toy"
    shutil.copytree(Path(__file__).resolve().parent / "fixtures" / "engine" / "toy", toy)
    first = grader_fingerprint(load_assignment(toy / "graders"))
    (toy / "graders" / "__pycache__").mkdir(exist_ok=True)
    (toy / "graders" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    (toy / "graders" / ".pytest_cache").mkdir(exist_ok=True)
    (toy / "graders" / ".pytest_cache" / "state").write_text("cache")
    assert grader_fingerprint(load_assignment(toy / "graders")) == first
    with open(toy / "graders" / "test_toy.py", "a") as handle:
        handle.write("\n# a grader fix\n")
    second = grader_fingerprint(load_assignment(toy / "graders"))
    assert second != first
    with open(toy / "solution" / "toy.py", "a") as handle:
        handle.write("\n# a reference fix\n")
    assert grader_fingerprint(load_assignment(toy / "graders")) not in (first, second)
