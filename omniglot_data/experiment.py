"""Helpers shared by the homework training scripts: devices, seeds, checkpoints, confidence intervals, results.

Both homeworks import this module, so the same 95% interval, checkpoint format and results file serve every
experiment in the kit.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

# Two-sided 95% quantile of the standard normal: with >= 1000 test episodes the t and normal quantiles agree to 3 decimals.
Z_95 = 1.959963984540054
CHECKPOINT_PATTERN = re.compile(r"^state(\d+)\.pt$")


def resolve_device(name: str):
    """Map `--device auto|cpu|cuda|cuda:N|mps` to a torch.device, failing clearly when it is not available."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SystemExit("--device mps: MPS is not available on this machine (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise SystemExit(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps ({error})") from None


# torch.compile backends `--compile` accepts: inductor generates fused kernels (the speed-up); aot_eager and eager
# only trace (aot_eager also splits forward and backward the way inductor does), to tell a tracing problem from a
# code-generation one, and to test the flag cheaply.
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


def add_compile_argument(parser, what: str) -> None:
    """`--compile [BACKEND]`: compile `what` with torch.compile (bare flag: inductor; absent: eager mode)."""
    parser.add_argument(
        "--compile", nargs="?", const="inductor", default=None, choices=COMPILE_BACKENDS, metavar="BACKEND",
        help=f"compile {what} with torch.compile; BACKEND is one of {', '.join(COMPILE_BACKENDS)} (default inductor, "
             "which needs a C++ compiler on CPU and Triton on CUDA). The first steps are slow while it compiles "
             "(10-30 s per network on a 2-core CPU): worth it for long GPU runs, not short ones. Checkpoints are "
             "the same either way")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that a run is repeatable."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mean_confidence_interval(values: Iterable[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval (normal approximation, sample standard deviation)."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_confidence_interval needs at least one value")
    if array.size == 1:
        return float(array[0]), float("nan")
    return float(array.mean()), float(Z_95 * array.std(ddof=1) / math.sqrt(array.size))


def format_accuracy(mean: float, half_width: float) -> str:
    """`97.31% ± 0.42%` from fractions in [0, 1]."""
    return f"{100 * mean:.2f}% ± {100 * half_width:.2f}%"


def write_json(path: str | os.PathLike, payload: Mapping) -> Path:
    """Write JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(handle.name, path)
    return path


def save_checkpoint(log_dir: str | os.PathLike, step: int, state: Mapping) -> Path:
    """Save `state` (tensors, numbers, strings, nested dicts) as `<log_dir>/state<step>.pt`, atomically."""
    import torch

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"state{step}.pt"
    with tempfile.NamedTemporaryFile(dir=log_dir, suffix=".tmp", delete=False) as handle:
        torch.save(dict(state), handle)
    os.replace(handle.name, path)
    return path


def latest_checkpoint(log_dir: str | os.PathLike) -> tuple[int, Path] | None:
    """(step, path) of the newest `state<step>.pt` in log_dir, or None."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in log_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return max(found) if found else None


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by save_checkpoint without unpickling arbitrary objects."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise SystemExit(f"checkpoint {path}: no such file") from None
    except Exception as error:  # torch raises several unrelated types for a corrupt or foreign file
        raise SystemExit(f"checkpoint {path}: cannot be read as a weights-only checkpoint ({error})") from None


def plot_learning_curves(
    path: str | os.PathLike,
    curves: Mapping[str, Sequence[tuple[int, float]]],
    title: str,
    ylabel: str = "accuracy",
) -> Path:
    """Draw one line per named series of (step, value) pairs into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for label, points in curves.items():
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, label=label)
    axes.set_xlabel("training step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
