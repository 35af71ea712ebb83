"""`grade-all` end to end on the engine's toy assignment (tests/fixtures/engine/toy): real sandboxed gradings."""

import csv
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.classroom.gradebook import ClassGradebook

TOY = Path(__file__).resolve().parent / "fixtures" / "engine" / "toy"
GRADERS = TOY / "graders"
SOLUTION = (TOY / "solution" / "toy.py").read_text()
STARTER = (TOY / "release" / "toy.py").read_text()
# add() right, everything else still the starter's NotImplementedError.
PARTIAL = STARTER.replace('def add(a, b):\n    raise NotImplementedError("add")', "def add(a, b):\n    return a + b")
FULL_SCORE = 12.2  # 2 + 3 + 0.8 * 4 (partial credit) + 1 + 2 (extra credit) + 1
STARTER_SCORE = 1.0  # test_provided_offset only reads the official provided helper
PARTIAL_SCORE = 3.0  # test_add + test_provided_offset

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is needed to grade")


def malicious(class_dir: Path, gradebook: Path) -> str:
    """Tries to reach the rest of the class from inside its sandbox, then dies mid-import."""
    return f'''
import os, signal
for target, text in [({str(class_dir / "alice" / "toy.py")!r}, "def add(a, b):\\n    return 0\\n"),
                     ({str(gradebook)!r}, "not a database"), ("results.json", '{{"score": 100}}'),
                     ("/tmp/results.json", '{{"score": 100}}')]:
    try:
        with open(target, "w") as handle:
            handle.write(text)
    except OSError:
        pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
os._exit(0)
'''


def make_class(class_dir: Path, gradebook: Path, members=("alice", "bob", "carol", "mallory")) -> Path:
    sources = {"alice": SOLUTION, "bob": PARTIAL, "carol": STARTER, "mallory": malicious(class_dir, gradebook)}
    class_dir.mkdir(parents=True, exist_ok=True)
    for student in members:
        if student == "bob":  # one zip, with the folder nesting students produce
            with zipfile.ZipFile(class_dir / "bob.zip", "w") as archive:
                archive.writestr("hw/toy.py", sources["bob"])
        else:
            (class_dir / student).mkdir()
            (class_dir / student / "toy.py").write_text(sources[student])
    return class_dir


def grade_all(*args):
    return main(["grade-all", str(GRADERS), *map(str, args), "--no-progress"])


def read_csv(path):
    with open(path, newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def scores(table):
    """What must not depend on scheduling: every score column."""
    return {student: {k: v for k, v in row.items() if k in ("score", "status") or k.startswith("toy.")}
            for student, row in table.items()}


@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory):
    """Creating a gradebook runs nbgrader's alembic stamp (seconds); tests start from copies of one made once."""
    path = tmp_path_factory.mktemp("template") / "grades.db"
    ClassGradebook(path).close()
    return path


@pytest.fixture
def gradebook_file(tmp_path, empty_gradebook):
    return Path(shutil.copy(empty_gradebook, tmp_path / "grades.db"))


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, empty_gradebook):
    """The whole class, attacker included, graded with 2 jobs and every output."""
    root = tmp_path_factory.mktemp("class")
    gradebook = Path(shutil.copy(empty_gradebook, root / "grades.db"))
    class_dir = make_class(root / "submissions", gradebook)
    roster = root / "roster.csv"
    roster.write_text('student_id,first_name,last_name,email\nalice,"Alice ""Al""","Smith, Jr.",a@x.edu\n'
                      "dave,Dave,Doe,d@x.edu\n")
    code = grade_all(class_dir, "--jobs", 2, "--gradebook", gradebook, "--csv", root / "grades.csv",
                     "--feedback-dir", root / "feedback", "--summary-dir", root / "summary", "--written", "Q1:5",
                     "--roster", roster)
    return root, code


def test_class_grades(graded_class):
    root, code = graded_class
    assert code == 0
    table = read_csv(root / "grades.csv")
    assert list(table) == ["alice", "bob", "carol", "dave", "mallory"]
    assert float(table["alice"]["score"]) == pytest.approx(FULL_SCORE)
    assert float(table["bob"]["score"]) == PARTIAL_SCORE
    assert float(table["carol"]["score"]) == STARTER_SCORE
    assert float(table["mallory"]["score"]) == 0.0
    assert table["dave"]["status"] == "missing"
    assert (table["alice"]["first_name"], table["alice"]["last_name"]) == ('Alice "Al"', "Smith, Jr.")
    assert table["alice"]["max_score"] == "16"  # 11 auto points + the written Q1's 5
    assert table["alice"]["written.Q1"] == ""  # not entered yet


def test_the_attacker_reached_nobody(graded_class):
    root, _ = graded_class
    assert (root / "submissions" / "alice" / "toy.py").read_text() == SOLUTION
    assert not (root / "submissions" / "mallory" / "results.json").exists()
    table = read_csv(root / "grades.csv")
    assert all(row["status"] in ("graded", "missing") for row in table.values())  # the gradebook still reads fine


def test_one_job_gives_the_same_grades_without_the_attacker(graded_class, tmp_path, gradebook_file):
    root, _ = graded_class
    gradebook = gradebook_file
    class_dir = make_class(tmp_path / "submissions", gradebook, members=("alice", "carol"))
    assert grade_all(class_dir, "--jobs", 1, "--gradebook", gradebook, "--csv", tmp_path / "grades.csv") == 0
    alone = scores(read_csv(tmp_path / "grades.csv"))
    together = scores(read_csv(root / "grades.csv"))
    assert alone == {student: together[student] for student in ("alice", "carol")}


def test_feedback_and_summary_files(graded_class):
    root, _ = graded_class
    feedback = (root / "feedback" / "alice.md").read_text()
    assert "Score: 8.2 / 9 + 2 extra credit" in feedback  # hidden, after-due-date tests withheld
    assert "test_describe" not in feedback
    assert (root / "feedback" / "bob.html").read_text().startswith("<!DOCTYPE html>")
    assert not (root / "feedback" / "dave.md").exists()
    summary = (root / "summary" / "summary.md").read_text()
    assert "| graded | 4 |" in summary and "| no submission | 1 |" in summary
    assert "| test_add: add() sums two numbers | 2 | 2/4 | 50% | 1 |" in summary
    for chart in ("score_histogram.png", "test_pass_rates.png", "grading_times.png"):
        assert (root / "summary" / chart).stat().st_size > 1000


def test_rerun_skips_unchanged_keeps_manual_scores_and_regrades_changes(graded_class, capsys):
    root, _ = graded_class
    gradebook, class_dir, csv_path = root / "grades.db", root / "submissions", root / "rerun.csv"
    manual = root / "manual.csv"
    manual.write_text("student_id,Q1\nalice,4.5\nbob,\n")
    capsys.readouterr()

    assert grade_all(class_dir, "--gradebook", gradebook, "--manual-scores", manual, "--csv", csv_path) == 0
    assert "4 submissions, 0 to grade, 4 unchanged" in capsys.readouterr().err
    table = read_csv(csv_path)
    assert float(table["alice"]["score"]) == pytest.approx(FULL_SCORE + 4.5)

    (class_dir / "carol" / "toy.py").write_text(PARTIAL)
    assert grade_all(class_dir, "--gradebook", gradebook, "--csv", csv_path) == 0
    assert "4 submissions, 1 to grade, 3 unchanged" in capsys.readouterr().err
    table = read_csv(csv_path)
    assert float(table["carol"]["score"]) == PARTIAL_SCORE
    assert table["alice"]["written.Q1"] == "4.5"

    assert grade_all(class_dir, "--gradebook", gradebook, "--csv", csv_path, "--force", "--only", "alice") == 0
    assert "1 submissions, 1 to grade, 0 unchanged" in capsys.readouterr().err
    table = read_csv(csv_path)
    assert table["alice"]["written.Q1"] == "4.5"
    assert float(table["alice"]["score"]) == pytest.approx(FULL_SCORE + 4.5)

    # Another profile is another grade. --gpus: the job gets its GPU (the toy graders never touch CUDA).
    assert grade_all(class_dir, "--gradebook", gradebook, "--only", "alice", "--gpus", "3") == 0
    assert "1 submissions, 1 to grade, 0 unchanged" in capsys.readouterr().err
    with ClassGradebook(gradebook) as book:
        alice = {row.student_id: row for row in book.rows("toy")}["alice"]
    assert (alice.device, alice.profile) == ("cuda:3", "gpu")
    assert (alice.results["extra_data"]["device"], alice.results["extra_data"]["profile"]) == ("cuda:3", "gpu")


def test_a_grading_that_overruns_is_an_error_row(tmp_path, capsys, gradebook_file):
    class_dir = make_class(tmp_path / "submissions", tmp_path / "grades.db", members=("alice",))
    code = grade_all(class_dir, "--gradebook", tmp_path / "grades.db", "--csv", tmp_path / "grades.csv",
                     "--submission-timeout", 0.5)
    assert code == 1
    assert "alice: could not be graded: grading took longer than 0.5 s" in capsys.readouterr().err
    row = read_csv(tmp_path / "grades.csv")["alice"]
    assert (row["status"], row["score"]) == ("error", "0")
    assert "took longer than 0.5 s" in row["error"]


def test_slurm_executor_path_with_submitit_local(tmp_path, gradebook_file):
    class_dir = make_class(tmp_path / "submissions", tmp_path / "grades.db", members=("alice", "bob"))
    code = grade_all(class_dir, "--executor", "slurm", "--slurm-cluster", "local", "--slurm-folder",
                     tmp_path / "slurm", "--gradebook", tmp_path / "grades.db", "--csv", tmp_path / "grades.csv")
    assert code == 0
    table = read_csv(tmp_path / "grades.csv")
    assert float(table["alice"]["score"]) == pytest.approx(FULL_SCORE)
    assert float(table["bob"]["score"]) == PARTIAL_SCORE
    assert list((tmp_path / "slurm").glob("*_log.out"))  # submitit's per-task logs


def test_bad_input_is_refused_before_grading(tmp_path, capsys, gradebook_file):
    (tmp_path / "subs" / "bad name").mkdir(parents=True)
    assert grade_all(tmp_path / "subs", "--gradebook", tmp_path / "g.db") == 2
    assert "'bad name' must start with a letter or digit" in capsys.readouterr().err
    assert not (tmp_path / "g.db").exists()
    assert grade_all(tmp_path / "missing", "--gradebook", tmp_path / "g.db") == 2
    assert "does not exist" in capsys.readouterr().err

    class_dir = make_class(tmp_path / "class", gradebook_file, members=("alice",))
    (tmp_path / "manual.csv").write_text("student_id,Q9\nalice,3\n")
    assert grade_all(class_dir, "--gradebook", gradebook_file, "--manual-scores", tmp_path / "manual.csv") == 2
    assert "alice: toy has no written question 'Q9'" in capsys.readouterr().err
    with ClassGradebook(gradebook_file) as book:
        assert [row.status for row in book.rows("toy")] == []  # nobody was graded


def test_ctrl_c_keeps_finished_grades_and_stops_every_job(tmp_path, gradebook_file):
    import signal
    import sqlite3
    import subprocess
    import sys
    import time
    import uuid

    class_dir = make_class(tmp_path / "submissions", tmp_path / "grades.db", members=("alice",))
    for slow in ("bob", "carol"):  # still being graded when Ctrl-C comes (every probe call times out)
        (class_dir / slow).mkdir()
        (class_dir / slow / "toy.py").write_text("import time\ntime.sleep(600)\n")
    marker = f"grade-all-test-{uuid.uuid4()}"
    command = [sys.executable, "-m", "autograder", "grade-all", str(GRADERS), str(class_dir), "--gradebook",
               str(tmp_path / "grades.db"), "--no-progress"]
    # Ctrl-C in a terminal: SIGINT at its default disposition. A shell that starts this suite in the background
    # (`cmd &` without job control) hands every child an *ignored* SIGINT, which Python then keeps ignoring.
    process = subprocess.Popen(command, env={**os.environ, "CTRL_C_TEST_MARKER": marker}, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def recorded():
        try:
            with sqlite3.connect(tmp_path / "grades.db") as db:
                return db.execute("SELECT student_id, status FROM autograder_submission").fetchall()
        except sqlite3.Error:
            return []

    deadline = time.monotonic() + 180
    while not recorded() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, "grade-all ended before the test could interrupt it"
    time.sleep(1)  # bob's grading is under way
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "interrupted; every submission finished so far is saved" in stderr
    assert recorded() == [("alice", "graded")]
    leftovers = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                leftovers.append(environ.parent.name)
        except OSError:
            pass
    assert not leftovers, f"processes of the interrupted run still alive: {leftovers}"
    with ClassGradebook(tmp_path / "grades.db") as book:  # complete rows only: scores and results of each
        rows = {row.student_id: row for row in book.rows("toy")}
    assert list(rows) == ["alice"]
    assert rows["alice"].score == pytest.approx(FULL_SCORE) == rows["alice"].results["score"]

