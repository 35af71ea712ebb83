"""Check that trained weights handed back by a submission are the product of training from the grader's start.

An accuracy test lets the submission's code train in the sandbox, but scores the weights it returns with the
REFERENCE model code, outside the sandbox, on test episodes the sandbox never sees. What is left to trust is that
those weights were trained, from the initialisation the grader drew, by the submission's model and loss, rather
than shipped inside the submission or produced by code that only pretends to train. The probe commits to its
trajectory while training (`omniglot_data.trajectory`: the digest of the training state every `every` steps, and
of the episodes each segment trained on); afterwards the grader

1. checks that the first committed state is the initialisation it sent (exactly) and that the segment count fits
   the budget;
2. draws a few segments with a secret random choice, asks for their two end states (each checked against its
   digest, so nothing can be adapted after the choice), and replays the segment with the reference's own training
   step, in a trusted worker, on the episodes it trained on (checked against their digest by the caller:
   `omniglot_data.trajectory.EpisodeDigest`);
3. compares the replayed end with the committed one as FUNCTIONS: on a fixed probe batch, the reference model's
   outputs with the replayed weights must equal those with the committed weights to `tolerance`, relative to how
   far the segment moved the outputs: `||f(replayed) - f(committed)|| / ||f(committed) - f(start)||`. Parameters
   are not compared directly: a convolution bias followed by batch norm has a true gradient of zero, so its
   gradient is rounding noise, which Adam normalises into full-size steps of random sign (a correct ProtoNet written
   with torch.cdist ends a 5-step segment 3% away from the reference in parameter space, and exactly where it in
   function space). A correct model written differently changes the outputs by float rounding only; a trajectory
   that was not trained by this step (a jump to shipped weights, an update that is not the reference model's
   gradient step) misses by the order of the segment's own movement.

A trajectory in which a fraction f of the segments were not produced by the step is caught with probability at
least 1 - (1 - f) ** segments; producing the other segments needs a correct model and loss anyway, so nothing is
gained by faking part of it. The first failure is reported with the segment's steps and the error.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Callable

import torch

from omniglot_data.trajectory import STEP, digest, initial_training_state, parameters_of


class TrajectoryMismatch(AssertionError):
    """The returned weights cannot be credited: their trajectory does not check out; the message says why."""


def checkpoint_steps(total_steps: int, every: int) -> list[int]:
    """The steps at which a run of `total_steps` commits its state: 0, every, 2 * every, ..., total_steps."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    return sorted(set(range(0, total_steps, every)) | {total_steps})


def spacing(total_steps: int, checkpoints: int) -> int:
    """The commitment spacing that gives about `checkpoints` segments."""
    return max(1, math.ceil(total_steps / max(1, checkpoints)))


@dataclass
class Audit:
    """What the audit checked: (first step, last step, error) per replayed segment, and the tolerance."""

    tolerance: float
    segments: list[tuple[int, int, float]] = field(default_factory=list)

    def describe(self) -> str:
        if not self.segments:
            return "no training to check (0 steps)"
        worst = max(error for *_, error in self.segments)
        spans = ", ".join(f"{first}-{last}" for first, last, _ in self.segments)
        return (f"training checked: steps {spans} replayed with the reference's update, largest relative "
                f"difference {worst:.1e} (tolerance {self.tolerance:.2g})")


def episodes_not_replayed(first: int, last: int) -> TrajectoryMismatch:
    return TrajectoryMismatch(
        f"training steps {first}-{last}: asked again for the episodes of these steps (a new DataGenerator with the "
        "same config seed, the same number of _sample() calls before them), your DataGenerator gave other episodes "
        "than during training, so the grader cannot check the training. All randomness of _sample must come from "
        "self.rng (seeded from config['seed']); see the data test on seeds")


def relative_output_error(start, end, replayed) -> float:
    """||replayed - end|| / ||end - start|| of three output tensors (infinity when not finite or not comparable)."""
    tensors = [torch.as_tensor(value, dtype=torch.float64) for value in (start, end, replayed)]
    if len({tuple(t.shape) for t in tensors}) != 1:
        return math.inf
    first, want, got = tensors
    error = float((got - want).norm()) / max(float((want - first).norm()), 1e-30)
    return error if math.isfinite(error) else math.inf


def _check_state(state, committed: str, what: str, names: set[str]) -> dict:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrajectoryMismatch(f"{what}: the training probe returned no training state")
    if set(parameters_of(state)) != names:
        raise TrajectoryMismatch(f"{what}: the state holds parameters {sorted(parameters_of(state))}, expected "
                                 f"{sorted(names)}")
    if digest(state) != committed:
        raise TrajectoryMismatch(f"{what}: the state returned now is not the one committed during training")
    return state


def audit_trajectory(*, commitment: dict, initial_parameters: dict[str, torch.Tensor], total_steps: int, every: int,
                     fetch_state: Callable[[int], dict], replay: Callable[[dict, int], dict],
                     outputs: Callable[[list[dict]], list], segments: int, tolerance: float,
                     rng=None) -> tuple[dict, Audit]:
    """Check a committed trajectory (see the module docstring); return (final training state, Audit).

    commitment: what the training probe returned: "digests", one per checkpoint step (`checkpoint_steps`).
    fetch_state(k): the committed state number k (from the worker that trained).
    replay(state, k): the reference's training state after replaying segment k from `state`, on the episodes that
        segment trained on (the caller gets them and checks them against its own commitment, raising
        TrajectoryMismatch when they differ; segments are replayed in increasing order).
    outputs(states): the reference model's outputs on the grader's fixed probe batch for each training state.
    Raises TrajectoryMismatch with a student-readable message.
    """
    rng = rng or secrets.SystemRandom()
    steps = checkpoint_steps(total_steps, every)
    digests = commitment.get("digests") if isinstance(commitment, dict) else None
    if not isinstance(digests, list) or len(digests) != len(steps) or not all(isinstance(d, str) for d in digests):
        raise TrajectoryMismatch(f"training committed {len(digests) if isinstance(digests, list) else 'no'} "
                                 f"checkpoints, expected {len(steps)} (steps {steps[0]}..{steps[-1]}, every {every})")
    names = set(initial_parameters)
    if digests[0] != digest(initial_training_state(initial_parameters)):
        raise TrajectoryMismatch("training did not start from the initial weights the grader gave (the model's "
                                 "parameters must be exactly the loaded state_dict before the first step)")
    audit = Audit(tolerance)
    chosen = sorted(rng.sample(range(len(steps) - 1), min(segments, len(steps) - 1)))
    for k in chosen:
        first, last = steps[k], steps[k + 1]
        where = f"training steps {first}-{last}"
        start = _check_state(fetch_state(k), digests[k], f"{where}: the state at step {first}", names)
        end = _check_state(fetch_state(k + 1), digests[k + 1], f"{where}: the state at step {last}", names)
        for state, expected in ((start, first), (end, last)):
            if float(state[STEP]) != float(expected):
                raise TrajectoryMismatch(f"{where}: the optimizer's step count is {float(state[STEP]):g} where "
                                         f"training was at step {expected}")
        error = relative_output_error(*outputs([start, end, replay(start, k)]))
        audit.segments.append((first, last, error))
        if not error <= tolerance:
            raise TrajectoryMismatch(
                f"{where}: replaying them from your own checkpoint with the reference's model, loss and Adam step "
                f"(on the same episodes) gives a model whose outputs are {error:.2e} (relative to how far these "
                f"steps moved them) from those of where your training ended; the tolerance is {tolerance:.2g}. So "
                "the weights cannot be credited "
                "as trained by this model: the model tests show what your forward/loss computes differently")
    final = _check_state(fetch_state(len(steps) - 1), digests[-1], f"the state after step {total_steps}", names)
    return final, audit
