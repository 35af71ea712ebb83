"""Grading time: full `python -m autograder grade hwN SUBMISSION` runs under the cpu profile, with each test's worker
forked by the run's fork server (`--worker-start fork`, the default) and with a fresh sandbox and Python per test
(`--worker-start fresh`, the old way), side by side.

    ./kit python bench/grading.py                  # hw1 and hw2; blank starter and reference; fork and fresh
    ./kit python bench/grading.py --homeworks hw2 --rounds 2
    ./kit python bench/grading.py --smoke          # hw1's blank starter only (every probe fails fast)
    ./kit python bench/grading.py --dry-run        # check the set-up and print the commands, grade nothing

Each grade runs as its own process, as an instructor would run it, so the time includes starting the sandbox and
the harness, the probes, and the training runs the cpu profile budgets. The score comes from the `--json` results;
the two ways must agree on it. The two ways alternate within each round (fresh first in odd rounds), so that a busy
machine slows both alike. Prints a `TIME` line per grade and a `RATIO` line per homework and submission: the
median time of the old way over the new (the speed-up of the fork server).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common


def graders_ready(homework: str) -> bool:
    return (common.REPO / "autograder" / "graders" / homework / "assignment.toml").is_file()


WORKER_STARTS = ("fresh", "fork")  # old, new


def grade_command(homework: str, submission: Path, profile: str, device: str, results: Path,
                  worker_start: str = "fork") -> list[str]:
    # The graders folder, not the bare name: from the repository root `hw1` is also the released folder.
    graders = common.REPO / "autograder" / "graders" / homework
    return [sys.executable, "-m", "autograder", "grade", str(graders), str(submission), "--profile", profile,
            "--device", device, "--json", str(results), "--worker-start", worker_start]


def check_cli(command: list[str]) -> None:
    """Fail clearly if `python -m autograder grade` no longer takes the options this benchmark passes."""
    usage = subprocess.run([*command[:4], "--help"], cwd=common.REPO, capture_output=True, text=True, timeout=120)
    options = [part for part in command if part.startswith("--")]
    absent = [option for option in options if option not in usage.stdout]
    if usage.returncode != 0 or absent:
        raise SystemExit(f"`python -m autograder grade --help` (exit {usage.returncode}) does not offer {absent}: "
                         f"update bench/grading.py\n{usage.stderr[-500:]}")


def grade(homework: str, submission: Path, profile: str, device: str, timeout: float, worker_start: str) -> dict:
    """Run one grade; return its wall time, exit code and the score of its Gradescope JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as folder:
        results = Path(folder) / "results.json"
        command = grade_command(homework, submission, profile, device, results, worker_start)
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
    parser.add_argument("--rounds", type=int, default=1, help="grades of each submission per way (median taken)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one grade")
    parser.add_argument("--smoke", action="store_true",
                        help="grade only hw1's blank starter (no training: every probe fails fast)")
    parser.add_argument("--dry-run", action="store_true", help="check the graders and the CLI, print the commands")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
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
                print(f"would time ({homework} {what}): {' '.join(command[:-2])} --worker-start fork|fresh")
        return 0
    disagreements = 0
    for homework, entries in submissions.items():
        for what, submission in entries:
            seconds = {way: [] for way in WORKER_STARTS}
            scores = set()
            for round_index in range(args.rounds):
                order = WORKER_STARTS if round_index % 2 == 0 else WORKER_STARTS[::-1]
                for way in order:
                    outcome = grade(homework, submission, args.profile, args.device, args.timeout, way)
                    seconds[way].append(outcome["seconds"])
                    scores.add(outcome.get("score"))
                    label = f"{what} ({submission.relative_to(common.REPO)}), --worker-start {way}"
                    print(describe(homework, label, outcome), flush=True)
            old, new = (statistics.median(seconds[way]) for way in WORKER_STARTS)
            print(f"RATIO {homework} {what} grading time, --profile {args.profile}: fresh workers / fork server = "
                  f"{old / new:.2f}x  ({old:.1f} vs {new:.1f} s, median of {args.rounds})", flush=True)
            if len(scores) != 1:
                disagreements += 1
                print(f"MISMATCH {homework} {what}: the two ways gave different scores {sorted(map(str, scores))}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    raise SystemExit(main())
