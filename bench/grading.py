"""Grading time: a full `python -m autograder grade hwN <reference>` under the cpu profile, per homework.

    ./kit python bench/grading.py                  # hw1 and hw2, the reference solutions
    ./kit python bench/grading.py --homeworks hw2
    ./kit python bench/grading.py --smoke          # grade the blank starter of hw1 only (every probe fails fast)
    ./kit python bench/grading.py --dry-run        # check the set-up and print the commands, grade nothing

Each grade runs as its own process, as an instructor would run it, so the time includes starting the sandbox and
the harness, the probes, and the training runs the cpu profile budgets. The score comes from the `--json` results.
Prints `TIME <hw>: ... s` and, per homework, a `RATIO` line: grading time of the reference over that of the blank
starter (how much of the grade's time is the real training and checking rather than fixed start-up costs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common


def graders_ready(homework: str) -> bool:
    return (common.REPO / "autograder" / "graders" / homework / "assignment.toml").is_file()


def grade_command(homework: str, submission: Path, profile: str, device: str, results: Path) -> list[str]:
    # The graders folder, not the bare name: from the repository root `hw1` is also the released folder.
    graders = common.REPO / "autograder" / "graders" / homework
    return [sys.executable, "-m", "autograder", "grade", str(graders), str(submission), "--profile", profile,
            "--device", device, "--json", str(results)]


def check_cli(command: list[str]) -> None:
    """Fail clearly if `python -m autograder grade` no longer takes the options this benchmark passes."""
    usage = subprocess.run([*command[:4], "--help"], cwd=common.REPO, capture_output=True, text=True, timeout=120)
    options = [part for part in command if part.startswith("--")]
    absent = [option for option in options if option not in usage.stdout]
    if usage.returncode != 0 or absent:
        raise SystemExit(f"`python -m autograder grade --help` (exit {usage.returncode}) does not offer {absent}: "
                         f"update bench/grading.py\n{usage.stderr[-500:]}")


def grade(homework: str, submission: Path, profile: str, device: str, timeout: float) -> dict:
    """Run one grade; return its wall time, exit code and the score of its Gradescope JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as folder:
        results = Path(folder) / "results.json"
        command = grade_command(homework, submission, profile, device, results)
        started = time.perf_counter()
        try:
            completed = subprocess.run(command, cwd=common.REPO, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"seconds": time.perf_counter() - started, "rc": None, "error": f"no result within {timeout:.0f} s"}
        seconds = time.perf_counter() - started
        outcome = {"seconds": seconds, "rc": completed.returncode}
        if results.is_file():
            document = json.loads(results.read_text())
            outcome.update(score=document.get("score"), max_score=document.get("max_score") or sum(
                test.get("max_score", 0) or 0 for test in document.get("tests", [])))
        else:
            outcome["error"] = (completed.stderr or completed.stdout).strip()[-800:]
        return outcome


def describe(homework: str, what: str, outcome: dict) -> str:
    score = (f"score {outcome['score']:g} / {outcome['max_score']:g}" if outcome.get("score") is not None
             else f"no score ({outcome.get('error', 'no results file')})")
    return f"TIME {homework} {what}: {outcome['seconds']:.1f} s, exit code {outcome['rc']}, {score}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--homeworks", nargs="+", choices=("hw1", "hw2"), default=["hw1", "hw2"])
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one grade")
    parser.add_argument("--smoke", action="store_true",
                        help="grade only hw1's blank starter (no training: every probe fails fast)")
    parser.add_argument("--dry-run", action="store_true", help="check the graders and the CLI, print the commands")
    args = parser.parse_args(argv)
    print(common.machine_header(args.device))
    homeworks = ["hw1"] if args.smoke else args.homeworks
    missing = [homework for homework in homeworks if not graders_ready(homework)]
    if missing:
        for homework in missing:
            print(f"{homework}: autograder/graders/{homework}/assignment.toml does not exist yet; "
                  f"nothing to time (the grader is not written)")
        return 2
    submissions = {homework: [("blank starter", common.REPO / homework)] + (
        [] if args.smoke else [("reference", common.SOLUTIONS / homework)]) for homework in homeworks}
    check_cli(grade_command(homeworks[0], common.REPO / homeworks[0], args.profile, args.device, Path("results.json")))
    if args.dry_run:
        for homework, entries in submissions.items():
            for what, submission in entries:
                command = grade_command(homework, submission, args.profile, args.device, Path("results.json"))
                print(f"would time ({homework} {what}): {' '.join(command)}")
        return 0
    for homework, entries in submissions.items():
        seconds = {}
        for what, submission in entries:
            outcome = grade(homework, submission, args.profile, args.device, args.timeout)
            seconds[what] = outcome["seconds"]
            print(describe(homework, f"{what} ({submission.relative_to(common.REPO)})", outcome), flush=True)
        if "reference" in seconds:
            print(f"RATIO {homework} grading time, --profile {args.profile}: reference / blank starter = "
                  f"{seconds['reference'] / seconds['blank starter']:.1f}x  ({seconds['reference']:.1f} vs "
                  f"{seconds['blank starter']:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
