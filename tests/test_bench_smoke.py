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
@pytest.mark.parametrize("script, expected", [("episodes.py", 2), ("train_steps.py", 3), ("compile.py", 4)])
def test_bench_script_prints_its_ratios(script, expected):
    found = ratios(run_bench(str(BENCH / script), "--smoke"))
    assert len(found) == expected and all(value > 0 for value in found), found


def test_grading_bench_checks_its_commands():
    graders = REPO / "autograder" / "graders"
    if not all((graders / homework / "assignment.toml").is_file() for homework in ("hw1", "hw2")):
        pytest.skip("the graders are not written yet")
    output = run_bench(str(BENCH / "grading.py"), "--dry-run")
    assert output.count("would time") == 4, output


# Top-level module names of the bench scripts and the homework folders: another test may import the released
# (stub) versions under the same names, so they are swapped out around the test that imports the references.
SCRIPT_MODULES = ("common", "gpu_profile", "hw1", "load_data", "maml", "omniglot", "protonet", "util")


@pytest.fixture
def reference_modules(monkeypatch):
    saved = {name: sys.modules.pop(name) for name in SCRIPT_MODULES if name in sys.modules}
    for folder in (BENCH, REPO / "autograder" / "solutions" / "hw1", REPO / "autograder" / "solutions" / "hw2"):
        monkeypatch.syspath_prepend(str(folder))
    yield
    for name in SCRIPT_MODULES:
        sys.modules.pop(name, None)
    sys.modules.update(saved)


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
    for smoke in ([], ["--smoke"]):
        options = gpu_profile.build_parser().parse_args(["--out", "unused", *smoke])
        gpu_profile.apply_smoke(options)
        for job in gpu_profile.JOBS + gpu_profile.HANDOUT_JOBS:
            train = gpu_profile.train_command(job, sys.executable, "cuda", Path("runs") / job.name, options, 100.0)
            test = gpu_profile.test_command(job, sys.executable, "cuda", Path("runs") / job.name, options)
            for command, testing in ((train, False), (test, True)):
                parsed = parsers[job.script.name](command[2:])  # hw1's checkpoint tester takes hw1.py's flags
                if job.homework == "hw2":
                    util.check_arguments(parsed)
                    assert parsed.test == testing, command
                    if not testing:
                        assert parsed.time_limit_s == 100 - gpu_profile.TIME_LIMIT_MARGIN_S, command
