"""The training scripts' tools (omniglot_data.experiment and their use in hw1.py, hw2/util.py): threads, run folders
named by their hyperparameters, no silent overlay of a run, a results file per test, the K-shot sweep, peak memory,
learning curves of every metric, and HW1's --num_layers with every layer initialised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omniglot_data import experiment

REPO = Path(__file__).resolve().parents[1]
HW1_DIR = REPO / "autograder" / "solutions" / "hw1"
HW2_DIR = REPO / "autograder" / "solutions" / "hw2"
DATA_READY = (REPO / "data" / "omniglot28.npz").is_file()
needs_data = pytest.mark.skipif(not DATA_READY, reason="Omniglot data not built (bash data_download.sh)")
HW1_TINY = ["--meta_batch_size", "4", "--hidden_dim", "8", "--eval_every", "2", "--checkpoint_every", "2",
            "--num_val_episodes", "8", "--num_test_episodes", "8", "--train_steps", "2", "--device", "cpu"]
HW2_TINY = ["--device", "cpu", "--num_way", "3", "--num_query", "2", "--batch_size", "2", "--val_interval", "2",
            "--num_val_tasks", "2", "--log_interval", "1", "--save_interval", "2", "--num_train_iterations", "2"]


def script(folder: Path, name: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    environment.pop("OMP_NUM_THREADS", None)  # the scripts' own default applies
    return subprocess.run([sys.executable, str(folder / name), *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=environment)


# ---------------------------------------------------------------------------------------------- helpers


def test_run_name_lists_only_changed_hyperparameters(reference_modules):
    import hw1
    import maml

    assert Path(hw1.parse_args([]).log_dir) == Path("runs/hw1/defaults")
    changed = hw1.parse_args(["--num_shot", "2", "--num_layers", "2", "--device", "cpu", "--threads", "1",
                              "--train_steps", "10", "--num_val_episodes", "64"])
    assert Path(changed.log_dir).name == "num_shot_2.num_layers_2", changed.log_dir
    parser = maml.build_parser()
    args = parser.parse_args(["--inner_lr", "0.04", "--num_inner_steps", "5", "--learn_inner_lrs", "--test",
                              "--num_test_tasks", "10", "--num_train_iterations", "7", "--time_limit_s", "5"])
    assert experiment.run_name(parser, args, maml.util.NOT_HYPERPARAMETERS) == \
        "num_inner_steps_5.inner_lr_0.04.learn_inner_lrs"
    assert maml.util.run_folder("maml", parser, parser.parse_args([])) == str(Path("logs/maml/defaults"))


def test_a_run_folder_is_never_silently_reused(tmp_path):
    experiment.check_new_run_folder(tmp_path / "absent", resume=False)
    (tmp_path / "run").mkdir()
    experiment.check_new_run_folder(tmp_path / "run", resume=False)  # empty: fine
    (tmp_path / "run" / "state5.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"run folder .*run already holds a run \(state5.pt\).*--resume"):
        experiment.check_new_run_folder(tmp_path / "run", resume=False)
    experiment.check_new_run_folder(tmp_path / "run", resume=True)


def test_results_files_are_never_overwritten(tmp_path):
    first = experiment.write_new_json(tmp_path, "test.a", {"accuracy": 0.1})
    second = experiment.write_new_json(tmp_path, "test.a", {"accuracy": 0.2})
    assert (first.name, second.name) == ("test.a.json", "test.a-2.json")
    assert json.loads(first.read_text()) == {"accuracy": 0.1} and json.loads(second.read_text()) == {"accuracy": 0.2}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["test.a-2.json", "test.a.json"]  # no temp files


def test_threads_flag_environment_and_default(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        assert experiment.configure_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(SystemExit, match="--threads: expected a positive integer, got 0"):
            experiment.configure_threads(0)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert experiment.configure_threads(None) == experiment.default_threads() == torch.get_num_threads()
        assert 1 <= experiment.default_threads() <= max(1, experiment.usable_cores() // 2)
        line = experiment.describe_device(torch.device("cpu"), 1)
        assert line.startswith("device: cpu, 1 torch thread (") and "--threads N" in line, line
    finally:
        torch.set_num_threads(before)


def test_peak_memory_is_measured():
    import torch

    peak = experiment.peak_memory(torch.device("cpu"))
    assert peak["peak_cpu_rss_mib"] > 10 and peak["peak_cuda_allocated_mib"] is None, peak
    assert experiment.format_peak_memory(peak).startswith("peak memory: CPU RSS ")


def test_progress_lines_outside_a_terminal_are_plain_lines(capsys):
    progress = experiment.progress_bar(10, 0, "train")
    progress.update(1)
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines and all("\r" not in line for line in lines), lines
    assert lines[0].startswith("train:") and "0/10" in lines[0], lines  # shown before the first step ends
    assert "1/10" in lines[-1], lines


def test_learning_curves_have_one_panel_per_metric_group(tmp_path):
    from PIL import Image

    points = [(1, 0.5), (2, 0.6)]
    one = experiment.plot_learning_curves(tmp_path / "one.png", {"accuracy": {"train query": points}}, "t")
    two = experiment.plot_learning_curves(
        tmp_path / "two.png", {"loss": {"train loss": points, "val loss": points},
                               "accuracy": {"train query": points, "val query": points}}, "a long title " * 20)
    assert Image.open(two).size[0] > 1.8 * Image.open(one).size[0]


# ---------------------------------------------------------------------------------------------- HW1


def test_initialisation_covers_every_lstm_layer_and_keeps_the_one_layer_draws(reference_modules):
    import torch
    from torch import nn

    import hw1

    torch.manual_seed(0)
    deep = nn.LSTM(6, 5, num_layers=2)
    hw1.initialize_weights(deep)
    for name, parameter in deep.named_parameters():
        if name.startswith("bias"):
            assert torch.count_nonzero(parameter) == 0, f"{name} not zeroed"
    # Xavier-uniform bound for layer 1's weight_ih [4H, H]: sqrt(6 / (H + 4H)); PyTorch's own init is 1/sqrt(H).
    assert deep.weight_ih_l1.abs().max() > 1 / 5 ** 0.5

    torch.manual_seed(0)
    single = nn.LSTM(6, 5)
    hw1.initialize_weights(single)
    torch.manual_seed(0)
    expected = nn.LSTM(6, 5)
    nn.init.xavier_uniform_(expected.weight_hh_l0)  # CS330's order: the grader's calibration depends on it
    nn.init.xavier_uniform_(expected.weight_ih_l0)
    assert torch.equal(single.weight_hh_l0, expected.weight_hh_l0)
    assert torch.equal(single.weight_ih_l0, expected.weight_ih_l0)

    model = hw1.build_model("lstm", 3, 2, 8, num_layers=2)
    assert model.layer1.num_layers == 2 and model.layer2.num_layers == 1
    assert model(torch.zeros(2, 2, 3, 784), torch.zeros(2, 2, 3, 3)).shape == (2, 2, 3, 3)
    with pytest.raises(SystemExit):
        hw1.parse_args(["--model", "attention", "--num_layers", "2"])


@needs_data
def test_hw1_run_folder_records_and_resume(tmp_path):
    first = script(HW1_DIR, "hw1.py", *HW1_TINY, "--num_layers", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("device: cpu, "), first.stdout
    run = tmp_path / "runs" / "hw1" / "meta_batch_size_4.hidden_dim_8.num_layers_2"
    results = json.loads((run / "results.json").read_text())
    assert results["num_layers"] == 2 and results["num_val_episodes"] == 8 and results["threads"] >= 1
    assert results["peak_cpu_rss_mib"] > 0 and results["train_peak_memory"]["peak_cpu_rss_mib"] > 0
    assert "peak memory: CPU RSS" in first.stdout
    assert json.loads((run / "test.episodes_8.seed_123.step_2.json").read_text())["test_accuracy"] == \
        results["test_accuracy"]
    import torch

    curves = torch.load(run / "state2.pt", weights_only=True)["curves"]
    assert set(curves) == {"train loss", "train accuracy", "val loss", "val accuracy"}, set(curves)

    again = script(HW1_DIR, "hw1.py", *HW1_TINY, "--num_layers", "2", cwd=tmp_path)
    assert again.returncode != 0 and f"run folder {Path('runs/hw1') / run.name} already holds a run" in again.stderr
    assert "Traceback" not in again.stderr, again.stderr
    longer = script(HW1_DIR, "hw1.py", *HW1_TINY[:-4], "--train_steps", "4", "--device", "cpu", "--num_layers", "2",
                    "--resume", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    assert (run / "test.episodes_8.seed_123.step_4.json").is_file() and (run / "state4.pt").is_file()


# ---------------------------------------------------------------------------------------------- HW2


def test_hw2_curves_show_every_metric(reference_modules):
    import util

    history = {"train": {}, "val": {}}
    metrics = {"loss": 1.0, "accuracy/pre_adapt_support": 0.2, "accuracy/post_adapt_support": 0.9,
               "accuracy/post_adapt_query": 0.8}
    util._record(history["train"], 10, metrics)
    util._record(history["val"], 10, metrics)
    panels = util._curve_panels(history)
    assert set(panels["loss"]) == {"train loss", "val loss"}
    assert set(panels["accuracy"]) == {f"{split} {name}" for split in ("train", "val")
                                       for name in ("pre_adapt_support", "post_adapt_support", "post_adapt_query")}


@needs_data
def test_hw2_test_finds_its_run_keeps_every_test_and_sweeps(tmp_path):
    trained = script(HW2_DIR, "protonet.py", *HW2_TINY, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run = tmp_path / "logs" / "protonet" / "num_way_3.num_query_2.batch_size_2"
    assert trained.stdout.startswith("device: cpu, "), trained.stdout
    assert json.loads((run / "results.json").read_text())["train"]["peak_cpu_rss_mib"] > 0
    import torch

    history = torch.load(run / "state2.pt", weights_only=True)["history"]
    assert {"loss", "accuracy/support", "accuracy/query"} <= set(history["train"]) & set(history["val"]), history

    again = script(HW2_DIR, "protonet.py", *HW2_TINY, cwd=tmp_path)
    assert again.returncode != 0 and "already holds a run" in again.stderr and "--resume" in again.stderr

    for _ in range(2):  # the same test twice: two files, neither overwritten
        tested = script(HW2_DIR, "protonet.py", *HW2_TINY, "--test", "--num_test_tasks", "3", cwd=tmp_path)
        assert tested.returncode == 0, tested.stderr
    name = "test.way_3.support_1.query_2.tasks_3.seed_0.step_2"
    assert (run / f"{name}.json").is_file() and (run / f"{name}-2.json").is_file()
    assert "2 queries per class" in tested.stdout and "peak memory" in tested.stdout

    swept = script(HW2_DIR, "protonet.py", *HW2_TINY, "--test_sweep", "1,3", "--sweep_num_query", "4",
                   "--num_test_tasks", "3", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert (run / "kshot_sweep.png").is_file()
    for size in (1, 3):
        saved = json.loads((run / f"test.way_3.support_{size}.query_4.tasks_3.seed_0.step_2.json").read_text())
        assert saved["test"]["num_support"] == size and saved["test"]["num_query"] == 4

    untrained = script(HW2_DIR, "protonet.py", *HW2_TINY, "--seed", "7", "--test", cwd=tmp_path)
    assert untrained.returncode != 0 and "num_way_3.num_query_2.batch_size_2.seed_7" in untrained.stderr
    bad = script(HW2_DIR, "protonet.py", *HW2_TINY, "--test_sweep", "1,x", cwd=tmp_path)
    assert bad.returncode != 0 and "--test_sweep: expected comma-separated positive integers" in bad.stderr

    # A run the time budget stops says so (its curve would otherwise read like the whole run) and how to go on.
    stopped = script(HW2_DIR, "protonet.py", *HW2_TINY[:-2], "--num_train_iterations", "50", "--time_limit_s", "0.01",
                     "--resume", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped by --time_limit_s at step 3 of 50; the same command with --resume continues it" in stopped.stdout


@needs_data
def test_threads_bench_prints_a_ratio_per_thread_count():
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    environment.pop("OMP_NUM_THREADS", None)
    completed = subprocess.run([sys.executable, str(REPO / "bench" / "threads.py"), "--smoke", "--models", "mann",
                                "--threads-list", "1", "2", "--seconds", "0.05", "--rounds", "1"], cwd=REPO,
                               capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("RATIO mann train steps on cpu: 1 thread / 2 threads") == 1, completed.stdout
