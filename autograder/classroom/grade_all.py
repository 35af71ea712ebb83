"""`python -m autograder grade-all hw1 SUBMISSIONS_DIR`: grade a whole class into an nbgrader gradebook.

SUBMISSIONS holds one entry per student, named by student id: a folder `alice/` or a zip `alice.zip` (entries
starting with `.` and `__MACOSX` are ignored); or it is a Gradescope export or a Canvas download, zipped or not
(see `intake`), whose students, latest submissions and submission times are read from the export. Each submission is graded by the engine in its own process (see
`cluster`), its outcome committed to the gradebook in one transaction, so an interrupted run keeps every grade
finished before the interrupt and a re-run picks up the rest: a submission is skipped when its content hash, the
grader's fingerprint (graders, reference and provided files, assignment.toml) and the profile all match its stored
grade, unless --force. A submission whose grading failed (crash, timeout, killed) gets an error row with 0 auto
points and the reason, and is retried by the next run.

docs/instructors.md is the guide; `--help` lists every option.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

from autograder.classroom.cluster import GradingJob, LocalExecutor, Outcome, SlurmExecutor
from autograder.classroom.exports import write_canvas_csv, write_detailed_csv, write_gradescope_csv
# ClassroomError, Submission and find_submissions live in intake now; imported here too for grade-all's callers.
from autograder.classroom.intake import (SOURCES, STUDENT_ID, ClassroomError, Submission,  # noqa: F401
                                         find_submissions, read_submissions)
from autograder.engine.results import safe_text, score_text


_HASH_CHUNK = 1 << 20
# Time the engine needs beyond the assignment's total_timeout (start-up, intake, report) before a job is killed.
_TIMEOUT_MARGIN_S = 300


def content_hash(path: Path) -> str:
    """sha256 of a submission: a zip's bytes, or a folder's relative file names and file contents.

    Hashing the raw submission (rather than what intake keeps of it) means the grade-all process never opens a
    student's zip; a re-zipped but unchanged submission is merely graded again.
    """
    digest = hashlib.sha256()
    if path.is_file():
        _hash_file(digest, path)
        return digest.hexdigest()
    files = []
    for folder, subfolders, names in os.walk(path):  # never follows links: a linked folder is hashed as a link
        files += [Path(folder, name) for name in names]
        files += [Path(folder, name) for name in subfolders if Path(folder, name).is_symlink()]
    for file in sorted(files):
        relative = file.relative_to(path).as_posix().encode("utf-8", "surrogateescape")
        digest.update(b"%d:%s" % (len(relative), relative))
        if file.is_symlink():
            target = os.readlink(file).encode("utf-8", "surrogateescape")
            digest.update(b"L%d:%s" % (len(target), target))
        elif file.is_file():
            digest.update(b"F%d:" % file.stat().st_size)
            _hash_file(digest, file)
        else:  # a FIFO or device node: never opened (reading a FIFO would block); intake rejects it anyway
            digest.update(b"S")
    return digest.hexdigest()


def _hash_file(digest: Any, path: Path) -> None:
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)


def grader_fingerprint(assignment: Any) -> str:
    """sha256 over everything a grade depends on besides the submission: graders folder (tests, probes,
    assignment.toml), reference and provided files. Changing any of them re-grades the class."""
    digest = hashlib.sha256()
    files = {}
    for path in assignment.graders_dir.rglob("*"):
        relative = path.relative_to(assignment.graders_dir)
        # Caches (__pycache__, .pytest_cache) change when the graders are merely run, not when they change.
        if path.is_file() and not any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            files[f"graders/{relative.as_posix()}"] = path
    files.update({f"reference/{name}": path for name, path in assignment.reference_sources().items()})
    for name in sorted(files):
        digest.update(f"{len(name)}:{name}".encode())
        _hash_file(digest, files[name])
    return digest.hexdigest()


def grade_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Grade one submission (what each executor job runs): `spec` is JSON-able, see `_job_spec`."""
    from autograder.assignment import Assignment
    from autograder.engine.grade import grade_submission

    assignment = Assignment.from_json(spec["assignment"])
    return grade_submission(assignment, Path(spec["submission"]), profile=spec["profile"], device=spec["device"],
                            **spec.get("options", {}))


def _job_spec(assignment: Any, submission: Submission, profile: str, options: dict[str, Any]) -> dict[str, Any]:
    return {"assignment": assignment.to_json(), "submission": str(submission.path.resolve()), "profile": profile,
            "options": options}


# -- command line ------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignment", help="hw1, hw2, or a graders folder holding an assignment.toml")
    parser.add_argument("submissions", type=Path,
                        help="folder with one entry per student (a folder or a .zip named by student id), or a "
                             "Gradescope export or Canvas download (zip or folder)")
    parser.add_argument("--source", choices=("auto",) + SOURCES, default="auto",
                        help="what SUBMISSIONS is (default: auto, from its content)")
    parser.add_argument("--staging-dir", type=Path, default=None,
                        help="where an export's student files are copied for grading (default: SUBMISSIONS.staged "
                             "beside it; emptied on each run)")
    parser.add_argument("--canvas-csv", type=Path, metavar="FILE.csv",
                        help="also write the scores as a Canvas gradebook import")
    parser.add_argument("--canvas-column", metavar="NAME",
                        help="the Canvas assignment column, as Canvas's gradebook export names it (\"HW1 (123456)\"); "
                             "default: the assignment name")
    parser.add_argument("--gradescope-csv", type=Path, metavar="FILE.csv",
                        help="also write the scores as a Gradescope score upload (Name, SID, Email, Score)")
    parser.add_argument("--gradebook", type=Path, default=Path("grades.db"),
                        help="nbgrader gradebook (SQLite file), created if missing (default: grades.db)")
    parser.add_argument("--csv", type=Path, help="also write every student's scores to this CSV file")
    parser.add_argument("--feedback-dir", type=Path, help="write STUDENT.md and STUDENT.html feedback here")
    parser.add_argument("--after-due-date", action="store_true",
                        help="feedback files also show the tests marked visibility after_due_date")
    parser.add_argument("--summary-dir", type=Path,
                        help="write the class summary (summary.md, summary.html, PNG charts) here")
    parser.add_argument("--no-similarity", action="store_true",
                        help="with --summary-dir: skip the code similarity report (similarity.html, copydetect)")
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="submissions graded at once (default 1, or one per GPU with --gpus)")
    parser.add_argument("--gpus", type=_gpu_list, default=None, metavar="0,1,...",
                        help="GPUs to grade on: at most one job per GPU, each job sees only its own")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default=None,
                        help="grading profile (default: gpu with --gpus or --slurm-gpus, else cpu)")
    parser.add_argument("--force", action="store_true", help="re-grade submissions even when nothing changed")
    parser.add_argument("--only", type=_id_list, default=None, metavar="ID,ID",
                        help="grade only these students (the CSV and summary still cover the whole gradebook)")
    parser.add_argument("--written", type=_written_spec, default=None, metavar="Q1:5,Q2:5",
                        help="written questions graded by hand, with their max points; remembered by the gradebook")
    parser.add_argument("--manual-scores", type=Path, metavar="FILE.csv",
                        help="CSV with a student_id column and one column per written question; empty cells are "
                             "left unchanged")
    parser.add_argument("--roster", type=Path, metavar="FILE.csv",
                        help="CSV with student_id and optional first_name, last_name, email; students without a "
                             "submission are exported as missing")
    parser.add_argument("--submission-timeout", type=float, default=None, metavar="SECONDS",
                        help="kill a submission's grading after this long (default: the assignment's total_timeout "
                             f"+ {_TIMEOUT_MARGIN_S} s)")
    parser.add_argument("--solutions-dir", type=Path, help="reference files (default: from assignment.toml)")
    parser.add_argument("--release-dir", type=Path, help="the student release (default: from assignment.toml)")
    parser.add_argument("--insecure-no-sandbox", action="store_true",
                        help="grade without bubblewrap (see `grade --help`); every result is stamped with it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local",
                        help="local processes (default) or a Slurm job array through submitit")
    slurm = parser.add_argument_group("Slurm (--executor slurm)")
    slurm.add_argument("--slurm-partition", help="partition (sbatch --partition)")
    slurm.add_argument("--slurm-time", type=int, default=None, metavar="MINUTES",
                       help="time limit per submission (sbatch --time; default: the assignment's total_timeout + 5 "
                            "min)")
    slurm.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per submission (sbatch --gpus-per-node)")
    slurm.add_argument("--slurm-cpus", type=int, default=2, help="CPUs per submission (sbatch --cpus-per-task)")
    slurm.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per submission (sbatch --mem)")
    slurm.add_argument("--slurm-parallelism", type=int, default=64,
                       help="array tasks running at once (sbatch --array=...%%N)")
    slurm.add_argument("--slurm-folder", type=Path, default=Path("slurm-logs"),
                       help="submitit's folder for job scripts, logs and results, on a filesystem the compute "
                            "nodes share (default: slurm-logs)")
    # Tests run the Slurm code path through submitit's local executor; not for instructors.
    slurm.add_argument("--slurm-cluster", default="slurm", choices=("slurm", "local"), help=argparse.SUPPRESS)


def _gpu_list(text: str) -> list[int]:
    try:
        gpus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus expects GPU indices like 0,1 (got {text!r})") from None
    if not gpus or len(set(gpus)) != len(gpus) or min(gpus) < 0:
        raise argparse.ArgumentTypeError(f"--gpus expects distinct GPU indices like 0,1 (got {text!r})")
    return gpus


def _id_list(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("--only expects student ids like alice,bob")
    return ids


def _written_spec(text: str) -> dict[str, float]:
    """`Q1:5,Q2:2.5` -> {"Q1": 5.0, "Q2": 2.5}."""
    questions: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, points = part.rpartition(":")
        try:
            value = float(points)
        except ValueError:
            value = -1.0
        if not name.strip() or not value > 0 or name in questions:
            raise argparse.ArgumentTypeError(
                f"--written expects distinct QUESTION:POINTS pairs with positive points, like Q1:5,Q2:5 "
                f"(problem at {part!r})")
        questions[name.strip()] = value
    return questions


def run(args: argparse.Namespace) -> int:
    with _sigterm_as_interrupt():
        try:
            return _grade_all(args)
        except ClassroomError as exc:
            print(f"grade-all: {safe_text(str(exc))}", file=sys.stderr)  # it may quote a file name
            return 2
        except KeyboardInterrupt:
            print("\ngrade-all: interrupted; every submission finished so far is saved in the gradebook. "
                  "Run the same command again to grade the rest.", file=sys.stderr)
            return 130


def _grade_all(args: argparse.Namespace) -> int:
    from autograder.assignment import AssignmentError, load_assignment
    from autograder.classroom.gradebook import ClassGradebook, GradebookError

    try:
        assignment = load_assignment(args.assignment, args.solutions_dir, args.release_dir)
    except AssignmentError as exc:
        raise ClassroomError(str(exc)) from None
    submissions = _with_lateness(read_submissions(args.submissions, args.source, assignment.student_files,
                                                  args.staging_dir), assignment.late)
    submissions = _selected(submissions, args.only, args.submissions)
    roster = _read_roster(args.roster) if args.roster else {}
    manual = _read_manual_scores(args.manual_scores) if args.manual_scores else {}
    with ClassGradebook(args.gradebook) as gradebook:
        try:
            gradebook.ensure_assignment(assignment.name, {**assignment.written, **(args.written or {})},
                                        duedate=assignment.late.due if assignment.late else None)
            gradebook.update_students(_names_from_export(submissions))
            gradebook.update_students(roster)  # the roster's names win over the export's
            for (student_id, question), score in manual.items():  # a bad file stops us before grading
                gradebook.check_manual_score(assignment.name, question, score, where=f"{student_id}: ")
        except GradebookError as exc:
            raise ClassroomError(f"{args.manual_scores}: {exc}" if manual else str(exc)) from None
        failures = _grade_into(gradebook, assignment, submissions, args)
        try:  # after grading: students graded for the first time in this run get their written scores too
            gradebook.set_manual_scores(assignment.name, manual)
        except GradebookError as exc:
            raise ClassroomError(f"{args.manual_scores}: {exc} (no score of the file was entered)") from None
        gradebook.record_intake(assignment.name, submissions)
        gradebook.apply_late_policy(assignment.name, assignment.late)
        rows = gradebook.rows(assignment.name)
        test_names = gradebook.test_names(assignment.name)
        written = gradebook.written_questions(assignment.name)
    _write_outputs(args, assignment.name, rows, test_names, written)
    return _report_failures(failures)


def _with_lateness(submissions: list[Submission], policy: Any) -> list[Submission]:
    """Mark late the submissions made after the policy's due date and grace period (an export's own LATE mark
    stays); warn about late ones without a time, which no deduction can be computed for."""
    import dataclasses

    marked = [dataclasses.replace(s, late=True)
              if policy is not None and s.submitted_at is not None and policy.days_late(s.submitted_at) else s
              for s in submissions]
    untimed = [s.student_id for s in marked if s.late and s.submitted_at is None]
    if untimed and policy is not None:
        print(f"grade-all: {len(untimed)} late submission(s) without a submission time (Canvas downloads carry "
              f"none), so no late deduction is applied to them: {', '.join(untimed)}", file=sys.stderr)
    return marked


def _names_from_export(submissions: list[Submission]) -> dict[str, dict[str, str]]:
    return {s.student_id: {key: value for key, value in (("first_name", s.first_name), ("last_name", s.last_name),
                                                          ("email", s.email)) if value}
            for s in submissions if s.first_name or s.last_name or s.email}


def _selected(submissions: list[Submission], only: list[str] | None, directory: Path) -> list[Submission]:
    if not only:
        return submissions
    unknown = sorted(set(only) - {s.student_id for s in submissions})
    if unknown:
        raise ClassroomError(f"--only names students without a submission in {directory}: {', '.join(unknown)}")
    return [s for s in submissions if s.student_id in only]


def _grade_into(gradebook: Any, assignment: Any, submissions: list[Submission], args: argparse.Namespace
                ) -> list[Outcome]:
    """Grade what changed since its stored grade (everything with --force), committing each outcome as it comes;
    return the outcomes that are error rows."""
    from autograder.classroom.gradebook import GradingKey

    profile = args.profile or ("gpu" if args.gpus or args.slurm_gpus else "cpu")
    fingerprint = grader_fingerprint(assignment)
    keys = {s.student_id: GradingKey(content_hash(s.path), fingerprint, profile) for s in submissions}
    todo = [s for s in submissions
            if args.force or gradebook.grading_key(assignment.name, s.student_id) != keys[s.student_id]]
    skipped = len(submissions) - len(todo)
    print(f"grade-all {assignment.name}: {len(submissions)} submissions, {len(todo)} to grade, "
          f"{skipped} unchanged since their last grading" + (" (use --force to re-grade them)" if skipped else ""),
          file=sys.stderr)
    # Fail before grading anybody rather than record every submission as an error (Slurm nodes check their own).
    if todo and args.executor == "local" and not args.insecure_no_sandbox:
        from autograder.engine.sandbox import sandbox_problem

        problem = sandbox_problem()
        if problem:
            raise ClassroomError(f"cannot sandbox the students' code: {problem}\nRefusing to grade. Use "
                                 "--insecure-no-sandbox only where the submissions are trusted.")
    options = {"insecure_no_sandbox": True} if args.insecure_no_sandbox else {}
    jobs = [GradingJob(s.student_id, _job_spec(assignment, s, profile, options)) for s in todo]
    failures = []
    # closing(): on Ctrl-C the executor's cleanup (killing running jobs) runs now, not at garbage collection.
    with contextlib.closing(_executor(args, assignment).run(jobs)) as outcomes:
        for outcome in _with_progress(outcomes, len(jobs), args.no_progress):
            outcome.error = outcome.error or _grader_problem(outcome.results)
            with _interrupts_deferred():
                gradebook.record(assignment.name, outcome.student_id, keys[outcome.student_id],
                                 results=outcome.results, error=outcome.error, seconds=outcome.seconds,
                                 device=outcome.device)
            if outcome.error:
                failures.append(outcome)
    return failures


def _write_outputs(args: argparse.Namespace, assignment: str, rows: list, test_names: list[str],
                   written: dict[str, float]) -> None:
    if args.csv:
        write_csv(args.csv, assignment, rows, test_names, written)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.canvas_csv:
        write_canvas_csv(args.canvas_csv, args.canvas_column or assignment, rows)
        print(f"wrote {args.canvas_csv}", file=sys.stderr)
    if args.gradescope_csv:
        write_gradescope_csv(args.gradescope_csv, rows)
        print(f"wrote {args.gradescope_csv}", file=sys.stderr)
    if args.feedback_dir:
        count = write_feedback(args.feedback_dir, rows, after_due_date=args.after_due_date)
        print(f"wrote feedback for {count} students to {args.feedback_dir}", file=sys.stderr)
    if args.summary_dir:
        from autograder.classroom.similarity import write_beside_summary
        from autograder.classroom.summary import write_summary

        write_beside_summary(args)  # first: the summary links to it
        page = write_summary(args.summary_dir, assignment, rows, test_names)
        print(f"wrote {page}", file=sys.stderr)


def _report_failures(failures: list[Outcome]) -> int:
    for outcome in failures:
        print(f"grade-all: {outcome.student_id}: could not be graded: {outcome.error}", file=sys.stderr)
        if outcome.log.strip():
            print("  " + "\n  ".join(outcome.log.strip().splitlines()[-10:]), file=sys.stderr)
    if not failures:
        return 0
    print(f"grade-all: {len(failures)} submission(s) recorded with 0 points and the error above; the next run "
          "retries them", file=sys.stderr)
    return 1


def _grader_problem(results: dict[str, Any] | None) -> str:
    """The engine's own failures (reference broke, harness crashed or timed out): the grade cannot be trusted."""
    problems = ((results or {}).get("extra_data") or {}).get("grader_errors") or []
    return "grader error: " + "; ".join(str(p).strip().splitlines()[0] for p in problems if str(p).strip()) \
        if problems else ""


def _executor(args: argparse.Namespace, assignment: Any) -> LocalExecutor | SlurmExecutor:
    timeout_s = args.submission_timeout or assignment.total_timeout + _TIMEOUT_MARGIN_S
    if args.executor == "slurm":
        return SlurmExecutor(args.slurm_folder, partition=args.slurm_partition,
                             time_min=args.slurm_time or int(timeout_s // 60 + 1), gpus=args.slurm_gpus,
                             parallelism=args.slurm_parallelism, cpus_per_task=args.slurm_cpus,
                             mem_gb=args.slurm_mem_gb, cluster=args.slurm_cluster,
                             poll_s=1.0 if args.slurm_cluster == "local" else 15.0)
    jobs = args.jobs if args.jobs is not None else (len(args.gpus) if args.gpus else 1)
    if args.gpus and jobs > len(args.gpus):
        print(f"grade-all: --jobs {jobs} reduced to {len(args.gpus)}: at most one job per GPU", file=sys.stderr)
    return LocalExecutor(jobs=jobs, gpus=args.gpus, timeout_s=timeout_s)


def _with_progress(outcomes: Iterator[Outcome], total: int, disabled: bool) -> Iterator[Outcome]:
    from tqdm import tqdm

    with tqdm(total=total, unit="submission", disable=disabled or None, file=sys.stderr) as bar:
        for outcome in outcomes:
            if outcome.results is not None:
                score = score_text(outcome.results.get("tests", []))
            else:
                score = "error"
            bar.set_postfix_str(f"{outcome.student_id}: {score}", refresh=False)
            bar.update(1)
            yield outcome


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C while a grade is committed, then act on it: the grade that just finished is not thrown away."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` / a scheduler's SIGTERM stops grade-all like Ctrl-C, so running jobs are killed, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- CSV in and out ----------------------------------------------------------------------------------------------


def _read_csv(path: Path, what: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = reader.fieldnames or []
    except OSError as exc:
        raise ClassroomError(f"cannot read {what} {path}: {exc.strerror}") from None
    if "student_id" not in fields:
        raise ClassroomError(f"{what} {path} needs a header row with a student_id column (found: {', '.join(fields)})")
    for line, row in enumerate(rows, start=2):
        student_id = (row.get("student_id") or "").strip()
        if not STUDENT_ID.fullmatch(student_id):
            raise ClassroomError(f"{path}:{line}: {student_id!r} is not a valid student id")
        row["student_id"] = student_id
    return rows


def _read_roster(path: Path) -> dict[str, dict[str, str]]:
    roster = {}
    for row in _read_csv(path, "roster"):
        roster[row["student_id"]] = {key: (row.get(key) or "").strip()
                                     for key in ("first_name", "last_name", "email") if key in row}
    return roster


def _read_manual_scores(path: Path) -> dict[tuple[str, str], float | None]:
    scores = {}
    for line, row in enumerate(_read_csv(path, "manual scores file"), start=2):
        for question, cell in row.items():
            if question == "student_id" or question is None or not (cell or "").strip():
                continue
            try:
                scores[(row["student_id"], question)] = float(cell)
            except ValueError:
                raise ClassroomError(f"{path}:{line}: score {cell!r} for {question} is not a number") from None
    return scores


write_csv = write_detailed_csv  # the name grade-all's callers have used


def write_feedback(directory: Path, rows: list, after_due_date: bool = False) -> int:
    """STUDENT.md and STUDENT.html from each stored results.json, through the engine's own report writers."""
    from autograder.classroom.report import render_html, render_markdown

    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for row in rows:
        if row.results is None:
            continue
        # The student's view: hidden and after-due-date tests stay withheld, as on Gradescope.
        view = {"after_due_date": after_due_date}
        (directory / f"{row.student_id}.md").write_text(render_markdown(row.results, **view), encoding="utf-8")
        (directory / f"{row.student_id}.html").write_text(render_html(row.results, **view), encoding="utf-8")
        count += 1
    return count
