"""`python -m autograder demo`: the one-command proof that the kit works.

Prints the dataset summary and the release status, then grades the reference solution and the blank starter of
each homework in the sandbox and prints both score tables. The reference must get full marks and the starter 0.
"""

from __future__ import annotations

import subprocess
import sys
import time

from autograder import ASSIGNMENTS, REPO_ROOT, SOLUTIONS_DIR


def add_arguments(parser) -> None:
    parser.add_argument("assignments", nargs="*", metavar="hwN",
                        help=f"which homeworks to grade: {', '.join(ASSIGNMENTS)} (default: all)")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu", help="training budgets (default cpu)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--insecure-no-sandbox", action="store_true",
                        help="grade without bubblewrap (only where it cannot run); every result says so")


def _section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 74 - len(title)), flush=True)


def _run_quietly(command: list[str]) -> tuple[int, str]:
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr).strip()


def run(args) -> int:
    from autograder.assignment import AssignmentError, load_assignment
    from autograder.engine.grade import grade_submission
    from autograder.classroom.report import render_table
    from autograder.engine.results import score_text
    from autograder.engine.sandbox import SandboxUnavailable

    unknown = [name for name in args.assignments if name not in ASSIGNMENTS]
    if unknown:
        print(f"demo: unknown homework {', '.join(unknown)}; expected {', '.join(ASSIGNMENTS)}", file=sys.stderr)
        return 2
    args.assignments = args.assignments or list(ASSIGNMENTS)

    _section("Omniglot data")
    code, text = _run_quietly([sys.executable, "-m", "omniglot_data", "--summary", "--quiet"])
    print(text)
    if code:
        print("Build the data first: bash data_download.sh (or ./kit setup)")
        return code

    _section("Student release (hw1/, hw2/ generated from autograder/solutions/)")
    code, text = _run_quietly([sys.executable, "-m", "autograder", "release", "--check"])
    print(text.splitlines()[-1] if code == 0 else text)
    failures = int(code != 0)

    for name in args.assignments:
        try:
            assignment = load_assignment(name)
        except AssignmentError as error:
            print(f"demo: {error}", file=sys.stderr)
            return 2
        expectations = (("reference solution", SOLUTIONS_DIR / name, "full marks"),
                        ("blank starter", REPO_ROOT / name, "0"))
        for label, submission, expected in expectations:
            _section(f"{name}: grading the {label} ({submission.relative_to(REPO_ROOT)}/), expected {expected}")
            started = time.monotonic()
            try:
                results = grade_submission(assignment, submission, profile=args.profile, device=args.device,
                                           insecure_no_sandbox=args.insecure_no_sandbox)
            except SandboxUnavailable as error:
                print(f"demo: cannot sandbox student code: {error}\n"
                      "Install bubblewrap, or pass --insecure-no-sandbox on a machine where it cannot run.")
                return 2
            print(render_table(results))
            print(f"({time.monotonic() - started:.0f} s)")
            scored = results["score"]
            as_expected = scored >= results["max_score"] if expected == "full marks" else scored == 0
            if not as_expected:
                failures += 1
                print(f"demo: UNEXPECTED: the {label} of {name} scored {score_text(results['tests'])}")
    _section("Summary")
    print("all as expected" if failures == 0 else f"{failures} unexpected result(s), see above")
    return 0 if failures == 0 else 1
