"""A training run's loss and accuracy against its steps, as a grader's training probe reports them for the feedback.

The accuracy tests train the submission's code in the sandbox; the student then sees how that training went, beside
the score. A curve has at most `MAX_POINTS` points however long the run: each point is the mean over a window of
consecutive steps, placed at the window's last step (steps count from 1; the last window may be shorter). The
values of a window are averaged in one transfer, so a run on a GPU does not wait for the device at every step. A
missing value (None, something that is not one number) or a mean that is not finite gives the point None.

Nothing here is trusted: the submission runs in the same process and may change any of it. The grader checks the
reply (in the grading engine, outside the sandbox) and only ever draws it; no score depends on it.
"""

from __future__ import annotations

import math
import sys

MAX_POINTS = 200
SERIES = ("loss", "accuracy")


def _mean(values: list) -> float | None:
    """Mean of 0-d tensors or numbers, in float64 (None when one is missing or the mean is not finite)."""
    if not values or any(value is None for value in values):
        return None
    torch = sys.modules.get("torch")  # imported by whoever produced tensors; never imported here
    try:
        tensors = [value for value in values if torch is not None and isinstance(value, torch.Tensor)]
        if tensors:
            device = tensors[0].device
            stacked = torch.stack([torch.as_tensor(value, dtype=torch.float64, device=device).detach().reshape(())
                                   for value in values])
            mean = float(stacked.mean())
        else:
            mean = math.fsum(float(value) for value in values) / len(values)
    except (TypeError, ValueError, RuntimeError):
        return None
    return mean if math.isfinite(mean) else None


class TrainingCurve:
    """`add(loss=..., accuracy=...)` once per training step of a run of `steps` steps; `reply()` the curve:
    {"steps": [int], "loss": [float | None], "accuracy": [float | None]}, at most MAX_POINTS long."""

    def __init__(self, steps: int, max_points: int = MAX_POINTS):
        self.window = max(1, -(-int(steps) // max_points))
        self._done = 0
        self._pending: dict[str, list] = {name: [] for name in SERIES}
        self._points: dict[str, list] = {"steps": [], **{name: [] for name in SERIES}}

    def add(self, **values) -> None:
        self._done += 1
        torch = sys.modules.get("torch")
        for name in SERIES:
            value = values.get(name)
            if torch is not None and isinstance(value, torch.Tensor):
                value = value.detach()  # a window of steps must not keep their graphs alive
            self._pending[name].append(value)
        if self._done % self.window == 0:
            self._flush()

    def _flush(self) -> None:
        if not self._pending[SERIES[0]]:
            return
        self._points["steps"].append(self._done)
        for name in SERIES:
            self._points[name].append(_mean(self._pending[name]))
            self._pending[name] = []

    def reply(self) -> dict[str, list]:
        self._flush()
        return {name: list(values) for name, values in self._points.items()}
