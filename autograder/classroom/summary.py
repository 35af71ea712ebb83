"""The class summary page of one assignment: summary.md and summary.html with matplotlib charts beside them.

Sections: overview (counts and score statistics), score histogram, per-test pass rates (chart and table), the tests
that fail most with their most common failure messages, the submissions whose code could not be imported and the
calls that timed out (student by student), grading time per submission, and submissions whose grading failed. Built
from the gradebook's rows (`ClassGradebook.rows`), so it always matches the gradebook and the CSV.

Failure messages are counted by pattern: each message's first line with its numbers (values, shapes, line numbers,
addresses) replaced by `#`, so "got 0.31, expected 0.93" and "got 0.12, expected 0.93" count as one message.
"""

from __future__ import annotations

import collections
import html
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from autograder.classroom.gradebook import StudentRow, named_tests, number
from autograder.classroom.similarity import PAGE as SIMILARITY_PAGE

HISTOGRAM = "score_histogram.png"
PASS_RATES = "test_pass_rates.png"
TIMES = "grading_times.png"
MOST_FAILED_SHOWN = 10
MESSAGES_SHOWN = 3  # per failing test
_MESSAGE_CHARS = 120
# A number in a message, the per-student detail: hex addresses, then integers, decimals, exponents (not the digits
# inside a name such as conv0 or hw1).
_NUMBER = re.compile(r"\b0x[0-9a-fA-F]+\b|(?<![\w.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w])")
# The harness's words for a call stopped on its wall-clock or CPU-time limit (engine/harness/runner.py).
_TIMEOUT = re.compile(r"\btimed out after \S+ s\b|worth of its \S+ s timeout|took longer than \S+ s")
# The student's module failed while being imported: a compile error, a failed import, or code at its top level.
_IMPORT_ERRORS = re.compile(r"\braised (SyntaxError|IndentationError|TabError|ImportError|ModuleNotFoundError)\b")
_MODULE_FRAME = re.compile(r'^\s*File "[^"]*", line \d+, in <module>$', re.MULTILINE)


@dataclass
class PassStats:
    name: str
    max_score: float
    attempted: int = 0
    passed: int = 0
    points: float = 0.0
    messages: collections.Counter = field(default_factory=collections.Counter)  # failure's first line -> count

    @property
    def failed(self) -> int:
        return self.attempted - self.passed

    @property
    def pass_rate(self) -> float:
        return self.passed / self.attempted if self.attempted else 0.0


def pass_statistics(rows: Sequence[StudentRow], test_names: Sequence[str]) -> list[PassStats]:
    """Pass counts per test over the submissions that were graded (error rows have no test results)."""
    stats = {name: PassStats(name, 0.0) for name in test_names}
    for row in rows:
        if row.status != "graded" or row.results is None:
            continue
        for name, test in named_tests(row.results):
            entry = stats.setdefault(name, PassStats(name, 0.0))
            score, max_score = number(test.get("score")), number(test.get("max_score"))
            entry.max_score = max(entry.max_score, max_score)
            entry.attempted += 1
            entry.points += score
            if _passed(test, score, max_score):
                entry.passed += 1
            else:
                entry.messages[message_pattern(test.get("output"))] += 1
    return list(stats.values())


@dataclass(frozen=True)
class Failure:
    student_id: str
    test: str  # the first test that failed so
    message: str  # its first line, as the student saw it
    tests: int = 1  # how many of the student's tests failed so


def notable_failures(rows: Sequence[StudentRow]) -> tuple[list[Failure], list[Failure]]:
    """(timeouts, import failures): every call that timed out (and every grading stopped on its time limit), and for
    each student whose code could not be imported the first test that failed so, with how many did."""
    timeouts: list[Failure] = []
    imports: list[Failure] = []
    for row in rows:
        if row.status == "error" and _TIMEOUT.search(row.error or ""):
            timeouts.append(Failure(row.student_id, "(the whole grading)", _first_line(row.error)))
        if row.status != "graded" or row.results is None:
            continue
        failed_to_import = []
        for name, test in named_tests(row.results):
            output = str(test.get("output") or "")
            if _passed(test, number(test.get("score")), number(test.get("max_score"))):
                continue
            if _TIMEOUT.search(_first_line(output)):
                timeouts.append(Failure(row.student_id, name, _first_line(output)))
            elif _IMPORT_ERRORS.search(_first_line(output)) or _MODULE_FRAME.search(output):
                failed_to_import.append(Failure(row.student_id, name, _first_line(output)))
        if failed_to_import:
            first = failed_to_import[0]
            imports.append(Failure(row.student_id, first.test, first.message, tests=len(failed_to_import)))
    return timeouts, imports


def message_pattern(output: Any) -> str:
    """The first line of a failure's output with its numbers replaced by `#`: the same mistake of two students
    gives the same pattern."""
    return _first_line(_NUMBER.sub("#", _first_line(output, limit=None)))


def _passed(test: dict[str, Any], score: float, max_score: float) -> bool:
    status = test.get("status")
    if status in ("passed", "failed"):
        return status == "passed"
    return score >= max_score if max_score > 0 else score > 0


def _first_line(output: Any, limit: int | None = _MESSAGE_CHARS) -> str:
    for line in str(output or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"
    return "(no message)"


def write_summary(directory: Path, assignment: str, rows: Sequence[StudentRow], test_names: Sequence[str]) -> Path:
    """Write summary.md, summary.html and the charts into `directory`; return the HTML page's path."""
    directory.mkdir(parents=True, exist_ok=True)
    submitted = [row for row in rows if row.status in ("graded", "error")]
    errors = [row for row in rows if row.status == "error"]
    scores = [row.score for row in submitted]
    max_score = max((row.max_score for row in rows), default=0.0)
    tests = pass_statistics(rows, test_names)
    timed = sorted((row for row in submitted if row.seconds is not None), key=lambda row: -row.seconds)

    blocks: list[tuple] = [("h1", f"{assignment}: class summary")]
    overview = [("students in the gradebook", str(len(rows))), ("graded", str(len(submitted) - len(errors))),
                ("grading failed (0 points, retried on the next run)", str(len(errors))),
                ("no submission", str(len(rows) - len(submitted))), ("max score", _num(max_score))]
    if scores:
        overview += [("mean score", _num(statistics.fmean(scores))), ("median score", _num(statistics.median(scores))),
                     ("lowest / highest", f"{_num(min(scores))} / {_num(max(scores))}")]
    blocks += [("h2", "Overview"), ("table", ("", "value"), overview)]
    if (directory / SIMILARITY_PAGE).is_file():  # written by grade-all just before the summary
        blocks += [("link", SIMILARITY_PAGE, "Code similarity between the submissions (copydetect)")]

    blocks += [("h2", "Score distribution")]
    if scores:
        _histogram(directory / HISTOGRAM, scores, max_score, assignment)
        blocks += [("img", HISTOGRAM, f"histogram of {len(scores)} scores out of {_num(max_score)}")]
    else:
        blocks += [("p", "No submissions yet.")]

    blocks += [("h2", "Pass rate per test")]
    if tests:
        _pass_rate_chart(directory / PASS_RATES, tests)
        blocks += [("img", PASS_RATES, "pass rate of each grader test"),
                   ("table", ("test", "max points", "passed", "pass rate", "mean points"),
                    [(t.name, _num(t.max_score) if t.max_score else "extra credit", f"{t.passed}/{t.attempted}",
                      f"{t.pass_rate:.0%}",
                      _num(t.points / t.attempted) if t.attempted else "") for t in tests])]
    else:
        blocks += [("p", "No test results yet.")]

    failing = sorted((t for t in tests if t.failed), key=lambda t: (-t.failed, t.name))[:MOST_FAILED_SHOWN]
    blocks += [("h2", "Tests that fail most")]
    if failing:
        blocks += [("p", "Messages are counted with their numbers replaced by #.")]
        blocks += [("table", ("test", "failed", "most common messages"),
                    [(t.name, f"{t.failed}/{t.attempted}",
                      "; ".join(f"{message} ({count}x)" for message, count in t.messages.most_common(MESSAGES_SHOWN))
                      + (f"; {len(t.messages) - MESSAGES_SHOWN} other messages" if len(t.messages) > MESSAGES_SHOWN
                         else ""))
                     for t in failing])]
    else:
        blocks += [("p", "No test failed.")]

    timeouts, import_failures = notable_failures(rows)
    blocks += [("h2", "Code that could not be imported")]
    if import_failures:
        blocks += [("p", "A syntax error, a failed import or an error at the top level of a file fails every test "
                         "that calls into it."),
                   ("table", ("student", "tests failed so", "first message"),
                    [(f.student_id, str(f.tests), f.message) for f in import_failures])]
    else:
        blocks += [("p", "Every graded submission could be imported.")]
    blocks += [("h2", "Timeouts")]
    if timeouts:
        blocks += [("table", ("student", "test", "message"), [(f.student_id, f.test, f.message) for f in timeouts])]
    else:
        blocks += [("p", "No call timed out.")]

    blocks += [("h2", "Grading time per submission")]
    if timed:
        seconds = [row.seconds for row in timed]
        _time_histogram(directory / TIMES, seconds)
        blocks += [("p", f"mean {statistics.fmean(seconds):.1f} s, median {statistics.median(seconds):.1f} s, "
                         f"longest {seconds[0]:.1f} s ({timed[0].student_id}), total {sum(seconds):.0f} s"),
                   ("img", TIMES, "histogram of grading times"),
                   ("table", ("student", "seconds", "score", "status"),
                    [(r.student_id, f"{r.seconds:.1f}", _num(r.score), r.status) for r in timed])]
    else:
        blocks += [("p", "No timings yet.")]

    if errors:
        blocks += [("h2", "Submissions whose grading failed"),
                   ("table", ("student", "reason"), [(row.student_id, row.error) for row in errors])]

    (directory / "summary.md").write_text(_markdown(blocks), encoding="utf-8")
    page = directory / "summary.html"
    page.write_text(_html(blocks, f"{assignment} class summary"), encoding="utf-8")
    return page


def _num(value: float) -> str:
    return f"{value:.4g}"


# -- charts ------------------------------------------------------------------------------------------------------
# matplotlib's object API (Figure, no pyplot): no global state, no GUI backend, Agg only when saving.


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _histogram(path: Path, scores: list[float], max_score: float, assignment: str) -> None:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7, 3.5)
    axes = figure.subplots()
    upper = max(max_score, max(scores))
    axes.hist(scores, bins=min(20, max(5, len(set(scores)))), range=(0, upper or 1), color="#4c72b0",
              edgecolor="white")
    axes.set_xlabel(f"score (max {_num(max_score)})")
    axes.set_ylabel("students")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"{assignment}: {len(scores)} submissions")
    figure.savefig(path)


def _pass_rate_chart(path: Path, tests: list[PassStats]) -> None:
    figure = _figure(8, 0.9 + 0.32 * len(tests))
    axes = figure.subplots()
    labels = [t.name if len(t.name) <= 60 else t.name[:59] + "…" for t in tests]
    positions = range(len(tests))
    axes.barh(positions, [100 * t.pass_rate for t in tests], color="#55a868")
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.invert_yaxis()  # first test on top, in the order the graders report them
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of graded submissions passing")
    figure.savefig(path)


def _time_histogram(path: Path, seconds: list[float]) -> None:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(7, 3)
    axes = figure.subplots()
    axes.hist(seconds, bins=min(20, max(5, len(seconds) // 2)), color="#8172b2", edgecolor="white")
    axes.set_xlabel("grading time per submission (s)")
    axes.set_ylabel("submissions")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.savefig(path)


# -- rendering ---------------------------------------------------------------------------------------------------


def _markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' * int(kind[1])} {content[0]}")
        elif kind == "p":
            out.append(content[0])
        elif kind == "img":
            out.append(f"![{content[1]}]({content[0]})")
        elif kind == "link":
            out.append(f"[{content[1]}]({content[0]})")
        elif kind == "table":
            header, rows = content
            lines = [_md_row(header), "|" + "---|" * len(header)] + [_md_row(row) for row in rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    # Cells may quote student output: escape HTML so a Markdown viewer shows it as text.
    return "| " + " | ".join(html.escape(str(c), quote=False).replace("|", "\\|").replace("\n", " ")
                             for c in cells) + " |"


def _html(blocks: list[tuple], title: str) -> str:
    e = html.escape
    body = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{e(content[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{e(content[0])}</p>")
        elif kind == "img":
            body.append(f'<p><img src="{e(content[0])}" alt="{e(content[1])}"></p>')
        elif kind == "link":
            body.append(f'<p><a href="{e(content[0])}">{e(content[1])}</a></p>')
        elif kind == "table":
            header, rows = content
            head = "".join(f"<th>{e(str(c))}</th>" for c in header)
            lines = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
             "img{max-width:100%}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
