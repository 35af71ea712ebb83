"""The benchmark scripts still run: each one with a tiny `--smoke` budget, checked for its header and RATIO lines.

The numbers of a smoke run mean nothing; what is checked is that the scripts, the reference code they time and the
PNG baselines still fit together. The GPU driver's job table is checked against the training scripts' parsers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
DATA_READY = (REPO / "data" / "omniglot28.npz").is_file()
needs_data = pytest.mark.skipif(not DATA_READY, reason="Omniglot data not built (bash data_download.sh)")


def run_bench(*arguments: str, timeout: float = 300) -> str:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, *arguments], cwd=REPO, capture_output=True, text=True,
                               timeout=timeout, env=environment)
    assert completed.returncode == 0, f"{' '.join(arguments)} failed:\n{completed.stdout}\n{completed.stderr}"
    assert "machine:" in completed.stdout and "torch" in completed.stdout, completed.stdout
    return completed.stdout


def ratios(output: str) -> list[float]:
    return [float(match) for match in re.findall(r"^RATIO .*= ([0-9.]+)x", output, flags=re.MULTILINE)]


@needs_data
@pytest.mark.parametrize("script, expected", [("episodes.py", 2), ("train_steps.py", 3), ("compile.py", 4),
                                              ("batched_tasks.py", 2)])
def test_bench_script_prints_its_ratios(script, expected):
    found = ratios(run_bench(str(BENCH / script), "--smoke"))
    assert len(found) == expected and all(value > 0 for value in found), found


def test_gpu_grading_smoke_grades_the_sandbox_view_in_the_sandbox(sandbox, tmp_path):
    """bench/gpu_grading.py --smoke: the sandbox-view assignment, graded in bubblewrap on the CPU, gets full marks
    (no GPU, no host path, no network); its table and JSON are written. On a GPU machine the same run with
    --device cuda expects exactly one GPU."""
    import json

    completed = subprocess.run([sys.executable, str(BENCH / "gpu_grading.py"), "--smoke", "--out", str(tmp_path)],
                               cwd=REPO, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (record,) = json.loads((tmp_path / "gpu_grading.json").read_text())["gradings"]
    assert record["name"] == "sandbox_view" and record["as_expected"] and record["sandbox"] == "bwrap", record
    assert record["score"] == record["max_score"] == 4, record
    assert "| sandbox_view | full | 4 / 4 | bwrap |" in (tmp_path / "gpu_grading.md").read_text()


def test_sandbox_view_fails_without_the_sandbox(tmp_path):
    """The view's checks can fail: graded without bubblewrap, host paths and devices show and it loses points."""
    import json

    completed = subprocess.run([sys.executable, "-m", "autograder", "grade", "bench/sandbox_view/graders",
                                "bench/sandbox_view/solution", "--insecure-no-sandbox", "--json",
                                str(tmp_path / "r.json")], cwd=REPO, capture_output=True, text=True, timeout=300)
    results = json.loads((tmp_path / "r.json").read_text())
    failed = {test["name"].split(":")[0] for test in results["tests"] if test["score"] < test["max_score"]}
    assert {"test_device_nodes_are_the_standard_ones_and_the_gpu",
            "test_no_host_path_network_or_process_is_visible"} <= failed, completed.stdout


def test_grading_bench_checks_its_commands():
    graders = REPO / "autograder" / "graders"
    if not all((graders / homework / "assignment.toml").is_file() for homework in ("hw1", "hw2")):
        pytest.skip("the graders are not written yet")
    output = run_bench(str(BENCH / "grading.py"), "--dry-run")
    assert output.count("would time") == 4, output


def test_gpu_jobs_are_accepted_by_the_training_scripts(reference_modules):
    """Every command the GPU driver would run (train and test) parses with its script's own argument parser."""
    import gpu_profile
    import hw1
    import maml
    import protonet
    import util

    parsers = {"hw1.py": hw1.parse_args, "protonet.py": protonet.parse_arguments, "maml.py": maml.parse_arguments}
    names = [job.name for job in gpu_profile.JOBS]
    assert len(names) == len(set(names)) == 14, names
    for smoke, batched in (([], ()), (["--smoke"], ()), ([], ("protonet", "maml"))):
        options = gpu_profile.build_parser().parse_args(["--out", "unused", *smoke])
        gpu_profile.apply_smoke(options)
        options.batched_models = batched
        for job in gpu_profile.JOBS + gpu_profile.HANDOUT_JOBS:
            train = gpu_profile.train_command(job, sys.executable, "cuda", Path("runs") / job.name, options, 100.0)
            test = gpu_profile.test_command(job, sys.executable, "cuda", Path("runs") / job.name, options)
            if job.script.stem in batched:  # bench/batched_tasks.py train <script> <the script's flags>
                assert train[1:4] == [str(gpu_profile.BATCHED_TASKS), "train", job.script.name], train
                train = [train[0], job.script.name, *train[4:]]
            for command, testing in ((train, False), (test, True)):
                parsed = parsers[job.script.name](command[2:])  # hw1's checkpoint tester takes hw1.py's flags
                if job.homework == "hw2":
                    util.check_arguments(parsed)
                    assert parsed.test == testing, command
                    if not testing:
                        assert parsed.time_limit_s == 100 - gpu_profile.TIME_LIMIT_MARGIN_S, command


def test_gpu_rows_say_whether_they_reached_their_goal(reference_modules):
    import gpu_profile

    goals = {job.name: job.target_accuracy for job in gpu_profile.JOBS if job.target_accuracy}
    assert goals == {"mann_K1_N2": 96.0, "protonet_5w1s": 98.5, "protonet_5w5s": 99.5, "maml_5w1s": 98.5,
                     "maml_5w5s": 99.5}, goals
    assert all("--augment_rotations" in job.flags for job in gpu_profile.JOBS if job.homework == "hw2")
    row = {"target_accuracy": 98.5, "ci95": 0.003}
    assert [gpu_profile.reached({**row, "accuracy": value}) for value in (0.99, 0.986, 0.97)] == [
        "yes", "mean only", "no"]
    assert gpu_profile.reached({"target_accuracy": 98.5}) == gpu_profile.reached({"accuracy": 0.5, "ci95": 0}) == "—"
