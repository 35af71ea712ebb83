"""Wall time of `grade-all` on N toy submissions with --jobs 1 vs --jobs 2 (same class, fresh gradebooks).

    .venv/bin/python bench/grade_all_jobs.py [--students 20] [--jobs 1 2]

Uses the engine's toy fixture assignment (tests/fixtures/engine/toy); the class mixes full, partial and starter
submissions. Prints each run's wall time, the ratio to the first, and checks that every run gave the same scores.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "fixtures" / "engine" / "toy"


def make_class(directory: Path, students: int) -> None:
    solution = (TOY / "solution" / "toy.py").read_text()
    starter = (TOY / "release" / "toy.py").read_text()
    partial = starter.replace('def add(a, b):\n    raise NotImplementedError("add")', "def add(a, b):\n    return a + b")
    variants = [solution, partial, starter]
    for index in range(students):
        folder = directory / f"student{index:03d}"
        folder.mkdir(parents=True)
        (folder / "toy.py").write_text(variants[index % len(variants)])


def grade_all(class_dir: Path, jobs: int, workdir: Path) -> tuple[float, dict[str, str]]:
    gradebook, table = workdir / f"jobs{jobs}.db", workdir / f"jobs{jobs}.csv"
    command = [sys.executable, "-m", "autograder", "grade-all", str(TOY / "graders"), str(class_dir),
               "--jobs", str(jobs), "--gradebook", str(gradebook), "--csv", str(table), "--no-progress"]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - started
    with open(table, newline="") as handle:
        return seconds, {row["student_id"]: row["score"] for row in csv.DictReader(handle)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-grade-all-") as tmp:
        workdir = Path(tmp)
        make_class(workdir / "class", args.students)
        runs = [(jobs, *grade_all(workdir / "class", jobs, workdir)) for jobs in args.jobs]
    base = runs[0][1]
    print(f"{args.students} toy submissions on {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}):")
    for jobs, seconds, _ in runs:
        print(f"  --jobs {jobs}: {seconds:6.1f} s   ({seconds / args.students:.2f} s/submission, "
              f"x{base / seconds:.2f} vs --jobs {runs[0][0]})")
    same = all(scores == runs[0][2] for _, _, scores in runs)
    print(f"  identical scores across runs: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
