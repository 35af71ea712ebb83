"""The class gradebook: nbgrader's `Gradebook` on SQLite, plus one table of our own beside it.

nbgrader's model is notebook-shaped, so a homework maps onto it as

    Assignment "hw1"  ->  one Notebook "hw1"  ->  one GradeCell per grader test (cell_type "code", auto scores)
                                              ->  one GradeCell per written question (cell_type "markdown", manual)

and every graded student gets a SubmittedAssignment / SubmittedNotebook / Grade rows, so nbgrader's own score
queries (`SubmittedAssignment.score`, `Student.score`, formgrader) see the same totals we export. A test's points
above its max (extra credit) go to `Grade.extra_credit`, which nbgrader adds to the score.

nbgrader has nowhere to keep what re-grading needs (the submission's content hash, which grader version and profile
produced the grade, how long it took, why a run failed, the full results.json), so the table `autograder_submission`
lives in the same database and is written in the same transaction as the grades: a submission is either fully
recorded or not at all, whatever interrupts the run. Where a submission came from (a Gradescope export, a Canvas
download) and whether it was late is kept in `autograder_intake`; its time goes to nbgrader's
`SubmittedAssignment.timestamp`, the due date to `Assignment.duedate` and a late policy's deduction (points) to
`SubmittedNotebook.late_submission_penalty`, where nbgrader's own tools look for them.

nbgrader imports Jupyter, tornado and SQLAlchemy (about a second), so only this module imports it, and lazily.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# nbgrader's name columns are String(128); longer test names are shortened with a hash suffix to stay unique.
_MAX_CELL_NAME = 128
AUTO_CELL_TYPE = "code"
WRITTEN_CELL_TYPE = "markdown"


class GradebookError(Exception):
    """A gradebook operation was asked for something the gradebook does not hold (named in the message)."""


@dataclass(frozen=True)
class GradingKey:
    """What a stored grade depends on: same key, same grade, so re-running may skip the submission."""

    content_hash: str
    grader_fingerprint: str
    profile: str


@dataclass
class StudentRow:
    """One student's line for one assignment, as the CSV export and the class summary read it."""

    student_id: str
    first_name: str
    last_name: str
    email: str
    status: str  # "graded", "error" (the grading itself failed; auto score 0) or "missing" (nothing submitted)
    error: str
    auto_score: float
    written_score: float
    score: float
    max_score: float
    test_scores: dict[str, float] = field(default_factory=dict)  # cell name -> points (auto cells)
    written_scores: dict[str, float | None] = field(default_factory=dict)  # question -> points, None = not entered
    results: dict[str, Any] | None = None  # the stored results.json
    seconds: float | None = None
    graded_at: str = ""
    content_hash: str = ""
    profile: str = ""
    device: str = ""
    auto_max: float = 0.0  # the autograded part's points (extra-credit tests count 0)
    written_max: float = 0.0
    extra_credit: float = 0.0  # part of auto_score above the tests' max scores
    source: str = ""  # folders, gradescope or canvas
    submitted_at: str = ""  # ISO 8601, UTC; empty where the source gave no time
    late: bool = False
    late_penalty: float = 0.0  # points taken off `score` by the late policy


@contextlib.contextmanager
def _alembic_on_path():
    """nbgrader stamps a new database by running the `alembic` executable found on PATH; when the kit's virtualenv
    is used without being activated (`.venv/bin/python -m autograder ...`) that script is not on PATH, so put this
    interpreter's scripts directory there while the gradebook is opened."""
    scripts = sysconfig.get_path("scripts")
    if shutil.which("alembic") or not scripts:
        yield
        return
    saved = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join(filter(None, [scripts, saved]))
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PATH"]
        else:
            os.environ["PATH"] = saved


def _utc_naive(moment: dt.datetime | None) -> dt.datetime | None:
    """nbgrader keeps times as naive UTC."""
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None) if moment is not None else None


def cell_name(test_name: str) -> str:
    """The nbgrader cell name for a grader test: the test's name, shortened (uniquely) to nbgrader's column size."""
    if len(test_name) <= _MAX_CELL_NAME:
        return test_name
    digest = hashlib.sha256(test_name.encode()).hexdigest()[:12]
    return f"{test_name[: _MAX_CELL_NAME - 13]}~{digest}"


def named_tests(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(cell name, test entry) for each test of a results.json, in order; repeated names get ` (2)`, ` (3)`, ..."""
    named, seen = [], {}
    for test in results.get("tests", []):
        if not isinstance(test, dict):
            continue
        base = str(test.get("name") or "unnamed test")
        seen[base] = seen.get(base, 0) + 1
        named.append((cell_name(base if seen[base] == 1 else f"{base} ({seen[base]})"), test))
    return named


def scored_cells(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(cell name, score, max score) for each test of a results.json, in order."""
    return [(name, number(test.get("score")), number(test.get("max_score"))) for name, test in named_tests(results)]


def number(value: Any) -> float:
    """A score from a results file; anything that is not a finite number counts as 0 (fail closed)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


class ClassGradebook:
    """An nbgrader gradebook file (`sqlite:///PATH`) used for one or more homeworks. Use as a context manager."""

    def __init__(self, path: str | Path):
        from nbgrader import api  # lazy: see the module docstring
        from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._api = api
        with _alembic_on_path():
            self._nb = api.Gradebook(f"sqlite:///{self.path}")
        self._session = self._nb.db
        metadata = MetaData()
        self._runs = Table(
            "autograder_submission",
            metadata,
            Column("assignment", String(128), primary_key=True),
            Column("student_id", String(128), primary_key=True),
            Column("status", String(16), nullable=False),
            Column("error", Text, nullable=False, default=""),
            Column("content_hash", String(64), nullable=False),
            Column("grader_fingerprint", String(64), nullable=False),
            Column("profile", String(32), nullable=False),
            Column("device", String(32), nullable=False),
            Column("seconds", Float),
            Column("graded_at", String(32), nullable=False),
            Column("results_json", Text),
        )
        self._intake = Table(
            "autograder_intake",
            metadata,
            Column("assignment", String(128), primary_key=True),
            Column("student_id", String(128), primary_key=True),
            Column("source", String(16), nullable=False),
            Column("reference", Text, nullable=False, default=""),
            Column("submitted_at", String(40), nullable=False, default=""),
            Column("late", Integer, nullable=False, default=0),
        )
        metadata.create_all(self._nb.engine)

    def __enter__(self) -> ClassGradebook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._nb.close()

    # -- structure -------------------------------------------------------------------------------------------------

    def ensure_assignment(self, assignment: str, written: dict[str, float] | None = None,
                          duedate: dt.datetime | None = None) -> None:
        """Create the assignment (with its one notebook) if new, and its written-question cells with their max points.

        Changing a question's max points updates it; questions are never removed here (their manual scores stay).
        `duedate` (timezone-aware) becomes nbgrader's due date of the assignment.
        """
        api = self._api
        self._nb.update_or_create_assignment(assignment, **({"duedate": _utc_naive(duedate)} if duedate else {}))
        self._nb.update_or_create_notebook(assignment, assignment)
        notebook = self._notebook(assignment)
        try:
            for question, max_score in (written or {}).items():
                cell = self._cell(notebook, question)
                if cell is None:
                    cell = api.GradeCell(name=question, notebook=notebook, max_score=max_score,
                                         cell_type=WRITTEN_CELL_TYPE)
                    self._session.add(cell)
                    self._session.flush()
                    for submitted in self._submitted_notebooks(notebook):
                        self._session.add(api.Grade(cell_id=cell.id, notebook=submitted, needs_manual_grade=True))
                elif cell.cell_type != WRITTEN_CELL_TYPE:
                    raise GradebookError(
                        f"{assignment}: written question {question!r} has the name of a grader test; rename it")
                else:
                    cell.max_score = max_score
            self._session.commit()
        except BaseException:
            self._session.rollback()
            raise

    def written_questions(self, assignment: str) -> dict[str, float]:
        notebook = self._notebook(assignment, must_exist=False)
        if notebook is None:
            return {}
        return {cell.name: cell.max_score for cell in self._cells(notebook) if cell.cell_type == WRITTEN_CELL_TYPE}

    def update_students(self, roster: dict[str, dict[str, str]]) -> None:
        """Add or update students: {student_id: {"first_name": ..., "last_name": ..., "email": ...}}."""
        try:
            for student_id, details in roster.items():
                self._student(student_id, details)
            self._session.commit()
        except BaseException:
            self._session.rollback()
            raise

    # -- grades ----------------------------------------------------------------------------------------------------

    def grading_key(self, assignment: str, student_id: str) -> GradingKey | None:
        """The key of the student's stored grade, or None when there is none or the last grading failed."""
        row = self._run_row(assignment, student_id)
        if row is None or row.status != "graded":
            return None
        return GradingKey(row.content_hash, row.grader_fingerprint, row.profile)

    def record(self, assignment: str, student_id: str, key: GradingKey, *, results: dict[str, Any] | None,
               error: str = "", seconds: float | None = None, device: str = "cpu") -> None:
        """Store one grading outcome in one transaction: the auto scores of `results` (all 0 when None). A non-empty
        `error` (the grading failed, or the grader reported a problem of its own) makes it an error row, retried by
        the next grade-all. Written-question scores are left as they are.
        """
        if results is None and not error:
            raise ValueError("record() needs results or an error")
        from sqlalchemy.dialects.sqlite import insert

        api = self._api
        try:
            notebook = self._notebook(assignment)
            student = self._student(student_id)
            submitted = self._submitted_notebook(notebook, student)
            reported = {}
            for name, score, max_score in scored_cells(results or {}):
                cell = self._cell(notebook, name)
                if cell is None:
                    cell = self._add_auto_cell(notebook, name, max_score)
                elif cell.cell_type != AUTO_CELL_TYPE:
                    raise GradebookError(f"{assignment}: grader test {name!r} has the name of a written question")
                elif cell.max_score != max_score:
                    cell.max_score = max_score
                reported[name] = score
            grades = {grade.cell_id: grade for grade in submitted.grades}
            for cell in self._cells(notebook):
                if cell.cell_type != AUTO_CELL_TYPE:
                    continue
                grade = grades.get(cell.id) or api.Grade(cell_id=cell.id, notebook=submitted)
                self._session.add(grade)
                # Fail closed: a test the run did not report (or an errored run) scores 0.
                score = max(0.0, reported.get(cell.name, 0.0))
                grade.auto_score = min(score, cell.max_score)
                grade.extra_credit = score - grade.auto_score or None
                grade.needs_manual_grade = False
            values = dict(
                status="error" if error else "graded",
                error=error,
                content_hash=key.content_hash,
                grader_fingerprint=key.grader_fingerprint,
                profile=key.profile,
                device=device,
                seconds=seconds,
                graded_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                results_json=json.dumps(results) if results is not None else None,
            )
            statement = insert(self._runs).values(assignment=assignment, student_id=student_id, **values)
            self._session.execute(statement.on_conflict_do_update(index_elements=["assignment", "student_id"],
                                                                  set_=values))
            self._session.commit()
        except BaseException:
            self._session.rollback()
            raise

    def record_intake(self, assignment: str, submissions: list[Any]) -> None:
        """Where each student's submission came from, when it was made and whether it was late (intake.Submission
        objects), in one transaction; the time also becomes nbgrader's timestamp of the student's submission."""
        from sqlalchemy.dialects.sqlite import insert

        notebook = self._notebook(assignment)
        submitted_by_student = {nb.assignment.student_id: nb for nb in self._submitted_notebooks(notebook)}
        try:
            for submission in submissions:
                values = dict(source=submission.source, reference=submission.reference, late=int(submission.late),
                              submitted_at=_utc_naive(submission.submitted_at).isoformat() + "Z"
                              if submission.submitted_at else "")
                statement = insert(self._intake).values(assignment=assignment, student_id=submission.student_id,
                                                        **values)
                self._session.execute(statement.on_conflict_do_update(
                    index_elements=["assignment", "student_id"], set_=values))
                submitted = submitted_by_student.get(submission.student_id)
                if submitted is not None:
                    submitted.assignment.timestamp = _utc_naive(submission.submitted_at)
            self._session.commit()
        except BaseException:
            self._session.rollback()
            raise

    def apply_late_policy(self, assignment: str, policy: Any) -> None:
        """Store each submission's late deduction (points: the policy's fraction of its total) in nbgrader's
        `late_submission_penalty`; 0 without a policy, on time, or where the submission time is unknown."""
        notebook = self._notebook(assignment)
        try:
            for submitted in self._submitted_notebooks(notebook):
                timestamp = submitted.assignment.timestamp
                fraction = 0.0
                if policy is not None and timestamp is not None:
                    fraction = policy.penalty_fraction(timestamp.replace(tzinfo=dt.timezone.utc))
                total = sum(float(grade.score) for grade in submitted.grades)
                submitted.late_submission_penalty = round(fraction * total, 6)
            self._session.commit()
        except BaseException:
            self._session.rollback()
            raise

    def set_manual_score(self, assignment: str, student_id: str, question: str, score: float | None) -> None:
        """Enter (or with None, clear) a written question's score; 0 <= score <= the question's max points."""
        self.set_manual_scores(assignment, {(student_id, question): score})

    def check_manual_score(self, assignment: str, question: str, score: float | None, where: str = "") -> None:
        """Raise GradebookError unless `question` is a written question of `assignment` and `score` fits it."""
        cell = self._cell(self._notebook(assignment), question)
        if cell is None or cell.cell_type != WRITTEN_CELL_TYPE:
            known = ", ".join(sorted(self.written_questions(assignment))) or "none"
            raise GradebookError(f"{where}{assignment} has no written question {question!r} (written questions: "
                                 f"{known}; declare them with --written)")
        if score is not None and not 0 <= score <= cell.max_score:
            raise GradebookError(f"{where}{assignment}/{question}: score {score:g} is outside 0..{cell.max_score:g}")

    def set_manual_scores(self, assignment: str, scores: dict[tuple[str, str], float | None]) -> None:
        """Enter many written scores, {(student_id, question): score}, all or none (one transaction)."""
        notebook = self._notebook(assignment)
        submitted_by_student = {nb.assignment.student_id: nb for nb in self._submitted_notebooks(notebook)}
        try:
            for (student_id, question), score in scores.items():
                self.check_manual_score(assignment, question, score, where=f"{student_id}: ")
                submitted = submitted_by_student.get(student_id)
                if submitted is None:
                    raise GradebookError(f"{student_id} has no graded submission of {assignment}; grade it before "
                                         "entering written scores")
                cell = self._cell(notebook, question)
                grade = next((g for g in submitted.grades if g.cell_id == cell.id), None)
                if grade is None:
                    grade = self._api.Grade(cell_id=cell.id, notebook=submitted)
                    self._session.add(grade)
                grade.manual_score = score
                grade.needs_manual_grade = score is None
            self._session.commit()
        except BaseException:
            self._session.rollback()
            raise

    # -- reading ---------------------------------------------------------------------------------------------------

    def rows(self, assignment: str) -> list[StudentRow]:
        """Every student in the gradebook, sorted by id, with this assignment's scores ("missing" if not submitted)."""
        notebook = self._notebook(assignment)
        cells = self._cells(notebook)
        max_score = sum(cell.max_score for cell in cells)
        runs = {row.student_id: row for row in self._session.execute(
            self._runs.select().where(self._runs.c.assignment == assignment))}
        intake = {row.student_id: row for row in self._session.execute(
            self._intake.select().where(self._intake.c.assignment == assignment))}
        auto_max = sum(cell.max_score for cell in cells if cell.cell_type != WRITTEN_CELL_TYPE)
        submitted_by_student = {nb.assignment.student_id: nb for nb in self._submitted_notebooks(notebook)}
        rows = []
        for student in sorted(self._nb.students, key=lambda s: s.id):
            row = StudentRow(student_id=student.id, first_name=student.first_name or "",
                             last_name=student.last_name or "", email=student.email or "", status="missing",
                             error="", auto_score=0.0, written_score=0.0, score=0.0, max_score=max_score,
                             auto_max=auto_max, written_max=max_score - auto_max)
            submitted = submitted_by_student.get(student.id)
            if submitted is not None:
                by_cell = {grade.cell_id: grade for grade in submitted.grades}
                for cell in cells:
                    grade = by_cell.get(cell.id)
                    if cell.cell_type == WRITTEN_CELL_TYPE:
                        points = None if grade is None else grade.manual_score
                        row.written_scores[cell.name] = points
                        row.written_score += points or 0.0
                    else:
                        points = 0.0 if grade is None else float(grade.score)
                        row.test_scores[cell.name] = points
                        row.auto_score += points
                        row.extra_credit += 0.0 if grade is None else float(grade.extra_credit or 0.0)
                row.late_penalty = float(submitted.late_submission_penalty or 0.0)
                row.score = row.auto_score + row.written_score - row.late_penalty
                row.status = "graded"
            run = runs.get(student.id)
            if run is not None:
                row.status = run.status
                row.error = run.error
                row.results = json.loads(run.results_json) if run.results_json else None
                row.seconds = run.seconds
                row.graded_at = run.graded_at
                row.content_hash = run.content_hash
                row.profile = run.profile
                row.device = run.device
            came = intake.get(student.id)
            if came is not None:
                row.source, row.submitted_at, row.late = came.source, came.submitted_at, bool(came.late)
            rows.append(row)
        return rows

    def test_names(self, assignment: str) -> list[str]:
        """Auto cell names in the order the graders report them (first appearance in stored results), then the rest."""
        notebook = self._notebook(assignment)
        known = {cell.name for cell in self._cells(notebook) if cell.cell_type == AUTO_CELL_TYPE}
        ordered: list[str] = []
        for (results_json,) in self._session.execute(
                self._runs.select().with_only_columns(self._runs.c.results_json)
                .where(self._runs.c.assignment == assignment).order_by(self._runs.c.student_id)):
            for name, _, _ in scored_cells(json.loads(results_json) if results_json else {}):
                if name in known and name not in ordered:
                    ordered.append(name)
        return ordered + sorted(known - set(ordered))

    # -- nbgrader rows ---------------------------------------------------------------------------------------------

    def _notebook(self, assignment: str, must_exist: bool = True):
        try:
            return self._nb.find_notebook(assignment, assignment)
        except self._api.MissingEntry:
            if must_exist:
                raise GradebookError(f"the gradebook {self.path} has no assignment {assignment!r}") from None
            return None

    def _cells(self, notebook) -> list:
        return list(notebook.grade_cells)

    def _cell(self, notebook, name: str):
        return next((cell for cell in notebook.grade_cells if cell.name == name), None)

    def _submitted_notebooks(self, notebook) -> list:
        return list(notebook.submissions)

    def _add_auto_cell(self, notebook, name: str, max_score: float):
        api = self._api
        cell = api.GradeCell(name=name, notebook=notebook, max_score=max_score, cell_type=AUTO_CELL_TYPE)
        self._session.add(cell)
        self._session.flush()
        # Students graded before this test existed score 0 on it until they are re-graded (fail closed).
        for submitted in self._submitted_notebooks(notebook):
            self._session.add(api.Grade(cell_id=cell.id, notebook=submitted, auto_score=0.0,
                                        needs_manual_grade=False))
        return cell

    def _student(self, student_id: str, details: dict[str, str] | None = None):
        student = self._session.get(self._api.Student, student_id)
        if student is None:
            student = self._api.Student(id=student_id)
            self._session.add(student)
        for attribute, value in (details or {}).items():
            if attribute not in ("first_name", "last_name", "email"):
                raise GradebookError(f"unknown student attribute {attribute!r} for {student_id!r}")
            setattr(student, attribute, value)
        return student

    def _run_row(self, assignment: str, student_id: str):
        return self._session.execute(self._runs.select().where(
            (self._runs.c.assignment == assignment) & (self._runs.c.student_id == student_id))).first()

    def _submitted_notebook(self, notebook, student):
        """The student's SubmittedNotebook for this notebook, created (with nbgrader's structure) if new."""
        api = self._api
        for submitted in notebook.submissions:
            if submitted.assignment.student_id == student.id:
                return submitted
        cells = self._cells(notebook)
        with self._session.no_autoflush:
            submission = api.SubmittedAssignment(assignment=notebook.assignment, student=student)
            submitted = api.SubmittedNotebook(notebook=notebook, assignment=submission)
            self._session.add_all([submission, submitted])
            for cell in cells:
                written = cell.cell_type == WRITTEN_CELL_TYPE
                self._session.add(api.Grade(cell_id=cell.id, notebook=submitted, needs_manual_grade=written,
                                            auto_score=None if written else 0.0))
        self._session.flush()
        return submitted
