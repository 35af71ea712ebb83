"""Measure the grading overhead: worker start and per probe call, sandboxed (bwrap) and trusted (no sandbox).

    OMP_NUM_THREADS=1 .venv/bin/python tests/engine/measure_overhead.py [--repeats 8]

Uses the toy fixture assignment. "start" is the first call of a fresh worker minus the median call (python start,
numpy + safetensors import, probes + assignment import, and for bwrap the namespace set-up); "call" is a small
`add` call on a warm worker; "1 MiB echo" sends 1 MiB of float32 each way; "launch" compares starting
`python -c pass` bare and inside the sandbox (unshare/setpriv/prlimit/bwrap), the sandbox's own share.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autograder.assignment import load_assignment
from autograder.engine.harness.runner import OutputLog, ProbeRunner
from autograder.engine.sandbox import WorkerSpec, worker_command
from autograder.engine.workdir import build_worker_files

TOY = Path(__file__).resolve().parent.parent / "fixtures" / "engine" / "toy"


def measure(spec: WorkerSpec, repeats: int) -> dict:
    firsts, calls, echoes, torch_firsts = [], [], [], []
    payload = np.zeros((256, 1024), np.float32)
    for _ in range(repeats):
        runner = ProbeRunner(spec, 60, OutputLog(65536), "student")
        started = time.perf_counter()
        runner.run("add", a=1, b=2)
        firsts.append(time.perf_counter() - started)
        for _ in range(20):
            started = time.perf_counter()
            runner.run("add", a=1, b=2)
            calls.append(time.perf_counter() - started)
        for _ in range(5):
            started = time.perf_counter()
            runner.run("echo", x=payload)
            echoes.append(time.perf_counter() - started)
        runner.close()
    for _ in range(max(2, repeats // 4)):
        runner = ProbeRunner(spec, 60, OutputLog(65536), "student")
        started = time.perf_counter()
        runner.run("with_torch", n=3)
        torch_firsts.append(time.perf_counter() - started)
        runner.close()
    call = statistics.median(calls)
    return {"start_ms": (statistics.median(firsts) - call) * 1000, "call_ms": call * 1000,
            "echo_1mib_ms": statistics.median(echoes) * 1000,
            "start_with_torch_ms": (statistics.median(torch_firsts) - call) * 1000}


def launch_ms(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, env={"PATH": "/usr/bin:/bin"})
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    assignment = load_assignment(TOY / "graders")
    run_dir = Path(tempfile.mkdtemp(prefix="autograder-overhead-"))
    try:
        run_dir.chmod(0o711)
        scratch = run_dir / "scratch"
        scratch.mkdir(mode=0o711)
        files = build_worker_files(scratch / "files", assignment.reference_sources(), assignment.probes_path)
        empty = scratch / "empty"
        empty.mkdir(mode=0o755)
        spec = WorkerSpec(files_dir=empty, probes="none.py", mode="bwrap", device="cpu", limits=assignment.limits,
                          scratch_dir=scratch)
        sandboxed = worker_command(spec, 0, 1, None)[0]
        sandboxed = sandboxed[: sandboxed.index(sys.executable) + 1] + ["-I", "-c", "pass"]
        bare = launch_ms([sys.executable, "-I", "-c", "pass"], 3 * args.repeats)
        boxed = launch_ms(sandboxed, 3 * args.repeats)
        print(f"launch   python -c pass: bare {bare:.0f} ms, sandboxed {boxed:.0f} ms "
              f"(sandbox share {boxed - bare:.0f} ms)")
        for mode in ("bwrap", "trusted"):
            spec = WorkerSpec(files_dir=files, probes=assignment.probes, mode=mode, device="cpu",
                              limits=assignment.limits, scratch_dir=scratch)
            result = measure(spec, args.repeats)
            print(f"{mode:8s} worker start {result['start_ms']:6.0f} ms (with torch import "
                  f"{result['start_with_torch_ms']:5.0f} ms) | per call {result['call_ms']:5.2f} ms | "
                  f"1 MiB each way {result['echo_1mib_ms']:5.1f} ms")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
