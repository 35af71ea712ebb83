"""Calibrated accuracy bars: what the reference solution reaches under a profile's budget, and the bars graders apply.

`python -m autograder calibrate hwN --profile P --seeds S` (autograder/scoring/calibrate.py) trains the reference S times
and writes `calibration.json` next to the assignment's graders; it is committed, and grader tests read it here:

    from autograder.scoring.calibration import CalibrationError, load_bar

    bar = load_bar(GRADERS_DIR, "mann_accuracy", profile.name, budget=dict(profile))
    accuracy = ...                       # measured by the grader itself
    fraction = bar.credit(accuracy)      # 0 at or below bar.floor, 1 from bar.threshold on, linear in between

The rule that turns measurements into a bar (`choose_bar`):

- threshold = min(reference values over seeds) - max(MIN_MARGIN, STD_FACTOR * sample std of those values): a correct
  solution trained from another seed, or with another (correct) order of random calls, lands in the spread the seeds
  show; the margin also absorbs the sampling noise of the grader's secret evaluation episodes;
- floor = max(values of the same model measured untrained, i.e. with 0 training steps): what doing nothing earns;
- the bar is refused (CalibrationError) unless threshold - floor >= MIN_GAP: a budget so small that the reference
  barely beats an untrained model cannot separate working from broken code.

File layout (one file per assignment, one entry per profile; other profiles are kept when one is rewritten):

    {"assignment": "hw1", "format": 1, "profiles": {
       "cpu": {"status": "measured", "budget": {...the profile table...}, "device": "cpu", "rule": {...},
               "metrics": {"mann_accuracy": {"threshold": 0.71, "floor": 0.52, "seeds": [1, 2, 3],
                                              "values": [...], "untrained": [...], "eval_seeds": [...]}}, ...},
       "gpu": {"status": "pending", "command": "python -m autograder calibrate hw1 --profile gpu --seeds 3"}}}

A grader whose bar is missing, pending, or measured under a different budget than the one it grades with raises
CalibrationError (grader tests turn it into a GraderError: a grader problem, never the student's fault).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CALIBRATION_FILE = "calibration.json"
FORMAT = 1
MIN_MARGIN = 0.05  # accuracy points below the worst reference seed that still earn full marks
STD_FACTOR = 2.0  # ... or this many seed-to-seed standard deviations, when the seeds disagree more than that
MIN_GAP = 0.10  # the threshold must clear the untrained floor by at least this much


class CalibrationError(Exception):
    """No usable bar: not calibrated, pending, stale, or the measurements cannot separate trained from untrained."""


def default_device(profile: str) -> str:
    """The device `calibrate --profile P` trains on unless told otherwise (the budgets are in steps, not seconds, so a
    profile's bars do not depend on the device: the gpu profile may be measured on a CPU, only more slowly)."""
    return "cuda" if profile == "gpu" else "cpu"


def calibrate_command(assignment: str, profile: str, seeds: int = 3, first_seed: int = 1,
                      device: str | None = None) -> str:
    """The command that (re)measures one profile's bars; error messages, pending and measured entries quote it."""
    command = f"python -m autograder calibrate {assignment} --profile {profile} --seeds {seeds}"
    if first_seed != 1:
        command += f" --first-seed {first_seed}"
    if device is not None and device != default_device(profile):
        command += f" --device {device}"
    return command


@dataclass(frozen=True)
class Bar:
    """One metric's bar under one profile."""

    metric: str
    profile: str
    threshold: float  # full credit from here on
    floor: float  # no credit at or below this (an untrained model's level)
    values: tuple[float, ...]  # what the reference reached, one per calibration seed
    untrained: tuple[float, ...]

    def credit(self, value: float) -> float:
        """Fraction of the points for a measured `value`: linear from floor (0) to threshold (1), clipped."""
        if not math.isfinite(value) or value <= self.floor:
            return 0.0
        return min(1.0, (value - self.floor) / (self.threshold - self.floor))

    def describe(self) -> str:
        low, high = min(self.values), max(self.values)
        return (f"full credit from {self.threshold:.3f}, none at or below {self.floor:.3f} (an untrained model); "
                f"the reference reaches {low:.3f}-{high:.3f} with this budget ({self.profile} profile)")


def choose_bar(values: Sequence[float], untrained: Sequence[float], *, min_margin: float = MIN_MARGIN,
               std_factor: float = STD_FACTOR, min_gap: float = MIN_GAP) -> tuple[float, float]:
    """(threshold, floor) from the reference's measured values and its untrained values; see the module docstring."""
    if not values or not untrained:
        raise CalibrationError("calibration needs at least one trained and one untrained measurement")
    if not all(math.isfinite(v) for v in [*values, *untrained]):
        raise CalibrationError(f"calibration measured non-finite values: {list(values)}, untrained {list(untrained)}")
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    threshold = min(values) - max(min_margin, std_factor * spread)
    floor = max(untrained)
    if threshold - floor < min_gap:
        raise CalibrationError(
            f"the reference does not clear an untrained model by enough to grade with: trained values "
            f"{_fmt(values)} give a threshold of {threshold:.3f}, untrained values {_fmt(untrained)} a floor of "
            f"{floor:.3f}; the gap {threshold - floor:.3f} is below {min_gap}. Give the profile a larger training "
            "budget (or fix the reference) and calibrate again.")
    return round(threshold, 4), round(floor, 4)


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def calibration_path(graders_dir: str | os.PathLike) -> Path:
    return Path(graders_dir) / CALIBRATION_FILE


def read_calibration(graders_dir: str | os.PathLike) -> dict:
    """The whole calibration file of a graders folder ({"profiles": {}} when there is none yet)."""
    path = calibration_path(graders_dir)
    if not path.is_file():
        return {"format": FORMAT, "profiles": {}}
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise CalibrationError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("profiles"), dict):
        raise CalibrationError(f"{path}: not a calibration file of format {FORMAT}")
    return data


def load_bar(graders_dir: str | os.PathLike, metric: str, profile: str,
             budget: Mapping[str, Any] | None = None) -> Bar:
    """The calibrated bar of `metric` under `profile`.

    `budget` is the profile table the grader is about to use; when given, it must equal the one the bar was
    measured with, so that changing assignment.toml without recalibrating fails loudly instead of grading against
    numbers measured for another budget.
    """
    path = calibration_path(graders_dir)
    data = read_calibration(graders_dir)
    assignment = data.get("assignment", Path(graders_dir).name)
    entry = data["profiles"].get(profile)
    rerun = calibrate_command(assignment, profile)
    if entry is None:
        raise CalibrationError(f"{path}: profile {profile!r} has not been calibrated; run `{rerun}`")
    if entry.get("status") != "measured":
        raise CalibrationError(f"{path}: profile {profile!r} is {entry.get('status', 'not measured')}; "
                               f"run `{entry.get('command', rerun)}`")
    if budget is not None and dict(budget) != entry.get("budget"):
        raise CalibrationError(f"{path}: profile {profile!r} was calibrated with the budget {entry.get('budget')}, "
                               f"but assignment.toml now says {dict(budget)}; run `{rerun}`")
    found = entry.get("metrics", {}).get(metric)
    if found is None:
        raise CalibrationError(f"{path}: profile {profile!r} has no bar for {metric!r} "
                               f"(it has {sorted(entry.get('metrics', {}))}); run `{rerun}`")
    return Bar(metric=metric, profile=profile, threshold=float(found["threshold"]), floor=float(found["floor"]),
               values=tuple(map(float, found["values"])), untrained=tuple(map(float, found["untrained"])))


def write_profile(graders_dir: str | os.PathLike, assignment: str, profile: str, entry: dict) -> Path:
    """Replace one profile's entry of the calibration file (atomically), keeping the other profiles."""
    data = read_calibration(graders_dir)
    data["assignment"] = assignment
    data["format"] = FORMAT
    data["profiles"][profile] = entry
    data["profiles"] = dict(sorted(data["profiles"].items()))
    path = calibration_path(graders_dir)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".calibration-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        stream.write(json.dumps({"assignment": assignment, "format": FORMAT, "profiles": data["profiles"]},
                                indent=2) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path


def pending_entry(assignment: str, profile: str, seeds: int = 3) -> dict:
    """What a profile nobody could measure yet holds: the exact command that measures it."""
    return {"status": "pending", "command": calibrate_command(assignment, profile, seeds)}


# Calibration measures seeds 1..S, so the reference's own grade (seed 0) is an out-of-sample check of its bar.
GRADING_TRAIN_SEED = 0


def grade_measured_accuracy(graders_dir, metric: str, measure, describe: str, *, student, reference, profile,
                            partial_credit, request, secret_initialisation: bool = True) -> None:
    """The body of an accuracy test: train the student's code, score its weights, award credit on the calibrated bar.

    `measure(student, reference, profile, device, train_seed=, init_seed=, eval_seed=, data_dir=, notes=, curves=)
    -> float`
    trains the submission in its worker from initial weights drawn with `init_seed` (fresh and secret on every run,
    like `eval_seed`; with `secret_initialisation=False` the graders' own seed, the one the bar's out-of-sample
    check used, for a model whose outcome under the budget depends on its initialisation), checks its trajectory,
    and scores the weights with the reference on test episodes drawn with `eval_seed`; `describe` says what was
    measured ("1000 secret 2-way 1-shot test-split episodes, after ...").
    It appends to `curves` (the training probe's `curve` reply, the steps trained) as soon as the training returns.
    The student is told the accuracy and the bar (the test's explanation) and sees the training curve their run
    reported (drawn in the feedback, even when the audit then fails; never scored); a missing, pending or stale bar
    is the grader's error, never the student's.
    """
    import secrets

    from autograder.engine.harness import GraderError, run_data_dir

    try:
        bar = load_bar(graders_dir, metric, profile.name, budget=dict(profile))
    except CalibrationError as error:
        raise GraderError(str(error)) from None
    notes: list[str] = []
    curves: list[tuple] = []
    accuracy = None
    try:
        accuracy = measure(student, reference, profile, profile.device, train_seed=GRADING_TRAIN_SEED,
                           init_seed=secrets.randbits(31) if secret_initialisation else GRADING_TRAIN_SEED,
                           eval_seed=secrets.randbits(63),
                           data_dir=run_data_dir(request.config), notes=notes, curves=curves)
    finally:
        unusable = _record_training_curve(request, curves, bar, accuracy)
    if unusable:
        notes.append(unusable)
    summary = "; ".join([f"query accuracy {accuracy:.3f} on {describe}", bar.describe(), *notes])
    # the test's explanation, passed or not; the output of the student's code stays what their code printed
    request.node.user_properties.append(("explanation", summary))
    credit = bar.credit(accuracy)
    assert credit > 0, summary
    partial_credit(credit)


def _record_training_curve(request, curves: list[tuple], bar: Bar, accuracy: float | None) -> str | None:
    """Leave the training curve the student's run reported (checked by `engine.results.safe_curve`) and the bar for
    the feedback's plot (`request.node.user_properties`); why it is not shown when it cannot be."""
    from autograder.engine.results import safe_curve

    if not curves:
        return None
    reply, steps = curves[-1]
    curve, problem = safe_curve(reply, total_steps=steps)
    if curve is None:
        return f"the training curve your run reported is not shown ({problem})"
    request.node.user_properties.append(("training_curve", {**curve, "threshold": bar.threshold, "floor": bar.floor,
                                                            "measured": accuracy}))
    return None
