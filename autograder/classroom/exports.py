"""Grade exports of grade-all: the detailed CSV, a Canvas gradebook import and a Gradescope score upload.

All are written with Python's csv module (RFC 4180 quoting), atomically (a temporary file renamed into place).

- Detailed (`--csv`): one line per student, every score; test columns are short ids derived from the grader's
  pytest node ids (`test_hw1_data.py::test_sample_shapes` -> `hw1.data.sample_shapes`), stable across runs.
- Canvas (`--canvas-csv`): the columns of Canvas's gradebook import, `Student, ID, SIS User ID, SIS Login ID,
  Section`, then one assignment column, after the `Points Possible` row.
- Gradescope (`--gradescope-csv`): `Name, SID, Email, Score`, to upload as the scores of an assignment.

Text a student could have chosen (a name, an email, a Canvas login, an error quoting their code) is written so
a spreadsheet shows it as text, never runs it as a formula (OWASP's CSV injection advice): a cell starting with
`= + - @`, a tab or a carriage return gets a leading `'`. Student ids (letters and digits first) and numbers are
written as they are, so Canvas and Gradescope still match students and read scores.

Students without a grade to send (no submission, or a grading that failed) get an empty score in the Canvas and
Gradescope files, so an upload never enters a 0 that the next run would change.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Iterable

from autograder.classroom.gradebook import named_tests
from autograder.engine.results import total_text

CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "Points Possible"
GRADESCOPE_HEADER = ["Name", "SID", "Email", "Score"]
DETAILED_HEADER = ["student_id", "first_name", "last_name", "email", "assignment", "status", "score", "max_score",
                   "auto_score", "auto_max", "extra_credit", "written_score", "written_max", "late_penalty", "late",
                   "submitted_at", "source", "score_text"]
DETAILED_TRAILER = ["grading_seconds", "graded_at", "content_sha256", "error"]
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: object) -> str:
    """Free text from a student (names, emails, messages) as a CSV cell no spreadsheet evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def fmt(value: float | None) -> str:
    """A score as a CSV cell: empty for None, at most 6 significant digits."""
    return "" if value is None else f"{value:.6g}"


def score_text(row: Any) -> str:
    """`autograded 80 / 80 + 10 extra credit; written: not graded yet / 20; late: -8 (2 days)`: the parts of a total.

    The autograded part is worded by `engine.results.total_text`, as in the feedback and results.json.
    """
    if row.status == "missing":
        return "no submission"
    parts = ["autograded " + total_text(row.auto_score - row.extra_credit, row.auto_max, row.extra_credit)]
    if row.written_max:
        entered = [points for points in row.written_scores.values() if points is not None]
        if not entered:
            parts.append(f"written: not graded yet / {fmt(row.written_max)}")
        else:
            pending = "" if len(entered) == len(row.written_scores) else " (some questions not graded yet)"
            parts.append(f"written: {fmt(row.written_score)} / {fmt(row.written_max)}{pending}")
    if row.late_penalty:
        parts.append(f"late: -{fmt(row.late_penalty)}")
    elif row.late:
        parts.append("late" + ("" if row.submitted_at else " (no submission time: no deduction)"))
    if row.status == "error":
        parts.append("grading failed: " + row.error.splitlines()[0] if row.error else "grading failed")
    return "; ".join(parts)


def short_test_id(assignment: str, node_id: str) -> str:
    """`test_hw1_data.py::test_sample_shapes[2-3]` -> `hw1.data.sample_shapes.2-3`: the module without `test_` and
    the assignment's prefix, classes, the function without `test_`, its parameters; only letters, digits, `_ . -`."""
    path, *names = node_id.split("::")
    module = Path(path).stem.removeprefix("test_")
    module = "" if module == assignment else module.removeprefix(f"{assignment}_")
    parts = [assignment] + ([module] if module else [])
    for index, name in enumerate(names):
        base, bracket, params = name.partition("[")
        parts.append(base.removeprefix("test_") if index == len(names) - 1 else base)
        if bracket:
            parts.append(_UNSAFE_ID.sub("-", params.rstrip("]")).strip("-") or "param")
    return ".".join(_UNSAFE_ID.sub("_", part) for part in parts if part)


def short_test_ids(assignment: str, rows: Iterable[Any], test_names: list[str]) -> dict[str, str]:
    """Gradebook cell name -> short test id, from the node ids in the stored results; a name without one (results
    from before node ids were recorded) gets one from its name. Repeats get `~2`, `~3` in `test_names` order."""
    node_ids: dict[str, str] = {}
    for row in rows:
        for name, test in named_tests(row.results or {}):
            node_id = ((test.get("extra_data") or {}).get("id"))
            if isinstance(node_id, str) and node_id:
                node_ids.setdefault(name, node_id)
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in test_names:
        short = short_test_id(assignment, node_ids[name]) if name in node_ids else \
            f"{assignment}.{_UNSAFE_ID.sub('_', name.split(':')[0]).strip('_')}"
        unique, count = short, 1
        while unique in taken:
            count += 1
            unique = f"{short}~{count}"
        taken.add(unique)
        ids[name] = unique
    return ids


def write_detailed_csv(path: Path, assignment: str, rows: list, test_names: list[str],
                       written: dict[str, float]) -> None:
    """One line per student: identity, status, totals and their parts, each test's and written question's points,
    submission time, timing, error. Written questions are columns `written.<question>`."""
    ids = short_test_ids(assignment, rows, test_names)
    header = DETAILED_HEADER + [ids[name] for name in test_names] + [f"written.{name}" for name in written]
    header += DETAILED_TRAILER
    lines = []
    for row in rows:
        lines.append(
            [row.student_id, text_cell(row.first_name), text_cell(row.last_name), text_cell(row.email), assignment,
             row.status, fmt(row.score),
             fmt(row.max_score), fmt(row.auto_score), fmt(row.auto_max), fmt(row.extra_credit),
             fmt(row.written_score), fmt(row.written_max), fmt(row.late_penalty), "yes" if row.late else "",
             row.submitted_at, row.source, text_cell(score_text(row))]
            + [fmt(row.test_scores.get(name)) for name in test_names]
            + [fmt(row.written_scores.get(name)) for name in written]
            + [fmt(row.seconds), row.graded_at, row.content_hash, text_cell(row.error)])
    _write(path, header, lines)


def _sendable(row: Any) -> str:
    return fmt(row.score) if row.status == "graded" else ""


def write_canvas_csv(path: Path, column: str, rows: list) -> None:
    """Canvas's gradebook import: students matched by Canvas user id (`ID`, for students from a Canvas download) or
    by `SIS User ID` (the student id, for every other student). `column` is the assignment's column, best the
    header Canvas's own export gives it (`hw1 (123456)`), which updates that assignment instead of creating one."""
    max_score = max((row.max_score for row in rows), default=0.0)
    lines = [["", "", "", "", ""] + [fmt(max_score)]]
    lines[0][0] = CANVAS_POINTS_ROW
    for row in rows:
        name = ", ".join(part for part in (row.last_name, row.first_name) if part)
        canvas = row.source == "canvas"
        lines.append([text_cell(name), row.student_id if canvas else "", "" if canvas else row.student_id, "", "",
                      _sendable(row)])
    _write(path, CANVAS_HEADER + [column], lines)


def write_gradescope_csv(path: Path, rows: list) -> None:
    """Scores to upload to a Gradescope assignment, matched by SID or email."""
    lines = [[text_cell(" ".join(part for part in (row.first_name, row.last_name) if part)), row.student_id,
              text_cell(row.email), _sendable(row)] for row in rows]
    _write(path, GRADESCOPE_HEADER, lines)


def _write(path: Path, header: list[str], lines: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(lines)
    tmp.replace(path)
