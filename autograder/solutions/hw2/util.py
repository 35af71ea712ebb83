"""Code shared by protonet.py and maml.py (provided): accuracy, command-line flags, the train / validate / test loop.

A model plugs into the loop by being a *learner*: an object with

    name: str                     "protonet" or "maml", used in messages and results.json
    query_metric: str             key of the metric reported as the test accuracy
    device: torch.device
    train_step(task_batch) -> dict[str, Tensor]    one optimizer step; 0-dim detached metrics
    evaluate(task_batch) -> dict[str, Tensor]      metrics without updating anything
    state_dict() -> dict                           everything needed to resume (weights and optimizer)
    load_state_dict(state, with_optimizer)         restore it (the weights only when with_optimizer is False)
    describe() -> dict            settings worth recording in results.json (batch-norm mode, variant, ...)

Metrics stay on the device as tensors; the loop converts them to numbers only every `--log_interval` steps, so a
GPU is never made to wait for the host on ordinary steps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from omniglot_data.experiment import (
    add_compile_argument,
    add_threads_argument,
    check_new_run_folder,
    configure_threads,
    describe_device,
    format_accuracy,
    format_peak_memory,
    latest_checkpoint,
    load_checkpoint,
    mean_confidence_interval,
    peak_memory,
    plot_learning_curves,
    plot_with_intervals,
    progress_bar,
    resolve_device,
    run_name,
    save_checkpoint,
    seed_everything,
    write_json,
    write_new_json,
)

import omniglot

# Streams of the episode sampler: training uses [seed, first_step] so a resumed run does not replay its tasks.
VALIDATION_STREAM = 1_000_003
TEST_STREAM = 2_000_003
RESULTS_FILE = "results.json"
CURVES_FILE = "learning_curves.png"
SWEEP_FILE = "kshot_sweep.png"
# Arguments that do not change what is trained: left out of the run folder's name (`run_folder`). The training length
# is among them: a longer run of the same settings continues the same folder (--resume).
NOT_HYPERPARAMETERS = ("log_dir", "device", "threads", "compile", "test", "test_sweep", "sweep_num_query", "resume",
                       "checkpoint_step", "num_train_iterations", "time_limit_s", "log_interval", "val_interval",
                       "num_val_tasks", "save_interval", "num_test_tasks")


def score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of rows of `logits` [examples, classes] whose argmax equals `labels` [examples], as a 0-dim tensor.

    The result is detached and stays on the logits' device (call float() on it when you need a number).
    """
    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"score: expected logits [examples, classes] and labels [examples], got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    return (logits.detach().argmax(dim=-1) == labels).to(torch.float32).mean()


def stack_metric(values, device=None) -> torch.Tensor:
    """A (nested) list of accuracies given as floats or 0-dim tensors, as one float32 tensor (no host sync)."""
    if isinstance(values, (list, tuple)):
        return torch.stack([stack_metric(value, device) for value in values])
    return torch.as_tensor(values, dtype=torch.float32, device=device).detach()


def add_common_arguments(parser: argparse.ArgumentParser, batch_size: int, num_train_iterations: int) -> None:
    """The flags both training scripts share (CS330's names, plus device, seed and bookkeeping)."""
    parser.add_argument("--log_dir", type=str, default=None, help="directory for logs, checkpoints and results "
                        "(default: logs/<model>/<every hyperparameter that differs from its default>, or "
                        "logs/<model>/defaults; --test finds the run trained with the same flags)")
    parser.add_argument("--num_way", type=int, default=5, help="number of classes in a task")
    parser.add_argument("--num_support", type=int, default=1, help="number of support examples per class in a task")
    parser.add_argument("--num_query", type=int, default=15, help="number of query examples per class in a task")
    parser.add_argument("--batch_size", type=int, default=batch_size, help="number of tasks per outer-loop update")
    parser.add_argument("--num_train_iterations", type=int, default=num_train_iterations,
                        help="number of outer-loop updates to train for")
    parser.add_argument("--test", default=False, action="store_true", help="evaluate a checkpoint on the test split "
                        "instead of training")
    parser.add_argument("--test_sweep", type=str, default=None, metavar="K1,K2,...",
                        help="evaluate the run trained with these flags on the test split once per support size K "
                        "(e.g. 1,2,4,6,8,10, with --sweep_num_query queries per class), write a results file per K "
                        "and plot accuracy against K into kshot_sweep.png")
    parser.add_argument("--sweep_num_query", type=int, default=10, help="queries per class of --test_sweep's tasks "
                        "(K + queries must fit the 20 drawings of a character)")
    parser.add_argument("--resume", default=False, action="store_true", help="continue training the run in the "
                        "run folder (without it, training into a folder that holds a run stops with an error)")
    parser.add_argument("--checkpoint_step", type=int, default=-1, help="checkpoint (number of training steps) to "
                        "resume training from (with --resume) or to test; -1: the latest one in the run folder")
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    add_threads_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and every episode sampler")
    parser.add_argument("--augment_rotations", default=False, action="store_true",
                        help="add 90/180/270-degree rotations of the training characters as extra classes")
    parser.add_argument("--log_interval", type=int, default=10, help="steps between training-metric logs")
    parser.add_argument("--val_interval", type=int, default=100, help="steps between validations")
    parser.add_argument("--num_val_tasks", type=int, default=160, help="tasks per validation")
    parser.add_argument("--save_interval", type=int, default=500, help="steps between checkpoints")
    parser.add_argument("--num_test_tasks", type=int, default=1000, help="tasks used by --test")
    parser.add_argument("--time_limit_s", type=float, default=0.0, help="stop training (validating, checkpointing "
                        "and writing results as at the last step) once this many seconds have passed; 0: no limit")
    add_compile_argument(parser, "the network")


def check_arguments(args: argparse.Namespace) -> None:
    positive = ("num_way", "num_support", "batch_size", "log_interval", "val_interval", "num_val_tasks",
                "save_interval", "num_test_tasks")
    for name in positive:
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name}: expected a positive integer, got {getattr(args, name)}")
    if args.num_query < 1:
        raise SystemExit(f"--num_query: expected a positive integer, got {args.num_query}")
    if args.num_train_iterations < 0:
        raise SystemExit(f"--num_train_iterations: expected >= 0, got {args.num_train_iterations}")
    if args.sweep_num_query < 1:
        raise SystemExit(f"--sweep_num_query: expected a positive integer, got {args.sweep_num_query}")
    sweep_sizes(args)  # fail on a malformed --test_sweep before any work


def sweep_sizes(args: argparse.Namespace) -> list[int]:
    """The support sizes K of --test_sweep ([] without it)."""
    if args.test_sweep is None:
        return []
    try:
        sizes = [int(part) for part in args.test_sweep.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise SystemExit(f"--test_sweep: expected comma-separated positive integers such as 1,2,4,6,8,10, got "
                         f"{args.test_sweep!r}")
    return sizes


def run_folder(model: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """--log_dir, or logs/<model>/<run_name>: named by the hyperparameters that differ from the parser's defaults."""
    return args.log_dir or str(Path("logs") / model / run_name(parser, args, NOT_HYPERPARAMETERS))


def prepare(args: argparse.Namespace) -> torch.device:
    """Check the flags, seed everything, set the threads and pick the device (call before building the model)."""
    check_arguments(args)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    args.threads = configure_threads(args.threads)
    print(describe_device(device, args.threads), flush=True)
    return device


def _loader(args, split: str, num_tasks: int, batch_size: int, seed, device):
    try:
        return omniglot.get_omniglot_dataloader(
            split, batch_size, args.num_way, args.num_support, args.num_query, num_tasks, seed=seed,
            augment_rotations=args.augment_rotations and split == "train", device=device,
        )
    except ValueError as error:  # impossible episode shapes: say which flags, without a traceback
        raise SystemExit(f"--num_way {args.num_way} --num_support {args.num_support} --num_query "
                         f"{args.num_query} on the {split} split: {error}") from None


def _restore(learner, log_dir: Path, checkpoint_step: int, required: bool) -> tuple[int, dict]:
    """Load checkpoint `checkpoint_step` (-1: the latest); return (steps already done, saved history)."""
    if checkpoint_step >= 0:
        path = log_dir / f"state{checkpoint_step}.pt"
        if not path.is_file():
            raise SystemExit(f"--checkpoint_step {checkpoint_step}: {path} does not exist")
    else:
        found = latest_checkpoint(log_dir)
        if found is None:
            if required:
                raise SystemExit(f"no checkpoint state<step>.pt in {log_dir}: train first, or pass --log_dir")
            return 0, {"train": {}, "val": {}}
        path = found[1]
    state = load_checkpoint(path, map_location=learner.device)
    # Testing needs only the weights: a test run may differ in flags that only shape the optimizer.
    learner.load_state_dict(state["learner"], with_optimizer=not required)
    print(f"loaded {path} (step {int(state['step'])})")
    history = state.get("history", {"train": {}, "val": {}})
    for split, points in history.items():
        if isinstance(points, list):  # checkpoints of older kits kept only the query accuracy
            history[split] = {learner.query_metric: points}
    return int(state["step"]), history


def _average(batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Mean of each metric over a list of metric dicts, with a single device-to-host copy."""
    keys = list(batches[0])
    means = torch.stack([torch.stack([batch[key].float() for batch in batches]).mean() for key in keys])
    return dict(zip(keys, means.tolist()))


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{key.split('/')[-1]}: {value:.3f}" for key, value in metrics.items())


def validate(learner, loader) -> dict[str, float]:
    return _average([learner.evaluate(task_batch) for task_batch in loader])


def train(learner, args: argparse.Namespace, log_dir: Path) -> dict:
    """Train (or resume) for args.num_train_iterations steps; validate, log, checkpoint; return the summary."""
    from torch.utils.tensorboard import SummaryWriter

    if args.resume:
        start_step, history = _restore(learner, log_dir, args.checkpoint_step, required=False)
    else:
        start_step, history = 0, {"train": {}, "val": {}}
    total = args.num_train_iterations
    if start_step >= total:
        print(f"{log_dir}: already trained for {start_step} >= {total} steps; nothing to do")
    device = learner.device
    train_loader = _loader(args, "train", max(total - start_step, 1) * args.batch_size, args.batch_size,
                           [args.seed, start_step], device)
    val_loader = _loader(args, "val", args.num_val_tasks, args.batch_size, [args.seed, VALIDATION_STREAM], device)
    writer = SummaryWriter(log_dir=str(log_dir))
    pending: list[dict[str, torch.Tensor]] = []
    started = time.perf_counter()
    step = start_step
    progress = progress_bar(total, start_step, f"train {learner.name}")
    batches = iter(train_loader)
    val_metrics: dict[str, float] = {}
    while step < total:
        pending.append(learner.train_step(next(batches)))
        step += 1
        progress.update(1)
        last = step == total or (args.time_limit_s > 0 and time.perf_counter() - started >= args.time_limit_s)
        if step % args.log_interval == 0 or last:
            metrics = _average(pending)
            pending.clear()
            for key, value in metrics.items():
                writer.add_scalar(f"train/{key}", value, step)
            _record(history["train"], step, metrics)
            # The query accuracy first: a narrow terminal cuts the end of the line.
            progress.set_postfix_str(_format({learner.query_metric: metrics[learner.query_metric], **metrics}))
        if step % args.val_interval == 0 or last:
            val_metrics = validate(learner, val_loader)
            for key, value in val_metrics.items():
                writer.add_scalar(f"val/{key}", value, step)
            _record(history["val"], step, val_metrics)
            progress.write(f"step {step}: validation {_format(val_metrics)}", file=sys.stderr)
        if step % args.save_interval == 0 or last:
            save_checkpoint(log_dir, step, {"step": step, "learner": learner.state_dict(), "history": history})
        if last:
            break
    if step == start_step:  # nothing to train (e.g. --num_train_iterations 0): still leave a testable checkpoint
        val_metrics = validate(learner, val_loader)
        save_checkpoint(log_dir, step, {"step": step, "learner": learner.state_dict(), "history": history})
    progress.close()
    writer.close()
    wall_time = time.perf_counter() - started
    plot_learning_curves(log_dir / CURVES_FILE, _curve_panels(history),
                         title=f"{learner.name} {args.num_way}-way {args.num_support}-shot, run {log_dir.name}")
    memory = peak_memory(device)
    print(f"trained {step - start_step} steps in {wall_time:.0f} s; {format_peak_memory(memory)}")
    if step < total:  # say so: a curve that stops early otherwise reads like the whole run
        print(f"stopped by --time_limit_s at step {step} of {total}; the same command with --resume continues it")
    return {
        "steps": step,
        "stopped_by_time_limit": step < total,
        "resumed_from_step": start_step,
        "wall_time_s": round(wall_time, 2),
        "final_validation": val_metrics,
        "best_validation_" + learner.query_metric: max(
            (value for _, value in history["val"].get(learner.query_metric, [])), default=None),
        **memory,
    }


def _record(series: dict[str, list], step: int, metrics: dict[str, float]) -> None:
    """Append one logged step to a history {metric: [[step, value], ...]} (what checkpoints keep and plots show)."""
    for key, value in metrics.items():
        series.setdefault(key, []).append([step, value])


def _curve_panels(history: dict) -> dict[str, dict[str, list]]:
    """The learning-curve panels: every loss, then every accuracy (support and query), training and validation."""
    panels: dict[str, dict[str, list]] = {"loss": {}, "accuracy": {}}
    for split in ("train", "val"):
        for key, points in history[split].items():
            panel = "loss" if "loss" in key else "accuracy"
            panels[panel][f"{split} {key.removeprefix('accuracy/')}"] = points
    return panels


def test(learner, args: argparse.Namespace, log_dir: Path) -> dict:
    """Accuracy on args.num_test_tasks test tasks (one task per evaluation) with a 95% confidence interval."""
    step, _ = _restore(learner, log_dir, args.checkpoint_step, required=True)
    loader = _loader(args, "test", args.num_test_tasks, 1, [args.seed, TEST_STREAM], learner.device)
    progress = progress_bar(args.num_test_tasks, 0, f"test {args.num_way}-way {args.num_support}-shot")
    per_task = []
    for task_batch in loader:
        per_task.append(learner.evaluate(task_batch))
        progress.update(1)
    progress.close()
    values = torch.stack([metrics[learner.query_metric] for metrics in per_task]).tolist()
    mean, half_width = mean_confidence_interval(values)
    memory = peak_memory(learner.device)
    print(f"test {learner.query_metric} over {len(values)} tasks ({args.num_way}-way {args.num_support}-shot, "
          f"{args.num_query} queries per class): {format_accuracy(mean, half_width)} (step {step}); "
          f"{format_peak_memory(memory)}")
    others = {key: float(np.mean([float(m[key]) for m in per_task])) for key in per_task[0]}
    return {"checkpoint_step": step, "num_tasks": len(values), "accuracy": mean, "ci95": half_width,
            "metric": learner.query_metric, "mean_metrics": others, "num_way": args.num_way,
            "num_support": args.num_support, "num_query": args.num_query, **memory}


def test_configuration(args: argparse.Namespace, step: int) -> str:
    """Name of a test's own results file: the episode shape, the task count and seed, the checkpoint."""
    return (f"test.way_{args.num_way}.support_{args.num_support}.query_{args.num_query}.tasks_{args.num_test_tasks}"
            f".seed_{args.seed}.step_{step}")


def run(learner, args: argparse.Namespace, log_dir: str) -> dict:
    """Train, test or sweep according to the flags; merge the outcome into <log_dir>/results.json and return it.

    Every test (and every K of a sweep) also writes its own file test.<configuration>.json, never overwritten.
    """
    import copy
    import json

    log_dir = Path(log_dir)
    sizes = sweep_sizes(args)
    testing = args.test or bool(sizes)
    if testing and latest_checkpoint(log_dir) is None and args.checkpoint_step < 0:
        raise SystemExit(f"no checkpoint state<step>.pt in {log_dir}: train with the same flags first (without "
                         "--test), or point --log_dir at the run to test")
    if not testing:
        check_new_run_folder(log_dir, args.resume)
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"run folder: {log_dir}", flush=True)
    results_path = log_dir / RESULTS_FILE
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["model"] = learner.name
    configurations = []
    for size in sizes or [None]:
        run_args = args
        if size is not None:
            run_args = copy.copy(args)
            run_args.num_support, run_args.num_query = size, args.sweep_num_query
        phase = "test" if testing else "train"
        outcome = (test if testing else train)(learner, run_args, log_dir)
        # After the run: the settings then include what was learned or loaded (e.g. the learned inner learning rates).
        outcome.update(settings=learner.describe(), arguments=vars(run_args), device=str(learner.device),
                       torch=torch.__version__)
        results[phase] = outcome
        if testing:  # keep every test configuration (e.g. K-shot generalisation), not only the latest
            name = test_configuration(run_args, outcome["checkpoint_step"])
            print(f"results of this test: {write_new_json(log_dir, name, {'model': learner.name, 'test': outcome})}")
            results.setdefault("tests", {})[name] = outcome
            configurations.append(outcome)
    if sizes:
        sweep = [(c["num_support"], 100 * c["accuracy"], 100 * c["ci95"]) for c in configurations]
        plot = plot_with_intervals(
            log_dir / SWEEP_FILE, sweep, xlabel="K: support examples per class at test time",
            title=f"{learner.name}, run {log_dir.name} (step {configurations[0]['checkpoint_step']}): "
                  f"{args.num_way}-way K-shot test accuracy, {args.sweep_num_query} queries per class, "
                  f"{args.num_test_tasks} tasks per K", ylabel="test query accuracy % (95% CI)")
        print(f"K-shot sweep: {plot}")
    write_json(results_path, results)
    print(f"results: {results_path}")
    return results
