"""What every benchmark shares: the reference homework code on `sys.path`, a machine header, side-by-side timing.

Benchmarks compare two ways of doing the same work in ONE process, alternating between them in rounds, so that a
busy shared machine slows both alike and the printed ratio stays meaningful even when the absolute rates do not.
Every benchmark prints one line per comparison that starts with `RATIO` (the smoke test looks for it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "autograder" / "solutions"


def use_reference(homework: str) -> Path:
    """Put the reference solution of `homework` ("hw1" or "hw2") and the repository first on `sys.path`.

    The released `hw1/`, `hw2/` hold stubs; benchmarks time the reference implementation of the provided paths.
    """
    folder = SOLUTIONS / homework
    if not folder.is_dir():
        raise SystemExit(f"{folder}: reference solution missing (expected autograder/solutions/{homework}/)")
    for path in (str(REPO), str(folder)):
        if path not in sys.path:
            sys.path.insert(0, path)
    return folder


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    from omniglot_data.experiment import usable_cores as cores  # the training scripts' own count

    return cores()


def machine_header(device: str | None = None) -> str:
    """CPU model and cores, load, Python/torch versions, threads and the device, as printed atop every benchmark."""
    import torch

    load = " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        f"machine: {cpu_model()}, {usable_cores()} usable cores (os.cpu_count()={os.cpu_count()}), "
        f"load average {load}",
        f"python {platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
    ]
    if device is not None:
        name = torch.cuda.get_device_name(device) if str(device).startswith("cuda") else "cpu"
        lines.append(f"device: {device} ({name})")
    return "\n".join(lines)


def resolve_device(name: str) -> str:
    """The training scripts' own `--device` check (omniglot_data.experiment), as the string torch accepts."""
    from omniglot_data.experiment import resolve_device as resolve

    return str(resolve(name))


def synchronize(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


@dataclass
class Measurement:
    """Rates (units per second) of one contender, one per round."""

    name: str
    rates: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def time_rate(work: Callable[[], int], seconds: float, min_calls: int, device: str) -> float:
    """Units per second of `work` (which returns how many units it did) over at least `seconds` and `min_calls`."""
    synchronize(device)
    started = time.perf_counter()
    units = calls = 0
    while calls < min_calls or time.perf_counter() - started < seconds:
        units += work()
        calls += 1
    synchronize(device)
    return units / (time.perf_counter() - started)


def side_by_side(contenders: dict[str, Callable[[], int]], seconds: float, rounds: int, device: str,
                 min_calls: int = 2) -> dict[str, Measurement]:
    """Alternate the contenders for `rounds` rounds of `seconds` each (after one warm-up call of each)."""
    for work in contenders.values():
        work()
    results = {name: Measurement(name, []) for name in contenders}
    for _ in range(rounds):
        for name, work in contenders.items():
            results[name].rates.append(time_rate(work, seconds, min_calls, device))
    return results


def rate_text(rate: float) -> str:
    """Three significant digits below 100 (0.312, 7.39), whole numbers above (16640)."""
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


def report(label: str, unit: str, measured: dict[str, Measurement], fast: str, slow: str) -> float:
    """Print each contender's median rate and the RATIO line `fast / slow`; return the ratio."""
    for measurement in measured.values():
        spread = f"{rate_text(min(measurement.rates))}..{rate_text(max(measurement.rates))}"
        print(f"  {label} | {measurement.name:<28} {rate_text(measurement.median):>10} {unit}/s  (rounds: {spread})")
    ratio = measured[fast].median / measured[slow].median
    print(f"RATIO {label}: {fast} / {slow} = {ratio:.1f}x  "
          f"({rate_text(measured[fast].median)} vs {rate_text(measured[slow].median)} {unit}/s)", flush=True)
    return ratio


def common_arguments(parser: argparse.ArgumentParser, seconds: float, rounds: int) -> None:
    parser.add_argument("--seconds", type=float, default=seconds, help="timed seconds per contender per round")
    parser.add_argument("--rounds", type=int, default=rounds, help="alternating rounds (the median is reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 keeps the comparison fair on a shared machine)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few calls of everything, to check that the benchmark still runs (numbers meaningless)")


def apply_common(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.smoke:
        args.seconds, args.rounds = 0.0, 1
