"""`python -m autograder similarity hw1 SUBMISSIONS_DIR -o similarity.html`: which submissions share too much code.

The comparison is copydetect's (https://github.com/blingenf/copydetect): winnowed fingerprints of token k-grams in
which every name is replaced by a placeholder, so renamed variables, reordered functions, new comments and blank
lines do not hide a copy. Every `.py` file of the official release (`hw1/*.py`: the starter code and the provided
files) is boilerplate: code that everybody was given matches nobody.

Each student is one document: the assignment's `.py` student files, taken out of the folder or zip by the engine's
intake (the same whitelist, size and zip-bomb checks as grading), concatenated in `student_files` order (a function
moved from one file to another still matches; the starter code is concatenated the same way for the boilerplate, so
the seams between files are boilerplate too). A pair is flagged when the code shared by the two is more than
`threshold` of either student's (non-boilerplate) code; the page shows, for each flagged pair, both students' code
with the shared regions highlighted. A flagged pair is a reason to look, not a verdict.

SUBMISSIONS is read as grade-all reads it (`classroom.intake`: one folder or zip per student id, or a Gradescope
export or Canvas download); grade-all with --summary-dir writes the page beside the class summary (unless
--no-similarity).
"""

from __future__ import annotations

import argparse
import html
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from autograder.classroom.intake import SOURCES
from autograder.engine.results import safe_text

PAGE = "similarity.html"
_FILE_HEADER = "# ===== {} ====="  # a comment: copydetect ignores it, readers see where each file starts
_CONTEXT_LINES = 10  # copydetect's truncation keeps this many lines around each shared region
# copydetect takes ~8 s per MB of code (pygments' tokens); the homeworks' code is ~60 KB. A longer submission is
# listed as not compared, so a class of 2 MB files cannot stall the report beside grade-all for an hour.
MAX_DOCUMENT_BYTES = 512 * 1024


def default_threshold() -> float:
    """copydetect's own display threshold (the share of a file's code found in the other)."""
    from copydetect import defaults

    return defaults.DISPLAY_THRESHOLD


@dataclass(frozen=True)
class SimilarPair:
    first: str  # student ids
    second: str
    first_share: float  # the part of `first`'s code (boilerplate excluded) that is also in `second`'s
    second_share: float
    shared_tokens: int
    first_code: str  # HTML: the student's code, shared regions highlighted (copydetect escapes the code)
    second_code: str


@dataclass
class SimilarityReport:
    threshold: float
    compared: list[str]  # student ids
    not_compared: dict[str, str]  # student id -> why (no student file, rejected by the intake)
    pairs: list[SimilarPair]  # flagged pairs, most similar first


def compare_class(assignment: Any, submissions: Sequence[Any], threshold: float | None = None,
                  noise_tokens: int | None = None) -> SimilarityReport:
    """Compare every pair of `submissions` (grade_all.Submission: student_id, path). `noise_tokens` is copydetect's
    noise threshold (shorter shared runs never count; default copydetect's)."""
    from copydetect import CopyDetector, defaults

    from autograder.engine.submission import collect_submission

    threshold = default_threshold() if threshold is None else checked_threshold(threshold)
    noise = defaults.NOISE_THRESHOLD if noise_tokens is None else noise_tokens
    code_files = [name for name in assignment.student_files if name.endswith(".py")]
    if not code_files:
        raise ValueError(f"assignment {assignment.name} has no .py student files to compare")
    released = {path.name: path for path in sorted(assignment.release_dir.glob("*.py"))}
    if not released:
        raise ValueError(f"no released starter code (*.py) in {assignment.release_dir}; the report would flag "
                         "everybody's copy of it")
    report = SimilarityReport(threshold, [], {}, [])
    with tempfile.TemporaryDirectory(prefix="autograder-similarity-") as work:
        documents, boilerplate = Path(work) / "documents", Path(work) / "boilerplate"
        documents.mkdir()
        boilerplate.mkdir()
        _write_document(boilerplate / "starter.py", {name: released[name] for name in code_files if name in released},
                        code_files)
        for name, path in released.items():
            (boilerplate / f"released_{name}").write_bytes(path.read_bytes())
        student_of: dict[str, str] = {}
        for submission in submissions:
            intake = collect_submission(submission.path, code_files, Path(work) / "intake" / submission.student_id)
            if intake.rejected or not intake.files:
                report.not_compared[submission.student_id] = intake.rejected or f"none of {', '.join(code_files)}"
                continue
            size = sum(path.stat().st_size for path in intake.files.values())
            if size > MAX_DOCUMENT_BYTES:
                report.not_compared[submission.student_id] = (f"its code is {size} bytes; submissions over "
                                                              f"{MAX_DOCUMENT_BYTES} bytes are not compared")
                continue
            document = documents / f"{submission.student_id}.py"
            _write_document(document, intake.files, code_files)
            student_of[str(document)] = submission.student_id
            report.compared.append(submission.student_id)
        if len(report.compared) < 2:
            return report
        detector = CopyDetector(extensions=["py"], noise_t=noise, guarantee_t=noise, display_t=threshold,
                                autoopen=False, silent=True, truncate=True)
        for document in sorted(student_of):
            detector.add_file(document)
        for path in sorted(boilerplate.iterdir()):
            detector.add_file(str(path), type="boilerplate")
        detector.run()
        for test_share, ref_share, test_file, ref_file, test_code, ref_code, overlap in \
                detector.get_copied_code_list():
            report.pairs.append(SimilarPair(student_of[test_file], student_of[ref_file], float(test_share),
                                            float(ref_share), int(overlap), test_code, ref_code))
    report.pairs.sort(key=lambda pair: (-max(pair.first_share, pair.second_share), pair.first, pair.second))
    return report


def _write_document(document: Path, files: dict[str, Path], order: Sequence[str]) -> None:
    """One student's (or the starter's) code files as one document, in the assignment's order."""
    # Undecodable bytes are not code anyone could run; errors="replace" keeps the rest comparable.
    document.write_text("\n".join(f"{_FILE_HEADER.format(name)}\n"
                                  f"{files[name].read_bytes().decode('utf-8', errors='replace')}"
                                  for name in order if name in files), encoding="utf-8")


def write_page(path: Path, assignment: str, report: SimilarityReport) -> Path:
    e = html.escape
    parts = [f"<h1>{e(assignment)}: code similarity</h1>",
             f"<p>{len(report.compared)} submissions compared with copydetect; the released starter code is ignored. "
             f"A pair is listed when more than {report.threshold:.0%} of either student's code is shared with the "
             "other (names do not matter: renamed variables and reordered functions still match). A listed pair is "
             "a reason to look at the two submissions, not a verdict.</p>"]
    if report.not_compared:
        parts.append("<h2>Not compared</h2><table><thead><tr><th>student</th><th>why</th></tr></thead><tbody>"
                     + "".join(f"<tr><td>{e(student)}</td><td>{e(why)}</td></tr>"
                               for student, why in sorted(report.not_compared.items())) + "</tbody></table>")
    parts.append("<h2>Pairs above the threshold</h2>")
    if not report.pairs:
        parts.append("<p>No pair of submissions shares more than the threshold.</p>")
    else:
        parts.append("<table><thead><tr><th>student</th><th>student</th><th>share of the first's code</th>"
                     "<th>share of the second's code</th><th>shared tokens</th></tr></thead><tbody>"
                     + "".join(f'<tr><td><a href="#pair-{index}">{e(p.first)}</a></td><td>{e(p.second)}</td>'
                               f"<td>{p.first_share:.0%}</td><td>{p.second_share:.0%}</td><td>{p.shared_tokens}</td>"
                               "</tr>" for index, p in enumerate(report.pairs)) + "</tbody></table>")
        for index, pair in enumerate(report.pairs):
            parts.append(f'<h3 id="pair-{index}">{e(pair.first)} and {e(pair.second)}</h3>'
                         f'<p>Shared regions highlighted; up to {_CONTEXT_LINES} lines around them shown.</p>'
                         f'<div class="pair"><div><h4>{e(pair.first)} ({pair.first_share:.0%} shared)</h4>'
                         f"<pre>{pair.first_code}</pre></div><div><h4>{e(pair.second)} "
                         f"({pair.second_share:.0%} shared)</h4><pre>{pair.second_code}</pre></div></div>")
    style = ("body{font-family:system-ui,sans-serif;max-width:90em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
             ".pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}"
             "pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:85%}"
             ".highlight-red{background:#fbb}.highlight-green{background:#bfb}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(assignment)} code '
                    f"similarity</title><style>{style}</style></head><body>\n" + "\n".join(parts)
                    + "\n</body></html>\n", encoding="utf-8")
    return path


def write_class_report(assignment: Any, submissions: Path, output: Path, threshold: float | None = None,
                       source: str = "auto", staging: Path | None = None) -> SimilarityReport:
    """Compare the class in `submissions` (read as grade-all reads it) and write the page to `output`."""
    from autograder.classroom.intake import read_submissions

    report = compare_class(assignment, read_submissions(submissions, source, assignment.student_files, staging),
                           threshold)
    write_page(output, assignment.name, report)
    return report


def describe(report: SimilarityReport, page: Path) -> str:
    return (f"wrote {page}: {len(report.pairs)} pair(s) above {report.threshold:.0%} among "
            f"{len(report.compared)} submissions" + (f" ({len(report.not_compared)} not compared)"
                                                     if report.not_compared else ""))


def checked_threshold(value: Any) -> float:
    """`value` as a threshold: a share of the code strictly between 0 and 1 (ValueError otherwise)."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = -1.0
    if not 0 < share < 1:
        raise ValueError(f"the similarity threshold is a share of the code between 0 and 1, like 0.5 (got {value!r})")
    return share


def threshold_argument(text: str) -> float:
    try:
        return checked_threshold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignment", help="hw1, hw2, or a graders folder holding an assignment.toml")
    parser.add_argument("submissions", type=Path,
                        help="as for grade-all: a folder with one folder or .zip per student id, or a Gradescope "
                             "export or Canvas download")
    parser.add_argument("--source", choices=("auto", *SOURCES), default="auto",
                        help="what SUBMISSIONS is (default: auto, as grade-all)")
    parser.add_argument("--staging-dir", type=Path, default=None,
                        help="where an export's files are staged (default: beside it, as grade-all)")
    parser.add_argument("-o", "--output", type=Path, default=Path(PAGE), help=f"the page to write (default {PAGE})")
    parser.add_argument("--threshold", type=threshold_argument, default=None, metavar="SHARE",
                        help="list pairs sharing more than this share of either student's code (default: "
                             "copydetect's, 0.33)")
    parser.add_argument("--release-dir", type=Path, help="the student release whose *.py files are boilerplate "
                                                         "(default: from assignment.toml)")


def run(args: argparse.Namespace) -> int:
    from autograder.assignment import AssignmentError, load_assignment
    from autograder.classroom.intake import ClassroomError

    try:
        assignment = load_assignment(args.assignment, release_dir=args.release_dir)
        report = write_class_report(assignment, args.submissions, args.output, args.threshold, args.source,
                                    args.staging_dir)
    except (AssignmentError, ClassroomError, ValueError) as exc:
        print(f"similarity: {safe_text(str(exc))}", file=sys.stderr)
        return 2
    print(describe(report, args.output))
    return 0


def write_beside_summary(args: argparse.Namespace) -> None:
    """grade-all's hook (with --summary-dir, unless --no-similarity): the page for the whole submissions folder, in
    the summary's folder. A class that cannot be compared is said so on stderr; it never fails the grading run."""
    from autograder.assignment import load_assignment
    from autograder.classroom.intake import ClassroomError

    if args.no_similarity:
        return
    page = args.summary_dir / PAGE
    try:
        assignment = load_assignment(args.assignment, args.solutions_dir, args.release_dir)
        report = write_class_report(assignment, args.submissions, page, source=args.source, staging=args.staging_dir)
    except (ClassroomError, ValueError) as exc:
        print(f"similarity report not written: {safe_text(str(exc))}", file=sys.stderr)
        return
    except Exception as exc:  # noqa: BLE001 - copydetect on the students' code: whatever breaks, grading is done
        print(f"similarity report not written: {type(exc).__name__}: {safe_text(str(exc))}", file=sys.stderr)
        return
    print(describe(report, page), file=sys.stderr)
