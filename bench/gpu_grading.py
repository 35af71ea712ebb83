"""Grading on the GPU, inside the bubblewrap sandbox: both references (full marks), both blank starters (0), and
what a sandboxed process sees of the machine (one GPU, nothing of the host).

    OUT=/some/folder bash bench/gpu_profile.sh grading     # on the GPU machine: --profile gpu --device cuda
    python bench/gpu_grading.py --smoke --out /tmp/g        # CPU: the sandbox view only, in seconds

The gradings run in parallel (each is one harness and a few sandboxed workers; the GPU machine has cores to spare),
each under `timeout`; results land in `--out` as `gpu_grading.json` (every grading's score, maximum, wall time,
sandbox mode, failed tests) and `gpu_grading.md` (the table for docs/results.md). A grading that does not give its
expected score is listed, with its failures, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import common

SANDBOX_VIEW = Path("bench") / "sandbox_view"


@dataclass(frozen=True)
class Grading:
    name: str
    assignment: str
    submission: str
    expect: str  # "full" or "zero"


GRADINGS = [
    Grading("sandbox_view", str(SANDBOX_VIEW / "graders"), str(SANDBOX_VIEW / "solution"), "full"),
    Grading("hw1_reference", "hw1", "autograder/solutions/hw1", "full"),
    Grading("hw1_starter", "hw1", "hw1", "zero"),
    Grading("hw2_reference", "hw2", "autograder/solutions/hw2", "full"),
    Grading("hw2_starter", "hw2", "hw2", "zero"),
]
SMOKE_GRADINGS = ("sandbox_view",)


def command(grading: Grading, python: str, profile: str, device: str, json_path: Path) -> list[str]:
    return [python, "-m", "autograder", "grade", grading.assignment, grading.submission, "--profile", profile,
            "--device", device, "--json", str(json_path), "--show-hidden"]


def outcome(grading: Grading, document: dict) -> dict:
    """Score, maximum and whether it is what the grading expects (every test's points, extra credit too / zero)."""
    tests = document.get("tests", [])

    def points(test: dict) -> float:  # an extra-credit test has max_score 0; its points are in extra_data
        return float(test.get("extra_data", {}).get("points", test.get("max_score", 0)))

    short = [test for test in tests if float(test.get("score", 0)) < points(test)]
    as_expected = (bool(tests) and not short) if grading.expect == "full" else document.get("score") == 0
    failed = [f"{test.get('name')}: {str(test.get('output', ''))[:300]}" for test in short]
    extra = document.get("extra_data", {})
    return {"score": document.get("score"), "max_score": document.get("max_score"), "as_expected": as_expected,
            "sandbox": extra.get("sandbox"), "device": extra.get("device"), "profile": extra.get("profile"),
            "grader_errors": extra.get("grader_errors", []), "not_full_marks": failed}


def run_grading(grading: Grading, args: argparse.Namespace, work: Path, record: dict) -> None:
    json_path, log = work / f"{grading.name}.json", work / f"{grading.name}.log"
    line = command(grading, args.python, args.profile, args.device, json_path)
    record.update(name=grading.name, command=shlex.join(line), expect=grading.expect)
    started = time.perf_counter()
    with log.open("w") as handle:
        try:
            completed = subprocess.run(["timeout", "--kill-after=5", str(int(args.total_seconds)), *line],
                                       stdout=handle, stderr=subprocess.STDOUT, cwd=common.REPO,
                                       timeout=args.total_seconds + 30)
            record["rc"] = completed.returncode
        except subprocess.TimeoutExpired:
            record["rc"] = 137
    record["seconds"] = round(time.perf_counter() - started, 1)
    if json_path.is_file():
        record.update(outcome(grading, json.loads(json_path.read_text())))
    else:
        record.update(as_expected=False, error=log.read_text(errors="replace")[-2000:])


def markdown(summary: dict) -> str:
    lines = [f"Grading in the sandbox, `--profile {summary['profile']} --device {summary['device']}` "
             f"({summary['machine']}):", "",
             "| Grading | Expected | Score | Sandbox | Wall time | As expected |", "|---|---|---|---|---|---|"]
    for record in summary["gradings"]:
        score = (f"{record['score']:g} / {record['max_score']:g}" if record.get("score") is not None else "—")
        lines.append(f"| {record['name']} | {record['expect']} | {score} | {record.get('sandbox') or '—'} | "
                     f"{record.get('seconds', '—')} s | {'yes' if record.get('as_expected') else '**no**'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for the results (default: $OUT)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the grader")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    parser.add_argument("--profile", default=None, help="default: gpu (cpu with --smoke)")
    parser.add_argument("--total-seconds", type=float, default=330, help="every grading ends within this many seconds")
    parser.add_argument("--only", nargs="+", choices=[g.name for g in GRADINGS], default=None)
    parser.add_argument("--smoke", action="store_true",
                        help="CPU: the sandbox view only (proves the pipeline in seconds)")
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("--out (or $OUT) is required")
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    args.profile = args.profile or ("cpu" if args.smoke else "gpu")
    names = args.only or (SMOKE_GRADINGS if args.smoke else [g.name for g in GRADINGS])
    gradings = [grading for grading in GRADINGS if grading.name in names]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = common.cpu_model()
    try:
        machine = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=30).stdout.strip() or machine
    except (OSError, subprocess.TimeoutExpired):
        pass
    records = [{} for _ in gradings]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gpu-grading-") as folder:
        threads = [threading.Thread(target=run_grading, args=(grading, args, Path(folder), record))
                   for grading, record in zip(gradings, records)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        logs = {path.stem: path.read_text(errors="replace")[-4000:] for path in Path(folder).glob("*.log")}
    summary = {"machine": machine, "profile": args.profile, "device": args.device,
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
               "wall_seconds": round(time.time() - started, 1), "gradings": records, "log_tails": logs}
    (out / "gpu_grading.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "gpu_grading.md").write_text(markdown(summary))
    print(markdown(summary))
    unexpected = [record["name"] for record in records if not record.get("as_expected")]
    if unexpected:
        print(f"not as expected: {', '.join(unexpected)} (see gpu_grading.json)", file=sys.stderr)
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
