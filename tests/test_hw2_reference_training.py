"""HW2's reference training scripts end to end on tiny settings: resume, determinism, untrained baselines, errors.

The public tests already check that one short run writes a checkpoint, a plot and results; these check the parts of
the provided loop (util.py) that a student relies on without testing: resuming continues where training stopped,
the same seed gives the same numbers, and a zero-step run still leaves a checkpoint to test (the untrained baseline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omniglot_data.testing import store  # noqa: F401 (the fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "autograder" / "solutions" / "hw2"
TINY = ["--device", "cpu", "--num_way", "3", "--num_support", "1", "--num_query", "2", "--batch_size", "2",
        "--val_interval", "2", "--num_val_tasks", "2", "--log_interval", "2", "--save_interval", "2"]
TINY_MAML = TINY + ["--num_hidden_channels", "4"]

# `store` skips every test here when the Omniglot data has not been built.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("store")]


def script(name: str, *arguments: str) -> subprocess.CompletedProcess:
    completed = subprocess.run([sys.executable, name, *arguments], cwd=REFERENCE_DIR, capture_output=True, text=True,
                               timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return completed


def results(log_dir: Path) -> dict:
    return json.loads((log_dir / "results.json").read_text())


def test_training_resumes_from_the_latest_checkpoint(tmp_path):
    log_dir = tmp_path / "run"
    first = script("protonet.py", *TINY, "--num_train_iterations", "4", "--log_dir", str(log_dir))
    assert first.returncode == 0, first.stderr
    second = script("protonet.py", *TINY, "--num_train_iterations", "6", "--resume", "--log_dir", str(log_dir))
    assert second.returncode == 0, second.stderr
    assert "state4.pt" in second.stdout, f"the second run did not say it loaded state4.pt:\n{second.stdout}"
    train = results(log_dir)["train"]
    assert train["resumed_from_step"] == 4 and train["steps"] == 6, train
    assert (log_dir / "state6.pt").is_file()


def test_same_seed_same_results_and_untrained_baseline(tmp_path):
    accuracies = []
    for run in ("a", "b"):
        log_dir = tmp_path / run
        for arguments in (["--num_train_iterations", "2"], ["--test", "--num_test_tasks", "6"]):
            completed = script("maml.py", *TINY_MAML, *arguments, "--log_dir", str(log_dir))
            assert completed.returncode == 0, completed.stderr
        accuracies.append(results(log_dir)["test"]["accuracy"])
    assert accuracies[0] == accuracies[1], f"two runs with the same seed disagree: {accuracies}"

    untrained = tmp_path / "untrained"
    for arguments in (["--num_train_iterations", "0"], ["--test", "--num_test_tasks", "6"]):
        completed = script("maml.py", *TINY_MAML, *arguments, "--log_dir", str(untrained))
        assert completed.returncode == 0, completed.stderr
    assert results(untrained)["test"]["checkpoint_step"] == 0


def test_impossible_episodes_fail_with_a_one_line_message(tmp_path):
    completed = script("protonet.py", *TINY, "--num_support", "15", "--num_query", "10", "--test",
                       "--log_dir", str(tmp_path / "none"))
    assert completed.returncode != 0
    # No checkpoint exists either; whichever is reported first, it must name the problem without a traceback.
    assert "Traceback" not in completed.stderr and completed.stderr.strip(), completed.stderr


def test_variant_flags_are_exclusive_and_checked():
    both = script("maml.py", "--reptile", "--imaml", "--help")
    assert both.returncode != 0 and "not allowed with" in both.stderr
    learned = script("maml.py", *TINY_MAML, "--reptile", "--learn_inner_lrs", "--num_train_iterations", "1")
    assert learned.returncode != 0 and "--learn_inner_lrs" in learned.stderr
