"""`--compile` of the training scripts: a compiled run computes what the eager run computes, or is refused.

The runs compile with the `aot_eager` backend: it does everything `torch.compile` does up to code generation
(Dynamo's trace, AOTAutograd's forward/backward split, functionalisation of in-place ops), which is where a
compiled model can silently diverge from the eager one, in seconds instead of the minutes inductor needs on a CPU.
Inductor's own kernels are compared with eager mode by `bench/compile.py`, which also measures the speed-up.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omniglot_data.testing import store  # noqa: F401 (the fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
HW1_DIR = REPO_ROOT / "autograder" / "solutions" / "hw1"
HW2_DIR = REPO_ROOT / "autograder" / "solutions" / "hw2"
HW1_TINY = ["--device", "cpu", "--num_classes", "2", "--num_shot", "1", "--meta_batch_size", "4", "--hidden_dim",
            "16", "--train_steps", "4", "--eval_every", "2", "--checkpoint_every", "4", "--num_test_episodes", "8",
            "--seed", "5"]
HW2_TINY = ["--device", "cpu", "--num_way", "3", "--num_support", "1", "--num_query", "2", "--batch_size", "2",
            "--val_interval", "3", "--num_val_tasks", "4", "--log_interval", "3", "--save_interval", "3",
            "--num_train_iterations", "3", "--seed", "5"]
MAML_TINY = HW2_TINY + ["--num_hidden_channels", "4"]
# Same kernels, but AOTAutograd may reorder a reduction or fuse an add: agree to float32 rounding, not bitwise.
RELATIVE_TOLERANCE = 1e-4

# `store` skips every test here when the Omniglot data has not been built.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("store")]


def script(folder: Path, name: str, *arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, name, *arguments], cwd=folder, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def run_twice(folder: Path, name: str, arguments: list[str], tmp_path: Path, traced_op: str) -> tuple[dict, dict]:
    """results.json of an eager run and of the same run with `--compile aot_eager`.

    The compiled run logs the graphs Dynamo captured (TORCH_LOGS=graph_code); `traced_op` must be among them, so
    that a flag which compiles nothing (or the wrong function) cannot pass as "matches eager".
    """
    found = []
    for label, extra in (("eager", []), ("compiled", ["--compile", "aot_eager"])):
        log_dir = tmp_path / label
        completed = script(folder, name, *arguments, *extra, "--log_dir", str(log_dir),
                           env={"TORCH_LOGS": "graph_code"} if extra else None)
        assert completed.returncode == 0, f"{name} {' '.join(extra)} failed:\n{completed.stderr[-3000:]}"
        if extra:
            assert traced_op in completed.stderr, (
                f"--compile traced no graph with {traced_op}:\n{completed.stderr[-3000:]}")
        found.append(json.loads((log_dir / "results.json").read_text()))
    return found[0], found[1]


def assert_close(eager: dict, compiled: dict, what: str) -> None:
    assert eager.keys() == compiled.keys(), what
    for key, value in eager.items():
        assert math.isclose(value, compiled[key], rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-6), (
            f"{what} {key}: eager {value}, compiled {compiled[key]}")


# The LSTM layers stay eager (Dynamo leaves nn.LSTM alone): only the episode sequence around them is traced.
@pytest.mark.parametrize("model, traced_op", [("lstm", "torch.cat"), ("attention", "layer_norm")])
def test_hw1_compiled_training_matches_eager(model, traced_op, tmp_path):
    eager, compiled = run_twice(HW1_DIR, "hw1.py", [*HW1_TINY, "--model", model], tmp_path, traced_op)
    assert eager["compile"] is None and compiled["compile"] == "aot_eager"
    assert_close({key: eager[key] for key in ("test_loss", "test_accuracy", "final_val_accuracy")},
                 {key: compiled[key] for key in ("test_loss", "test_accuracy", "final_val_accuracy")}, model)


@pytest.mark.parametrize("name, arguments", [
    ("protonet.py", HW2_TINY),
    ("maml.py", [*MAML_TINY, "--first_order", "--learn_inner_lrs"]),
    ("maml.py", [*MAML_TINY, "--reptile"]),
], ids=["protonet", "fomaml", "reptile"])
def test_hw2_compiled_training_matches_eager(name, arguments, tmp_path):
    eager, compiled = run_twice(HW2_DIR, name, arguments, tmp_path, "conv2d")
    assert compiled["train"]["arguments"]["compile"] == "aot_eager"
    assert_close(eager["train"]["final_validation"], compiled["train"]["final_validation"], name)


def test_a_compiled_checkpoint_tests_in_eager_mode(tmp_path):
    log_dir = tmp_path / "run"
    trained = script(HW2_DIR, "protonet.py", *HW2_TINY, "--compile", "aot_eager", "--log_dir", str(log_dir))
    assert trained.returncode == 0, trained.stderr[-3000:]
    tested = script(HW2_DIR, "protonet.py", *HW2_TINY, "--test", "--num_test_tasks", "4", "--log_dir", str(log_dir))
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert json.loads((log_dir / "results.json").read_text())["test"]["checkpoint_step"] == 3


@pytest.mark.parametrize("variant", [[], ["--anil"], ["--imaml"]], ids=["maml", "anil", "imaml"])
def test_second_order_training_refuses_to_compile(variant, tmp_path):
    completed = script(HW2_DIR, "maml.py", *MAML_TINY, *variant, "--compile", "--log_dir", str(tmp_path / "run"))
    assert completed.returncode != 0
    assert "--compile" in completed.stderr and "pytorch/pytorch#91469" in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    assert not (tmp_path / "run").exists(), "a refused run must not leave a log folder behind"


def test_second_order_maml_may_compile_for_testing(tmp_path):
    log_dir = tmp_path / "run"
    trained = script(HW2_DIR, "maml.py", *MAML_TINY, "--log_dir", str(log_dir))
    assert trained.returncode == 0, trained.stderr[-3000:]
    for extra in ([], ["--compile", "aot_eager"]):
        tested = script(HW2_DIR, "maml.py", *MAML_TINY, "--test", "--num_test_tasks", "4", *extra,
                        "--log_dir", str(log_dir))
        assert tested.returncode == 0, tested.stderr[-3000:]
        accuracy = json.loads((log_dir / "results.json").read_text())["test"]["accuracy"]
        if not extra:
            eager_accuracy = accuracy
    assert accuracy == pytest.approx(eager_accuracy, rel=RELATIVE_TOLERANCE)


def test_unknown_backend_is_rejected_by_name():
    completed = script(HW1_DIR, "hw1.py", "--compile", "tensorrt", "--help")
    assert completed.returncode == 2 and "--compile" in completed.stderr and "inductor" in completed.stderr
