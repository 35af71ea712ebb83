"""Helpers shared by the homework training scripts: devices and threads, seeds, run folders, checkpoints, progress,
confidence intervals, peak memory, results files and plots.

Both homeworks import this module, so the same 95% interval, checkpoint format and results file serve every
experiment in the kit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import tempfile
import textwrap
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


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, as under taskset or a cgroup)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads() -> int:
    """Torch threads when neither --threads nor OMP_NUM_THREADS says: half the usable cores, 1 to 4.

    These models are small: a second thread buys little even on an idle machine, and on a busy one threads that
    wait for each other made steps several times slower (measured 3-7x for these models on a busy 2-core machine).
    """
    return max(1, min(4, usable_cores() // 2))


def add_threads_argument(parser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch CPU threads (default: $OMP_NUM_THREADS if set, else half the usable cores, 1 to 4)")


def configure_threads(requested: int | None) -> int:
    """Set torch's intra-op thread count from --threads (None: OMP_NUM_THREADS, else default_threads())."""
    import torch

    if requested is not None and requested < 1:
        raise SystemExit(f"--threads: expected a positive integer, got {requested}")
    if requested is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()  # torch already follows it; the user chose
        requested = default_threads()
    torch.set_num_threads(requested)
    return requested


def describe_device(device, threads: int) -> str:
    """The device line every training script prints first, e.g. `device: cpu, 1 torch thread (2 cores) ...`."""
    import torch

    name = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    return (f"device: {device}{name}, {threads} torch thread{'s' if threads != 1 else ''} "
            f"({usable_cores()} usable cores; --threads N to change)")


def peak_memory(device) -> dict[str, float | None]:
    """Peak memory of this process so far in MiB: CPU resident set (getrusage) and, on CUDA, tensors allocated."""
    import torch

    peak = {"peak_cpu_rss_mib": None, "peak_cuda_allocated_mib": None}
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in KiB on Linux and in bytes on macOS.
        peak["peak_cpu_rss_mib"] = round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except ImportError:  # Windows has no resource module
        pass
    if device.type == "cuda":
        peak["peak_cuda_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak


def format_peak_memory(peak: Mapping[str, float | None]) -> str:
    parts = [f"CPU RSS {peak['peak_cpu_rss_mib']:.0f} MiB" if peak.get("peak_cpu_rss_mib") is not None else None,
             f"CUDA allocated {peak['peak_cuda_allocated_mib']:.0f} MiB"
             if peak.get("peak_cuda_allocated_mib") is not None else None]
    return "peak memory: " + (", ".join(part for part in parts if part) or "not measurable on this OS")


class _LinePerRefresh:
    """A stream for tqdm outside a terminal: each refresh becomes one plain line (tqdm redraws with carriage
    returns, which pile up into one endless line in a log file)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "\n").strip()
        if line:
            self._stream.write(line + "\n")

    def flush(self) -> None:
        self._stream.flush()


def progress_bar(total: int, initial: int, desc: str):
    """A tqdm bar (steps, rate, ETA) that shows as soon as it is made and after the first step; outside a terminal
    it prints a plain line every 10 s instead of redrawing every 0.2 s."""
    from tqdm import tqdm

    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=0.2)
    return tqdm(total=total, initial=initial, desc=desc, file=_LinePerRefresh(sys.stderr), ncols=100,
                mininterval=10.0, ascii=True)


# ---- run folders -------------------------------------------------------------------------------------------------


def run_name(parser, args, ignored: Iterable[str]) -> str:
    """Folder name of a run: every argument of `parser` whose value in `args` differs from its default, in the
    parser's order, as `name_value` (a switch: `name`) joined by dots; `defaults` when none differs.

    `ignored` names the arguments that do not change what is learned (device, threads, logging, the test flags, the
    training length: a longer run of the same settings continues the same folder with --resume).
    """
    ignored = set(ignored) | {"help"}
    parts = []
    for action in parser._actions:  # argparse has no public list of its arguments
        if action.dest in ignored or action.dest == argparse.SUPPRESS:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        if value is True:
            parts.append(action.dest)
        else:
            parts.append(f"{action.dest}_{value}".replace(os.sep, "_").replace(" ", ""))
    return ".".join(parts) or "defaults"


def check_new_run_folder(log_dir: str | os.PathLike, resume: bool) -> None:
    """Refuse to train into a folder that already holds files unless --resume asks to continue that run."""
    log_dir = Path(log_dir)
    if resume or not log_dir.is_dir():
        return
    existing = sorted(path.name for path in log_dir.iterdir())
    if existing:
        shown = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
        raise SystemExit(f"run folder {log_dir} already holds a run ({shown}): pass --resume to continue it, or "
                         "change a hyperparameter or --log_dir to start a new one")


def write_new_json(directory: str | os.PathLike, stem: str, payload: Mapping) -> Path:
    """Write `<directory>/<stem>.json`, or `<stem>-2.json`, `-3`, ... if taken: a results file is never overwritten."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".tmp", delete=False) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")
    try:
        for attempt in range(1, 10_000):
            path = directory / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
            try:
                os.link(handle.name, path)  # fails if the name exists: no race between two writers
                return path
            except FileExistsError:
                continue
        raise SystemExit(f"{directory}: 10000 results files named {stem}*.json already; clean up the folder")
    finally:
        os.unlink(handle.name)


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
    panels: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]],
    title: str,
) -> Path:
    """Draw one panel per metric group (e.g. "loss", "accuracy"), one line per named series of (step, value) pairs.

    A label "train X" / "val X" draws X solid / dashed in one colour, so training and validation of a metric read as
    a pair; the title is wrapped rather than cut off.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes_row = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), dpi=120, squeeze=False)
    for axes, (panel, curves) in zip(axes_row[0], panels.items()):
        colours: dict[str, str] = {}
        for label, points in curves.items():
            if points:
                split, _, metric = label.partition(" ")
                colour = colours.setdefault(metric or label, f"C{len(colours) % 10}")
                steps, values = zip(*points)
                axes.plot(steps, values, label=label, color=colour, linestyle="--" if split == "val" else "-")
        axes.set_xlabel("training step")
        axes.set_ylabel(panel)
        axes.set_title(panel)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(textwrap.fill(title, width=int(55 * len(panels))), fontsize="medium")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_with_intervals(
    path: str | os.PathLike,
    points: Sequence[tuple[float, float, float]],
    title: str,
    xlabel: str,
    ylabel: str = "test accuracy (95% CI)",
) -> Path:
    """Plot (x, mean, 95% half-width) triples as a line with error bars (e.g. test accuracy against K)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.4), dpi=120)
    xs, means, half_widths = zip(*points)
    axes.errorbar(xs, means, yerr=half_widths, marker="o", capsize=3)
    axes.set_xticks(xs)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(textwrap.fill(title, width=60), fontsize="medium")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
