# hw2/util.py: provided code. Read it, but do not change it.
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
    format_accuracy,
    latest_checkpoint,
    load_checkpoint,
    mean_confidence_interval,
    plot_learning_curves,
    resolve_device,
    save_checkpoint,
    seed_everything,
    write_json,
)

import omniglot

# Streams of the episode sampler: training uses [seed, first_step] so a resumed run does not replay its tasks.
VALIDATION_STREAM = 1_000_003
TEST_STREAM = 2_000_003
RESULTS_FILE = "results.json"
CURVES_FILE = "learning_curves.png"


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
                        "(default: logs/<model>/<settings>)")
    parser.add_argument("--num_way", type=int, default=5, help="number of classes in a task")
    parser.add_argument("--num_support", type=int, default=1, help="number of support examples per class in a task")
    parser.add_argument("--num_query", type=int, default=15, help="number of query examples per class in a task")
    parser.add_argument("--batch_size", type=int, default=batch_size, help="number of tasks per outer-loop update")
    parser.add_argument("--num_train_iterations", type=int, default=num_train_iterations,
                        help="number of outer-loop updates to train for")
    parser.add_argument("--test", default=False, action="store_true", help="evaluate a checkpoint on the test split "
                        "instead of training")
    parser.add_argument("--checkpoint_step", type=int, default=-1, help="checkpoint (number of training steps) to "
                        "resume training from or to test; -1: the latest one in --log_dir, if any")
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:N or mps")
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


def default_log_dir(model: str, args: argparse.Namespace, *settings: str) -> str:
    parts = [f"way_{args.num_way}", f"support_{args.num_support}", f"query_{args.num_query}", *settings,
             f"batch_size_{args.batch_size}", f"seed_{args.seed}"]
    return str(Path("logs") / model / ("omniglot." + ".".join(parts)))


def prepare(args: argparse.Namespace) -> torch.device:
    """Check the flags, seed everything and pick the device (call before building the model)."""
    check_arguments(args)
    seed_everything(args.seed)
    return resolve_device(args.device)


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
            return 0, {"train": [], "val": []}
        path = found[1]
    state = load_checkpoint(path, map_location=learner.device)
    # Testing needs only the weights: a test run may differ in flags that only shape the optimizer.
    learner.load_state_dict(state["learner"], with_optimizer=not required)
    print(f"loaded {path} (step {int(state['step'])})")
    return int(state["step"]), state.get("history", {"train": [], "val": []})


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
    from tqdm import tqdm

    start_step, history = _restore(learner, log_dir, args.checkpoint_step, required=False)
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
    progress = tqdm(total=total, initial=start_step, desc=f"train {learner.name}", dynamic_ncols=True,
                    disable=None if sys.stderr.isatty() else True)
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
            history["train"].append([step, metrics[learner.query_metric]])
            progress.set_postfix_str(_format(metrics))
            if progress.disable:  # no progress bar (not a terminal): keep a plain log instead
                print(f"step {step}: train {_format(metrics)}", flush=True)
        if step % args.val_interval == 0 or last:
            val_metrics = validate(learner, val_loader)
            for key, value in val_metrics.items():
                writer.add_scalar(f"val/{key}", value, step)
            history["val"].append([step, val_metrics[learner.query_metric]])
            message = f"step {step}: validation {_format(val_metrics)}"
            progress.write(message) if not progress.disable else print(message, flush=True)
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
    curves = {"train " + learner.query_metric: history["train"], "val " + learner.query_metric: history["val"]}
    plot_learning_curves(log_dir / CURVES_FILE, curves, title=f"{learner.name}: {log_dir.name}")
    return {
        "steps": step,
        "stopped_by_time_limit": step < total,
        "resumed_from_step": start_step,
        "wall_time_s": round(wall_time, 2),
        "final_validation": val_metrics,
        "best_validation_" + learner.query_metric: max((value for _, value in history["val"]), default=None),
    }


def test(learner, args: argparse.Namespace, log_dir: Path) -> dict:
    """Accuracy on args.num_test_tasks test tasks (one task per evaluation) with a 95% confidence interval."""
    from tqdm import tqdm

    step, _ = _restore(learner, log_dir, args.checkpoint_step, required=True)
    loader = _loader(args, "test", args.num_test_tasks, 1, [args.seed, TEST_STREAM], learner.device)
    per_task = [learner.evaluate(task_batch) for task_batch in tqdm(loader, desc="test", disable=None)]
    values = torch.stack([metrics[learner.query_metric] for metrics in per_task]).tolist()
    mean, half_width = mean_confidence_interval(values)
    print(f"test {learner.query_metric} over {len(values)} tasks: {format_accuracy(mean, half_width)} (step {step})")
    others = {key: float(np.mean([float(m[key]) for m in per_task])) for key in per_task[0]}
    return {"checkpoint_step": step, "num_tasks": len(values), "accuracy": mean, "ci95": half_width,
            "metric": learner.query_metric, "mean_metrics": others}


def run(learner, args: argparse.Namespace, log_dir: str) -> dict:
    """Train or test according to args.test; merge the outcome into <log_dir>/results.json and return it."""
    import json

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    results_path = log_dir / RESULTS_FILE
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    phase = "test" if args.test else "train"
    results["model"] = learner.name
    results[phase] = (test if args.test else train)(learner, args, log_dir)
    # After the run: the settings then include what was learned or loaded (e.g. the learned inner learning rates).
    results[phase].update(settings=learner.describe(), arguments=vars(args), device=str(learner.device),
                          torch=torch.__version__)
    if args.test:  # keep every test configuration (e.g. K-shot generalisation), not only the latest
        episodes = f"way_{args.num_way}.support_{args.num_support}.query_{args.num_query}"
        results.setdefault("tests", {})[episodes] = results["test"]
    write_json(results_path, results)
    print(f"results: {results_path}")
    return results
