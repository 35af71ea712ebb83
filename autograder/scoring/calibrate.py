"""`python -m autograder calibrate hwN --profile cpu|gpu --seeds S`: measure the reference, write the bars graders use.

For every metric the assignment's grader measures (the `METRICS` of `autograder/graders/hwN/metrics.py`), the
reference solution is trained under the profile's budget from S seeds, and measured once more untrained, each time
in a fresh trusted reference worker of the grading engine, by the very function the grader test calls on the
student. The values and the bars chosen from them (autograder/scoring/calibration.py explains the rule) go to
`autograder/graders/hwN/calibration.json`, which is committed. Before that, the reference is trained once more from
the graders' own seed (0, outside the calibration seeds) and must reach the bar just chosen; otherwise nothing is
written (`check_out_of_sample`).

The metrics module contract (see docs/writing-graders.md, "Calibration and accuracy tests"):

    METRICS = {"mann_accuracy": measure_mann_accuracy}   # metric name -> measuring function
    CALL_TIMEOUT = 900                                    # optional: seconds per probe call (default 1800)

    def measure_mann_accuracy(student, reference, budget, device, *, train_seed, init_seed, eval_seed, train=True,
                              data_dir=None, notes=None) -> float

`student` and `reference` have `.run(probe, **inputs) -> dict` (the grader's fixtures, or here two reference runners),
`budget` the profile table, `device` the worker's device ("cpu" or "cuda"), `data_dir` the Omniglot data folder the
workers read (None: the default); `train=False` measures the model without training. Graders train from seed 0;
calibration seeds start at 1 so that the reference's own grading is an out-of-sample check of the bar.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.util
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from autograder import ASSIGNMENTS, GRADERS_DIR
from autograder.assignment import Assignment, AssignmentError, load_assignment
from autograder.scoring.calibration import (GRADING_TRAIN_SEED, MIN_GAP, MIN_MARGIN, STD_FACTOR, CalibrationError,
                                    calibrate_command, choose_bar, default_device, read_calibration, write_profile)
from autograder.engine.harness.runner import GraderError, OutputLog, ProbeRunner
from autograder.engine.sandbox import WorkerSpec, cuda_index, worker_device
from autograder.engine.workdir import build_worker_files

METRICS_MODULE = "metrics.py"
DEFAULT_CALL_TIMEOUT = 1800.0
EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes of seed s are drawn from s + this: fixed, and unlike any train seed


def add_arguments(parser) -> None:
    parser.add_argument("assignment", help="hw1, hw2, or a graders folder holding assignment.toml and metrics.py")
    parser.add_argument("--profile", choices=("cpu", "gpu"), required=True, help="which budget to calibrate")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds to measure (default 3, at least 2)")
    parser.add_argument("--first-seed", type=int, default=1,
                        help="seeds are FIRST..FIRST+S-1 (default 1: graders train from seed 0, kept out-of-sample)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu for --profile cpu, "
                                                       "cuda for --profile gpu)")
    parser.add_argument("--metric", action="append", default=None,
                        help="calibrate only this metric (repeatable); the profile's other bars are kept when they "
                             "were measured under the same budget, dropped otherwise")
    parser.add_argument("--dry-run", action="store_true", help="measure and print, but do not write the file")


def load_metrics(graders_dir: Path):
    """The assignment's metrics module, imported the way pytest imports grader modules (its folder on sys.path)."""
    path = graders_dir / METRICS_MODULE
    if not path.is_file():
        raise AssignmentError(f"{graders_dir} has no {METRICS_MODULE}: this assignment measures nothing to calibrate")
    sys.path.insert(0, str(graders_dir))
    try:
        spec = importlib.util.spec_from_file_location(f"_calibrated_metrics_{graders_dir.name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look a module up by name while it loads
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(graders_dir))
    metrics = getattr(module, "METRICS", None)
    if not isinstance(metrics, dict) or not metrics or not all(callable(f) for f in metrics.values()):
        raise AssignmentError(f"{path}: METRICS must be a non-empty dict of metric name -> measuring function")
    return module


class ReferenceWorkers:
    """Fresh trusted reference workers of the grading engine, one per measurement (as each grader test gets)."""

    def __init__(self, assignment: Assignment, device: str, call_timeout: float, data_dir: Path | None):
        self._root = Path(tempfile.mkdtemp(prefix=f"autograder-calibrate-{assignment.name}-"))
        files = build_worker_files(self._root / "reference", assignment.reference_sources(), assignment.probes_path)
        self.spec = WorkerSpec(files_dir=files, probes=assignment.probes, mode="trusted", device=device,
                               limits=assignment.limits, scratch_dir=self._root / "scratch", data_dir=data_dir)
        self.call_timeout = call_timeout
        self.logs: list[OutputLog] = []

    def new_runner(self) -> ProbeRunner:
        log = OutputLog(64 * 1024)
        self.logs.append(log)
        return ProbeRunner(self.spec, self.call_timeout, log, "reference")

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)


def _measure(workers: ReferenceWorkers, function, budget: dict, device: str, *, train_seed: int, eval_seed: int,
             train: bool) -> tuple[float, float]:
    # As in a grader test: one worker trains (the "student" side, here the reference), another scores the weights.
    # The initial weights come from the training seed, as the reference's own training script draws them.
    runner, scorer = workers.new_runner(), workers.new_runner()
    started = time.monotonic()
    try:
        value = function(runner, scorer, budget, device, train_seed=train_seed, init_seed=train_seed,
                         eval_seed=eval_seed, train=train,
                         data_dir=str(workers.spec.data_dir) if workers.spec.data_dir else None)
    except (GraderError, AssertionError) as error:  # AssertionError: the metric rejected the reference's output
        raise GraderError(f"the reference failed (train_seed={train_seed}, train={train}): {error}\n"
                          f"--- reference output ---\n{runner.log.text()[-4000:]}") from None
    finally:
        runner.close()
        scorer.close()
    return float(value), time.monotonic() - started


def check_out_of_sample(metric: str, value: float, threshold: float, values: list[float]) -> None:
    """Refuse a bar that the reference itself misses when trained from the seed graders use (not a calibration seed).

    A few seeds can all land on the lucky side of a budget whose outcome depends on the seed (a model that sits at
    chance for a seed-dependent number of steps); a correct submission, whose random calls differ, is then graded
    as if it were one more seed. The reference trained from the graders' own seed is that one more seed.
    """
    if value < threshold:
        raise CalibrationError(
            f"{metric}: out-of-sample check failed: the reference trained from the graders' seed "
            f"{GRADING_TRAIN_SEED} reaches {value:.4f}, below the threshold {threshold:.4f} chosen from the "
            f"calibration seeds' {[round(v, 4) for v in values]}. Under this budget the reference's accuracy depends "
            "too much on the seed to grade fairly (a correct submission would lose points): give the profile a "
            "larger training budget, or measure more seeds, and calibrate again.")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _device_name(device: str) -> str:
    if cuda_index(device) is None:
        return "cpu"
    try:
        import torch

        return torch.cuda.get_device_name(int(cuda_index(device)))
    except Exception as error:  # noqa: BLE001 - only a label in the file
        return f"cuda (name unknown: {error})"


def calibrate(assignment: Assignment, profile: str, seeds: list[int], device: str, metric_names: list[str] | None,
              data_dir: Path | None = None, log=print) -> dict:
    """Measure every metric for every seed (trained) and untrained; return the profile's calibration entry.

    Raises CalibrationError when a metric's bar cannot be chosen, GraderError when the reference fails.
    """
    module = load_metrics(assignment.graders_dir)
    metrics = module.METRICS
    names = metric_names or sorted(metrics)
    unknown = sorted(set(names) - set(metrics))
    if unknown:
        raise AssignmentError(f"unknown metric(s) {unknown}; {assignment.graders_dir / METRICS_MODULE} defines "
                              f"{sorted(metrics)}")
    budget = assignment.profile(profile)
    if not budget:
        raise AssignmentError(f"{assignment.graders_dir / 'assignment.toml'} has no [profiles.{profile}] budget")
    if data_dir is None:
        from autograder.engine.grade import default_data_dir

        data_dir = default_data_dir()
    workers = ReferenceWorkers(assignment, device, float(getattr(module, "CALL_TIMEOUT", DEFAULT_CALL_TIMEOUT)),
                               data_dir)
    worker_side_device = worker_device(device)
    entry_metrics, seconds = {}, {}
    try:
        for name in names:
            values, untrained, eval_seeds, took = [], [], [], []
            for seed in seeds:
                eval_seed = seed + EVAL_SEED_OFFSET
                value, elapsed = _measure(workers, metrics[name], budget, worker_side_device, train_seed=seed,
                                          eval_seed=eval_seed, train=True)
                base, _ = _measure(workers, metrics[name], budget, worker_side_device, train_seed=seed,
                                   eval_seed=eval_seed, train=False)
                values.append(round(value, 4))
                untrained.append(round(base, 4))
                eval_seeds.append(eval_seed)
                took.append(round(elapsed, 1))
                log(f"{assignment.name} {profile} {name} seed {seed}: {value:.4f} trained ({elapsed:.0f} s), "
                    f"{base:.4f} untrained")
            threshold, floor = choose_bar(values, untrained)
            log(f"{assignment.name} {profile} {name}: threshold {threshold:.4f}, floor {floor:.4f}")
            entry_metrics[name] = {"threshold": threshold, "floor": floor, "seeds": list(seeds), "values": values,
                                   "untrained": untrained, "eval_seeds": eval_seeds}
            if GRADING_TRAIN_SEED not in seeds:
                check_eval_seed = GRADING_TRAIN_SEED + EVAL_SEED_OFFSET
                value, elapsed = _measure(workers, metrics[name], budget, worker_side_device,
                                          train_seed=GRADING_TRAIN_SEED, eval_seed=check_eval_seed, train=True)
                took.append(round(elapsed, 1))
                log(f"{assignment.name} {profile} {name} out-of-sample check, graders' seed {GRADING_TRAIN_SEED}: "
                    f"{value:.4f} trained ({elapsed:.0f} s)")
                check_out_of_sample(name, value, threshold, values)
                entry_metrics[name]["check"] = {"train_seed": GRADING_TRAIN_SEED, "eval_seed": check_eval_seed,
                                                "value": round(value, 4)}
            seconds[name] = took
    finally:
        workers.close()
    return {
        "status": "measured",
        "budget": budget,
        "device": device,
        "device_name": _device_name(device),
        "torch": importlib.metadata.version("torch"),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "command": calibrate_command(assignment.name, profile, len(seeds), seeds[0], device),
        "rule": {"threshold": "min(values) - max(min_margin, std_factor * stdev(values))", "floor": "max(untrained)",
                 "min_margin": MIN_MARGIN, "std_factor": STD_FACTOR, "min_gap": MIN_GAP},
        "reference_sha256": {name: _sha256(path) for name, path in sorted(assignment.reference_sources().items())},
        "seconds_per_trained_run": seconds,
        "metrics": entry_metrics,
    }


def run(args) -> int:
    if args.seeds < 2:
        print("calibrate: --seeds must be at least 2 (the bar needs a spread)", file=sys.stderr)
        return 2
    device = args.device or default_device(args.profile)
    # Stopped with SIGTERM, unwind like Ctrl-C, so that the running reference worker is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cuda_index(device)
        # A bare homework name means its graders folder even where a folder of that name (the release) is in cwd.
        name = args.assignment
        assignment = load_assignment(GRADERS_DIR / name if name in ASSIGNMENTS else name)
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        entry = calibrate(assignment, args.profile, seeds, device, args.metric,
                          log=lambda line: print(line, flush=True))
    except (AssignmentError, ValueError) as error:
        print(f"calibrate: {error}", file=sys.stderr)
        return 2
    except (CalibrationError, GraderError) as error:
        print(f"calibrate: FAILED, nothing written: {error}", file=sys.stderr)
        return 1
    if args.dry_run:
        import json

        print(json.dumps(entry, indent=2))
        return 0
    previous = read_calibration(assignment.graders_dir)["profiles"].get(args.profile, {})
    if args.metric and previous.get("status") == "measured" and previous.get("budget") == entry["budget"]:
        entry["metrics"] = {**previous.get("metrics", {}), **entry["metrics"]}
        entry["seconds_per_trained_run"] = {**previous.get("seconds_per_trained_run", {}),
                                            **entry["seconds_per_trained_run"]}
    path = write_profile(assignment.graders_dir, assignment.name, args.profile, entry)
    print(f"wrote {path} ({args.profile} profile)")
    return 0
