"""grade-all's intake of Gradescope exports and Canvas downloads, the late policy, and what reaches the gradebook.

The exports are built here the way the two services write them (Gradescope: `submission_metadata.yml` with Ruby-style
`:key:` names and one `submission_<id>/` folder per active submission; Canvas: flat files named
`<loginname>[_LATE]_<userid>_<submissionid>_<original name>`). Grading runs in-process with a stand-in executor
that scores what it reads from each staged submission, so a whole class takes a second or two.
"""

import datetime as dt
import shutil
import zipfile
from pathlib import Path

import pytest

from autograder.assignment import AssignmentError, LatePolicy, load_assignment
from autograder.classroom import grade_all as grade_all_module
from autograder.classroom.cluster import Outcome
from autograder.classroom.gradebook import ClassGradebook
from autograder.classroom.intake import ClassroomError, detect_source, read_submissions
from autograder.cli import main

TOY = Path(__file__).resolve().parent / "fixtures" / "engine" / "toy"
PACIFIC = dt.timezone(dt.timedelta(hours=-7))
DUE = dt.datetime(2026, 10, 1, 23, 59, tzinfo=PACIFIC)

GRADESCOPE_METADATA = """\
submission_1001:
  :submitters:
  - :name: Alice Smith
    :sid: '1001'
    :email: alice@uni.edu
  :created_at: 2026-10-03 09:30:00.123456000 -07:00
  :score: 10.0
  :history:
  - :id: 990
    :created_at: 2026-09-30 20:00:00.000000000 -07:00
    :score: 4.0
submission_0990:
  :submitters:
  - :name: Alice Smith
    :sid: '1001'
    :email: alice@uni.edu
  :created_at: 2026-09-30 20:00:00.000000000 -07:00
  :score: 4.0
  :history: []
submission_1002:
  :submitters:
  - :name: Bob Jones
    :sid: 2002
    :email: bob@uni.edu
  :created_at: 2026-10-01 12:00:00.000000000 -07:00
  :score: 3.0
  :history: []
submission_1003:
  :submitters:
  - :name: Carol Ann Lee
    :sid: '3003'
    :email: carol@uni.edu
  - :name: Dan Wu
    :sid:
    :email: dan@uni.edu
  :created_at: 2026-10-02 00:10:00.000000000 -07:00
  :score: 0.0
  :history: []
"""


def gradescope_export(root: Path, zipped: bool) -> Path:
    files = {
        "submission_metadata.yml": GRADESCOPE_METADATA,
        "submission_1001/toy.py": "# alice, late resubmission\nSCORE = 9\n",
        "submission_1001/notes.txt": "not a student file",
        "submission_0990/toy.py": "# alice, first try\nSCORE = 4\n",
        "submission_1002/hw/toy.py": "# bob\nSCORE = 3\n",
        "submission_1003/toy.py": "# carol and dan\nSCORE = 5\n",
    }
    if zipped:
        path = root / "gradescope_export.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for name, text in files.items():
                archive.writestr(f"assignment_4242_export/{name}", text)
        return path
    path = root / "assignment_4242_export"
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def canvas_download(root: Path) -> Path:
    path = root / "submissions.zip"
    student_zip = root / "bob.zip"
    with zipfile.ZipFile(student_zip, "w") as archive:
        archive.writestr("hw/toy.py", "# bob, zipped\nSCORE = 3\n")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("smithalice_111_9001_toy.py", "# alice, first try\nSCORE = 4\n")
        archive.writestr("smithalice_LATE_111_9050_toy-1.py", "# alice, late resubmission\nSCORE = 9\n")
        archive.write(student_zip, "jonesbob_222_9010_submission.zip")
        archive.writestr("leecarol_LATE_333_9020_answers.pdf", "%PDF-1.4 written answers only")
    return path


def by_id(submissions):
    return {s.student_id: s for s in submissions}


@pytest.mark.parametrize("zipped", [False, True])
def test_gradescope_export_latest_submission_per_student(tmp_path, zipped):
    export = gradescope_export(tmp_path, zipped)
    assert detect_source(export) == "gradescope"
    found = by_id(read_submissions(export, "auto", ("toy.py",), tmp_path / "staged"))

    assert list(found) == ["1001", "2002", "3003", "dan@uni.edu"]  # a group submission counts for each member
    alice = found["1001"]
    assert alice.reference == "submission_1001"  # the late resubmission, not a second student
    assert alice.submitted_at == dt.datetime(2026, 10, 3, 9, 30, 0, 123456, tzinfo=PACIFIC)
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Smith", "alice@uni.edu")
    assert (alice.path / "toy.py").read_text().startswith("# alice, late resubmission")
    assert not (alice.path / "notes.txt").exists()  # only the assignment's files are staged
    assert (found["2002"].path / "hw" / "toy.py").read_text() == "# bob\nSCORE = 3\n"  # submitted once: kept
    assert (found["3003"].first_name, found["3003"].last_name) == ("Carol Ann", "Lee")
    assert found["dan@uni.edu"].reference == "submission_1003"


def test_canvas_download_latest_files_and_late_mark(tmp_path):
    download = canvas_download(tmp_path)
    assert detect_source(download) == "canvas"
    found = by_id(read_submissions(download, "auto", ("toy.py",), tmp_path / "staged"))

    assert list(found) == ["111", "222", "333"]
    alice = found["111"]
    assert alice.late and alice.submitted_at is None  # Canvas puts no time in the download
    assert (alice.path / "toy.py").read_text().startswith("# alice, late resubmission")  # toy-1.py, the later id
    assert sorted(p.name for p in alice.path.iterdir()) == ["toy.py"]
    assert alice.reference == "smithalice_LATE_111_9050_toy-1.py"
    assert (alice.source, alice.last_name) == ("canvas", "smithalice")
    bob = found["222"]
    assert not bob.late
    with zipfile.ZipFile(bob.path / "submission.zip") as archive:  # a student's zip is staged for the engine
        assert archive.read("hw/toy.py").startswith(b"# bob, zipped")
    assert list(found["333"].path.iterdir()) == []  # only a PDF: listed, and graded as missing its files
    assert found["333"].late


def test_rerun_stages_the_same_files(tmp_path):
    from autograder.classroom.grade_all import content_hash

    export = gradescope_export(tmp_path, zipped=True)
    first = {s.student_id: content_hash(s.path) for s in read_submissions(export, "gradescope", ("toy.py",))}
    again = {s.student_id: content_hash(s.path) for s in read_submissions(export, "gradescope", ("toy.py",))}
    assert first == again  # unchanged submissions are not re-graded
    assert (tmp_path / "gradescope_export.zip.staged" / "1001" / "toy.py").is_file()


def test_malformed_exports_are_named(tmp_path):
    bad = tmp_path / "bad_gradescope"
    (bad / "submission_1").mkdir(parents=True)
    (bad / "submission_metadata.yml").write_text("submission_1:\n  :created_at: 2026-10-01 10:00:00 -07:00\n"
                                                 "submission_2:\n  :submitters:\n  - :name: X\n    :sid: '5'\n"
                                                 "  :created_at: 2026-10-01 10:00:00 -07:00\n")
    with pytest.raises(ClassroomError) as error:
        read_submissions(bad, "auto", ("toy.py",), tmp_path / "s1")
    message = str(error.value)
    assert "submission_metadata.yml: 2 unusable" in message
    assert "submission_1: expected :submitters:" in message
    assert "submission_2: listed in submission_metadata.yml but the export has no submission_2/ folder" in message

    (bad / "submission_metadata.yml").write_text("- just\n- a list\n")
    with pytest.raises(ClassroomError, match="expected a mapping of submission folders"):
        read_submissions(bad, "gradescope", ("toy.py",), tmp_path / "s2")

    canvas = tmp_path / "canvas"
    canvas.mkdir()
    (canvas / "smithalice_111_9001_toy.py").write_text("x = 1\n")
    (canvas / "toy.py").write_text("x = 1\n")
    with pytest.raises(ClassroomError, match=r"toy.py: expected <loginname>\[_LATE\]_<userid>_<submissionid>"):
        read_submissions(canvas, "canvas", ("toy.py",), tmp_path / "s3")

    (tmp_path / "mine").mkdir()
    with pytest.raises(ClassroomError, match="exists and was not made by grade-all"):
        read_submissions(canvas_download(tmp_path), "canvas", ("toy.py",), tmp_path / "mine")
    (tmp_path / "notes.zip").write_bytes(b"not a zip")
    with pytest.raises(ClassroomError, match="notes.zip: not a readable zip file"):
        read_submissions(tmp_path / "notes.zip", "auto", ("toy.py",))


def test_late_policy():
    policy = LatePolicy(due=DUE, grace_minutes=15, penalty_per_day=0.1, max_days=3)
    assert policy.days_late(DUE + dt.timedelta(minutes=15)) == 0  # within the grace period
    assert policy.days_late(DUE + dt.timedelta(minutes=16)) == 1  # a started day counts
    assert policy.penalty_fraction(DUE + dt.timedelta(days=1, minutes=1)) == pytest.approx(0.2)
    assert policy.penalty_fraction(DUE + dt.timedelta(days=3, hours=1)) == 1.0  # past max_days
    assert policy.penalty_fraction(DUE - dt.timedelta(days=1)) == 0.0


def toy_with(tmp_path: Path, extra_toml: str) -> Path:
    toy = tmp_path / "toy"
    shutil.copytree(TOY, toy)
    with open(toy / "graders" / "assignment.toml", "a") as handle:
        handle.write(extra_toml)
    return toy / "graders"


LATE_AND_WRITTEN = """
[written]
Q1 = 6
Q2 = 4

[late]
due = 2026-10-01T23:59:00-07:00
grace_minutes = 15
penalty_per_day = 0.1
max_days = 3
"""


def test_assignment_toml_late_and_written_tables(tmp_path):
    assignment = load_assignment(toy_with(tmp_path / "a", LATE_AND_WRITTEN))
    assert assignment.written == {"Q1": 6.0, "Q2": 4.0}
    assert assignment.late == LatePolicy(due=DUE, grace_minutes=15, penalty_per_day=0.1, max_days=3)
    assert type(assignment).from_json(assignment.to_json()) == assignment
    for bad, message in [('[late]\ndue = "tomorrow"\n', "due must be a date and time with its UTC offset"),
                         ("[late]\ndue = 2026-10-01T23:59:00\n", "due must be a date and time with its UTC offset"),
                         ("[late]\ndue = 2026-10-01T23:59:00Z\npenalty_per_day = 2\n", "between 0 and 1"),
                         ("[late]\ndue = 2026-10-01T23:59:00Z\nlate_days = 2\n", "unknown keys"),
                         ("[written]\nQ1 = 0\n", r"\[written\] Q1 = 0: expected")]:
        with pytest.raises(AssignmentError, match=message):
            load_assignment(toy_with(tmp_path / f"b{len(message)}{len(bad)}", bad))


def test_the_homeworks_declare_their_handouts_written_points():
    assert load_assignment("hw1").written == {"Q1": 6.0, "Q2": 7.0, "Q3": 7.0}  # README.md Part 4: 6 + 7 + 7
    assert sum(load_assignment("hw2").written.values()) == 20.0  # "Written questions (20 points)"


class ScoreFromFileExecutor:
    """Grades in-process: the submission's toy.py says its score (`SCORE = n`) on one test of 10 points."""

    def __init__(self, *args, **kwargs):
        pass

    def run(self, jobs):
        for job in jobs:
            path = Path(job.spec["submission"])
            text = next((p.read_text() for p in sorted(path.rglob("toy.py"))), "") if path.is_dir() else ""
            score = float(text.split("SCORE = ")[1].split()[0]) if "SCORE = " in text else 0.0
            test = {"name": "test_add: add() sums", "score": score, "max_score": 10.0, "status": "passed",
                    "extra_data": {"id": "test_toy.py::test_add"}}
            yield Outcome(job.student_id, {"score": score, "max_score": 10.0, "tests": [test]}, seconds=0.1)


@pytest.fixture
def in_process_grading(monkeypatch):
    monkeypatch.setattr(grade_all_module, "_executor", lambda args, assignment: ScoreFromFileExecutor())


def test_grade_all_gradescope_export_into_the_gradebook(tmp_path, in_process_grading, capsys):
    graders = toy_with(tmp_path, LATE_AND_WRITTEN)
    export = gradescope_export(tmp_path, zipped=True)
    gradebook = tmp_path / "grades.db"
    code = main(["grade-all", str(graders), str(export), "--gradebook", str(gradebook), "--no-progress",
                 "--insecure-no-sandbox", "--csv", str(tmp_path / "detailed.csv"),
                 "--gradescope-csv", str(tmp_path / "gradescope.csv"), "--canvas-csv", str(tmp_path / "canvas.csv")])
    assert code == 0, capsys.readouterr().err
    with ClassGradebook(gradebook) as book:
        nb = book._nb
        assert nb.find_assignment("toy").duedate == dt.datetime(2026, 10, 2, 6, 59)  # naive UTC, as nbgrader keeps
        alice = nb.find_submission("toy", "1001")
        assert alice.timestamp == dt.datetime(2026, 10, 3, 16, 30, 0, 123456)  # the resubmission's time, in UTC
        assert alice.total_seconds_late == pytest.approx((dt.timedelta(days=1, hours=9, minutes=31)
                                                          + dt.timedelta(microseconds=123456)).total_seconds())
        assert nb.find_submission("toy", "2002").timestamp == dt.datetime(2026, 10, 1, 19, 0)
        rows = {row.student_id: row for row in book.rows("toy")}
        assert nb.find_student("1001").first_name == "Alice" and nb.find_student("1001").email == "alice@uni.edu"
    assert rows["1001"].test_scores == {"test_add: add() sums": 9.0}  # graded from the late resubmission
    assert rows["1001"].late and rows["1001"].late_penalty == pytest.approx(1.8)  # 2 started days: 20% of 9
    assert rows["1001"].score == pytest.approx(7.2)
    assert rows["1001"].max_score == 20.0  # 10 autograded + the written 6 + 4
    assert (rows["2002"].late, rows["2002"].late_penalty, rows["2002"].score) == (False, 0.0, 3.0)
    assert not rows["3003"].late and rows["3003"].late_penalty == 0.0  # 11 minutes late: within the grace period


def test_grade_all_canvas_download_and_rerun(tmp_path, in_process_grading, capsys):
    graders = toy_with(tmp_path, LATE_AND_WRITTEN)
    download = canvas_download(tmp_path)
    gradebook, canvas_csv = tmp_path / "grades.db", tmp_path / "canvas.csv"
    command = ["grade-all", str(graders), str(download), "--gradebook", str(gradebook), "--no-progress",
               "--insecure-no-sandbox", "--canvas-csv", str(canvas_csv), "--canvas-column", "HW1 (123456)"]
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "3 submissions, 3 to grade" in err
    assert "2 late submission(s) without a submission time (Canvas downloads carry none), so no late deduction " \
           "is applied to them: 111, 333" in err
    with ClassGradebook(gradebook) as book:
        rows = {row.student_id: row for row in book.rows("toy")}
        assert book._nb.find_submission("toy", "111").timestamp is None
    assert rows["111"].test_scores == {"test_add: add() sums": 9.0}  # the later upload, toy-1.py
    assert (rows["111"].late, rows["111"].late_penalty, rows["111"].source) == (True, 0.0, "canvas")
    assert rows["222"].test_scores == {"test_add: add() sums": 0.0}  # the stand-in grader does not open zips
    with open(canvas_csv, newline="") as handle:
        lines = handle.read().splitlines()
    assert lines[:3] == ["Student,ID,SIS User ID,SIS Login ID,Section,HW1 (123456)", "Points Possible,,,,,20",
                         "smithalice,111,,,,9"]

    assert main(command) == 0  # the same download again: staged identically, nobody re-graded
    assert "3 submissions, 0 to grade, 3 unchanged" in capsys.readouterr().err
