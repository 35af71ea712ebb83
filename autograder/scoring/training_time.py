"""A training call's time limit, from the reference's own speed on the same machine in the same grading run.

A submission whose training hangs (an infinite loop, a deadlock, a sleep) must fail in minutes, not after the
test's whole timeout marker (15-25 min, sized for the slowest machine). Just before the student's training call,
the reference runs the same training probe twice, for a few steps (a warm-up, whose imports and first-call costs
are thrown away) and for `n` steps; the student's call then gets `TIME_FACTOR` times the reference's time per
step for its whole budget, at least `FLOOR_SECONDS`, never more than the marker. Both sides share the machine and
its load, so the limit scales with it; 20x leaves room for slow but correct code (Python loops where the
reference vectorises).
"""

from __future__ import annotations

import time

TIME_FACTOR = 20
FLOOR_SECONDS = 120
WARM_UP_STEPS = 2


def measured_steps(steps: int) -> int:
    """How many steps the reference is timed on: 5% of the budget, at least 20 (never more than the budget)."""
    return max(1, min(steps, max(20, steps // 20)))


def run_paced(student, reference, probe: str, inputs: dict, steps: int, *, factor: float = TIME_FACTOR,
              floor: float = FLOOR_SECONDS) -> dict:
    """`student.run(probe, **inputs)`, where `inputs["steps"] == steps`, under the reference-paced time limit."""
    if steps <= 0:
        return student.run(probe, **inputs)
    untracked = {"checkpoint_every": 0} if "checkpoint_every" in inputs else {}  # no trajectory to commit to
    reference.run(probe, **{**inputs, **untracked, "steps": min(steps, WARM_UP_STEPS)})
    timed = measured_steps(steps)
    started = time.monotonic()
    reference.run(probe, **{**inputs, **untracked, "steps": timed})
    per_step = (time.monotonic() - started) / timed
    limit = max(floor, factor * per_step * steps)
    why = (f"; the limit is {factor:g}x the reference's time for the same {steps} training steps on this machine "
           f"({per_step * 1000:.1f} ms a step, timed now), at least {floor:g} s: training that takes much longer "
           "than that, or never ends, is not the expected implementation")
    with student.time_limit(limit, why):
        return student.run(probe, **inputs)
