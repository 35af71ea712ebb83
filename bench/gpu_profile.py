"""The reference accuracy table in one go: every homework model trained and tested IN PARALLEL on one device.

    bash bench/gpu_profile.sh                 # what to run on the GPU machine ($OUT set)
    python bench/gpu_profile.py --smoke       # every job for a few steps on the CPU, to prove the script works

Each job trains a reference model with its training script (`autograder/solutions/hw1/hw1.py`,
`autograder/solutions/hw2/{protonet,maml}.py`) towards a step target, under a wall-clock deadline shared by all jobs
(`timeout` stops a job that has not reached its target, and its newest checkpoint is tested instead), then tests it
on >= 1000 test tasks of the committed split with a 95% confidence interval. A job that fails records its error and
the others go on. The results land in `--out` as `gpu_results.json`, `gpu_results.md` and `logs.tar.gz`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import common

HW1_SCRIPT = common.SOLUTIONS / "hw1" / "hw1.py"
HW2_FOLDER = common.SOLUTIONS / "hw2"
HW1_FALLBACK = Path(__file__).resolve().parent / "hw1_evaluate_checkpoint.py"
BATCHED_TASKS = Path(__file__).resolve().parent / "batched_tasks.py"
TIME_LIMIT_MARGIN_S = 35
MAML_FLAGS = ["--num_inner_steps", "1", "--inner_lr", "0.4", "--learn_inner_lrs", "--outer_lr", "0.001"]
# The papers' protocol: every training character also rotated by 90/180/270 degrees, each a class of its own.
AUGMENT = ["--augment_rotations"]
# Goals on the kit's split (the published 5-way numbers less a margin for a different split and minutes of training).
TARGETS = {("protonet", 5, 1): 98.5, ("protonet", 5, 5): 99.5, ("maml", 5, 1): 98.5, ("maml", 5, 5): 99.5,
           ("mann", 1, 2): 96.0}


@dataclass
class Job:
    """One row of the table: a training script, its flags, a step target; filled in as it runs."""

    name: str
    row: str
    script: Path
    flags: list[str]
    target_steps: int
    published: str = "—"
    target_accuracy: float | None = None  # the goal for this row on the kit's split, in %
    record: dict = field(default_factory=dict)

    @property
    def homework(self) -> str:
        return "hw1" if self.script == HW1_SCRIPT else "hw2"


def mann(num_shot: int, num_classes: int) -> Job:
    return Job(f"mann_K{num_shot}_N{num_classes}", f"MANN (K, N) = ({num_shot}, {num_classes})", HW1_SCRIPT,
               ["--num_classes", str(num_classes), "--num_shot", str(num_shot)], 25000,
               target_accuracy=TARGETS.get(("mann", num_shot, num_classes)))


def protonet(way: int, shot: int, published: str) -> Job:
    query = 15 if way == 5 else 5  # 20-way: 5 queries per class keeps a task at 100-200 images
    return Job(f"protonet_{way}w{shot}s", f"ProtoNet {way}-way {shot}-shot", HW2_FOLDER / "protonet.py",
               ["--num_way", str(way), "--num_support", str(shot), "--num_query", str(query), *AUGMENT], 5000, published,
               TARGETS.get(("protonet", way, shot)))


def maml_family(name: str, row: str, shot: int, variant_flags: list[str], published: str = "—",
                target: float | None = None) -> Job:
    return Job(name, row, HW2_FOLDER / "maml.py",
               ["--num_way", "5", "--num_support", str(shot), "--num_query", "15", *AUGMENT, *variant_flags], 15000,
               published, target)


# Published 5-way 1-shot / 5-shot Omniglot accuracies (Vinyals split with rotations, so not directly comparable).
JOBS = [
    mann(1, 2), mann(2, 2), mann(1, 3), mann(1, 4),
    protonet(5, 1, "98.8"), protonet(5, 5, "99.7"), protonet(20, 1, "96.0"), protonet(20, 5, "98.9"),
    maml_family("maml_5w1s", "MAML 5-way 1-shot (2nd order, learned inner lrs)", 1, MAML_FLAGS, "98.7",
                TARGETS[("maml", 5, 1)]),
    maml_family("maml_5w5s", "MAML 5-way 5-shot (2nd order, learned inner lrs)", 5, MAML_FLAGS, "99.9",
                TARGETS[("maml", 5, 5)]),
    maml_family("fomaml_5w1s", "FOMAML 5-way 1-shot (learned inner lrs)", 1, MAML_FLAGS + ["--first_order"], "98.3"),
    maml_family("anil_5w1s", "ANIL 5-way 1-shot (learned inner lrs)", 1, MAML_FLAGS + ["--anil"]),
    maml_family("reptile_5w1s", "Reptile 5-way 1-shot (5 inner steps)", 1,
                ["--reptile", "--num_inner_steps", "5", "--inner_lr", "0.4", "--outer_lr", "0.001"], "97.7"),
    maml_family("imaml_5w1s", "iMAML 5-way 1-shot (5 proximal steps, lambda 2, 5 CG steps)", 1,
                ["--imaml", "--num_inner_steps", "5", "--inner_lr", "0.4", "--outer_lr", "0.001",
                 "--imaml_lambda", "2.0", "--imaml_cg_steps", "5"], "99.5"),
]

# The other MAML runs of the HW2 handout's results table (off by default: three more jobs share the GPU).
HANDOUT_JOBS = [
    maml_family("maml_5w1s_lr0.4", "MAML 5-way 1-shot, inner lr 0.4 fixed", 1,
                ["--num_inner_steps", "1", "--inner_lr", "0.4"]),
    maml_family("maml_5w1s_lr0.04", "MAML 5-way 1-shot, inner lr 0.04 fixed", 1,
                ["--num_inner_steps", "1", "--inner_lr", "0.04"]),
    maml_family("maml_5w1s_lr0.04_5steps", "MAML 5-way 1-shot, inner lr 0.04 fixed, 5 inner steps", 1,
                ["--num_inner_steps", "5", "--inner_lr", "0.04"]),
]

SMOKE_FLAGS = {"hw1": ["--meta_batch_size", "4", "--hidden_dim", "16", "--eval_every", "2"],
               "hw2": ["--batch_size", "2", "--num_query", "2", "--num_val_tasks", "2"]}


def train_command(job: Job, python: str, device: str, log_dir: Path, args: argparse.Namespace,
                  seconds: float | None = None) -> list[str]:
    """The training run; HW2's scripts also get `--time_limit_s`, so they stop on their own, tidily, in `seconds`."""
    steps = args.steps or job.target_steps
    if job.homework == "hw1":
        extra = ["--train_steps", str(steps), "--checkpoint_every", str(min(500, steps)), "--num_workers",
                 str(args.mann_workers), "--num_test_episodes", str(args.test_tasks)]
    else:
        extra = ["--num_train_iterations", str(steps), "--save_interval", str(min(100, steps)), "--val_interval",
                 str(min(250, steps)), "--log_interval", str(min(50, steps))]
        if seconds is not None:
            # Margin for starting up (imports, CUDA) before the script's clock starts and for its final validation,
            # checkpoint and plot after it stops; `timeout` at the deadline stays as the backstop.
            extra += ["--time_limit_s", f"{max(1.0, seconds - TIME_LIMIT_MARGIN_S):.0f}"]
    smoke = SMOKE_FLAGS[job.homework] if args.smoke else []
    script = [str(job.script)]
    if job.script.stem in getattr(args, "batched_models", ()):  # the same training, tasks vmapped (see choose_batched)
        script = [str(BATCHED_TASKS), "train", job.script.name]
    return [python, *script, *job.flags, *smoke, *extra, "--device", device, "--log_dir", str(log_dir)]


def test_command(job: Job, python: str, device: str, log_dir: Path, args: argparse.Namespace) -> list[str]:
    smoke = SMOKE_FLAGS[job.homework] if args.smoke else []
    if job.homework == "hw1":  # only when the run stopped before its own test (see run_job)
        return [python, str(HW1_FALLBACK), *job.flags, *smoke, "--num_test_episodes", str(args.test_tasks),
                "--num_workers", "0", "--device", device, "--log_dir", str(log_dir)]
    return [python, str(job.script), *job.flags, *smoke, "--test", "--num_test_tasks", str(args.test_tasks),
            "--device", device, "--log_dir", str(log_dir)]


def job_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # One thread per job: the jobs share the CPU cores, and each mostly feeds the GPU from one Python thread.
    environment.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", TQDM_MININTERVAL="10")
    paths = [str(common.REPO), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return environment


def run_bounded(command: list[str], seconds: float, log: Path) -> dict:
    """Run `command` under `timeout` (TERM, then KILL 5 s later), appending its output to `log`."""
    seconds = max(1, int(seconds))
    started = time.perf_counter()
    with log.open("a") as handle:
        handle.write(f"$ {shlex.join(command)}  (timeout {seconds} s)\n")
        handle.flush()
        try:
            completed = subprocess.run(["timeout", "--kill-after=5", str(seconds), *command], stdout=handle,
                                       stderr=subprocess.STDOUT, env=job_environment(), cwd=common.REPO,
                                       timeout=seconds + 30)
            code = completed.returncode
        except subprocess.TimeoutExpired:
            code = 137
        handle.write(f"[exit code {code} after {time.perf_counter() - started:.1f} s]\n")
    return {"rc": code, "seconds": round(time.perf_counter() - started, 1), "timed_out": code in (124, 137)}


def log_tail(log: Path, lines: int = 25) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").replace("\r", "\n").splitlines()[-lines:])
    except OSError:
        return ""


def read_results(job: Job, log_dir: Path) -> dict:
    """Accuracy, interval, task count and steps from the training script's results.json."""
    path = log_dir / "results.json"
    if not path.is_file():
        return {}
    document = json.loads(path.read_text())
    if job.homework == "hw1":
        return {"accuracy": document["test_accuracy"], "ci95": document["test_accuracy_ci95"],
                "num_test_tasks": document["num_test_episodes"], "steps": document["train_steps"],
                "train_seconds_reported": document["train_seconds"]}
    test = document.get("test")
    if not test:
        return {}
    train = document.get("train", {})
    return {"accuracy": test["accuracy"], "ci95": test["ci95"], "num_test_tasks": test["num_tasks"],
            "steps": test["checkpoint_step"], "train_seconds_reported": train.get("wall_time_s"),
            "stopped_by_time_limit": bool(train.get("stopped_by_time_limit", False))}


def run_job(job: Job, python: str, device: str, work: Path, deadlines: tuple[float, float],
            args: argparse.Namespace, on_done) -> None:
    """Train, then test if needed; hand the job's record to `on_done` (which merges it under a lock)."""
    train_deadline, test_deadline = deadlines
    log_dir, log = work / job.name, work / f"{job.name}.log"
    record: dict = {}
    try:
        command = train_command(job, python, device, log_dir, args, seconds=train_deadline - time.time())
        record["train"] = {"command": shlex.join(command), **run_bounded(command, train_deadline - time.time(), log)}
        if job.homework == "hw2" or not (log_dir / "results.json").is_file():
            command = test_command(job, python, device, log_dir, args)
            record["test"] = {"command": shlex.join(command),
                              **run_bounded(command, test_deadline - time.time(), log)}
        record.update(read_results(job, log_dir))
        record["stopped_early"] = record["train"]["timed_out"] or record.get("stopped_by_time_limit", False)
        if "accuracy" not in record:
            record["error"] = log_tail(log)
    except Exception as error:  # a broken job must not stop the others
        record["error"] = f"{type(error).__name__}: {error}\n{log_tail(log)}"
    record["finished"] = True
    on_done(job, record)


def gpu_description(python: str) -> dict:
    info: dict = {}
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        info["nvidia_smi"] = f"unavailable ({type(error).__name__})"
    probe = ("import json, torch; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, "
             "'cuda_available': torch.cuda.is_available(), 'device_name': torch.cuda.get_device_name(0) "
             "if torch.cuda.is_available() else None}))")
    try:
        completed = subprocess.run([python, "-c", probe], capture_output=True, text=True, env=job_environment(),
                                   timeout=120)
        info.update(json.loads(completed.stdout) if completed.returncode == 0
                    else {"torch_error": completed.stderr[-500:]})
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as error:
        info["torch_error"] = f"{type(error).__name__}: {error}"
    info.update(cpu=common.cpu_model(), cores=common.usable_cores(), python=sys.version.split()[0])
    return info


def gpu_utilisation() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=15).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def choose_batched(python: str, device: str, work: Path, args: argparse.Namespace) -> dict:
    """Which HW2 models train with the batched-tasks step: `--batched-tasks on|off`, or `auto`: those for which
    bench/batched_tasks.py, run first on this device, measures the batched step faster than the per-task one.
    Both compute the same thing (tests/test_batched_tasks.py); only the speed is at stake."""
    if args.batched_tasks != "auto":
        chosen = ["protonet", "maml"] if args.batched_tasks == "on" else []
        return {"mode": args.batched_tasks, "chosen": chosen}
    timing = ["--smoke"] if args.smoke else ["--seconds", "2", "--rounds", "1"]
    command = [python, str(BATCHED_TASKS), "--device", device, *timing]
    outcome = run_bounded(command, 120, work / "bench_batched_tasks.log")
    text = (work / "bench_batched_tasks.log").read_text(errors="replace")
    ratios = [line for line in text.splitlines() if line.startswith("RATIO")]
    chosen = []
    for line in ratios:  # "RATIO protonet 5w1s Q=15 B=16: batched (vmap) / plain (per task) = 2.3x  (...)"
        model, ratio = line.split()[1], float(line.split(" = ")[1].split("x")[0])
        if ratio > 1.0:
            chosen.append(model)
    return {"mode": "auto", "command": shlex.join(command), **outcome, "ratios": ratios, "chosen": chosen}


def run_benches(python: str, device: str, seconds: float, work: Path, args: argparse.Namespace) -> list[dict]:
    """The benchmark scripts on the device, in parallel, if time is left; their RATIO lines."""
    timing = ["--smoke"] if args.smoke else ["--seconds", "1", "--rounds", "1"]
    commands = {"train_steps": [python, "bench/train_steps.py", "--device", device, *timing],
                "episodes": [python, "bench/episodes.py", "--device", device, *timing],
                "compile": [python, "bench/compile.py", "--device", device, *timing]}
    outcomes: dict[str, dict] = {}

    def run(name: str) -> None:
        outcomes[name] = run_bounded(commands[name], seconds, work / f"bench_{name}.log")

    threads = [threading.Thread(target=run, args=(name,)) for name in commands]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    benches = []
    for name in commands:
        text = (work / f"bench_{name}.log").read_text(errors="replace")
        benches.append({"name": name, "command": shlex.join(commands[name]), **outcomes[name],
                        "ratios": [line for line in text.splitlines() if line.startswith("RATIO")]})
    return benches


def percent(value) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def reached(job: dict) -> str:
    """Whether a row met its goal: the mean, and where the interval lies (a mean above with a CI across is "mean")."""
    goal = job.get("target_accuracy")
    if goal is None or "accuracy" not in job:
        return "—"
    mean, half = 100 * job["accuracy"], 100 * job["ci95"]
    return "yes" if mean - half >= goal else "mean only" if mean >= goal else "no"


def markdown(summary: dict) -> str:
    machine = summary["machine"]
    lines = [
        f"# Reference runs on {machine.get('device_name') or summary['device'] + ' (' + machine.get('cpu', '?') + ')'}",
        "",
        f"nvidia-smi: {machine.get('nvidia_smi')}; torch {machine.get('torch')} (CUDA {machine.get('cuda')}); "
        f"CPU {machine.get('cpu')}, {machine.get('cores')} cores; {len(summary['jobs'])} jobs in parallel on the one "
        f"device; training deadline {summary['train_seconds']:.0f} s after the start; mode: {summary['mode']}.",
        "",
        "| model | steps done / target | test accuracy % (95% CI) | test tasks | train wall s | steps/s | published % "
        "| goal % | reached | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for job in summary["jobs"]:
        if "accuracy" in job:
            accuracy = f"{percent(job['accuracy'])} ± {percent(job['ci95'])}"
        else:
            accuracy = ("failed" if job.get("finished") else "not run" if summary.get("error")
                        else "pending (still running)")
        note = "stopped by the time budget; newest checkpoint tested" if job.get("stopped_early") else ""
        if "error" in job:
            note = "error: " + job["error"].strip().splitlines()[-1][:120] if job["error"].strip() else "error"
        train = job.get("train", {})
        # The scripts' own training clocks (they exclude start-up); absent when a deadline stopped the run abruptly.
        rate = (f"{job['steps'] / job['train_seconds_reported']:.1f}" if job.get("train_seconds_reported")
                and job.get("steps") else "—")
        cells = [job["row"], f"{job.get('steps', '—')} / {job['target_steps']}", accuracy,
                 job.get("num_test_tasks", "—"), train.get("seconds", "—"), rate, job["published"],
                 job.get("target_accuracy") or "—", reached(job), note]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    batched = summary.get("batched_tasks")
    if batched:
        lines += ["", f"Batched-tasks step ({batched['mode']}): used for {', '.join(batched['chosen']) or 'no model'}."]
        if batched.get("command"):
            lines += ["", f"`{batched['command']}` (exit {batched.get('rc')}, {batched.get('seconds')} s):", ""]
            lines += [f"    {ratio}" for ratio in batched.get("ratios", [])] or ["    (no RATIO line)"]
    if summary.get("gpu_utilisation"):
        lines += ["", f"GPU utilisation and memory at mid-training (nvidia-smi): {summary['gpu_utilisation']}"]
    for bench in summary.get("benches", []):
        lines += ["", f"`{bench['command']}` (exit {bench['rc']}, {bench['seconds']} s):", ""]
        lines += [f"    {ratio}" for ratio in bench["ratios"]] or ["    (no RATIO line)"]
    if summary.get("error"):
        lines += ["", f"ERROR: {summary['error']}"]
    lines += ["", f"total wall time: {summary['wall_seconds']:.0f} s", ""]
    return "\n".join(lines)


def write_outputs(summary: dict, out: Path, work: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_results.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    (out / "gpu_results.md").write_text(markdown(summary))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
        for path in sorted(work.rglob("*")):
            if path.is_file() and not path.name.startswith("state") and not path.name.endswith((".pt", ".tmp")):
                archive.add(path, arcname=str(path.relative_to(work)))


def apply_smoke(args: argparse.Namespace) -> None:
    """--smoke: CPU, 2 steps, 5 test tasks, no DataLoader workers (the job flags themselves shrink the batches)."""
    if args.smoke:
        args.device = args.device or "cpu"
        args.steps, args.test_tasks, args.mann_workers = args.steps or 2, min(args.test_tasks, 5), 0
    args.device = args.device or "cuda"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for the results (default: $OUT)")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the jobs")
    parser.add_argument("--total-seconds", type=float, default=280,
                        help="everything (training, testing, benchmarks, outputs) ends within this many seconds")
    parser.add_argument("--test-seconds", type=float, default=75, help="reserved at the end for the tests")
    parser.add_argument("--bench-seconds", type=float, default=40,
                        help="run the benchmark scripts last if at least this many seconds are left (0: never)")
    parser.add_argument("--test-tasks", type=int, default=1000, help="test tasks (episodes) per model")
    parser.add_argument("--steps", type=int, default=None, help="override every job's step target")
    parser.add_argument("--mann-workers", type=int, default=1, help="DataLoader workers of each MANN job")
    parser.add_argument("--only", nargs="+", default=None, help="run only these jobs (names as in the table)")
    parser.add_argument("--handout-rows", action="store_true",
                        help="also run the HW2 handout's fixed-learning-rate MAML rows (3 more parallel jobs)")
    parser.add_argument("--work-dir", default=None,
                        help="where runs, checkpoints and logs go, kept afterwards (default: a temporary folder, "
                             "deleted at the end)")
    parser.add_argument("--batched-tasks", choices=("auto", "on", "off"), default="auto",
                        help="train ProtoNet/MAML with bench/batched_tasks.py's vmapped step: auto = where it measures "
                             "faster on this device first")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU, 2 steps, 5 test tasks, tiny batches: proves the pipeline, numbers meaningless")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("--out (or $OUT) is required")
    apply_smoke(args)
    device = args.device
    candidates = JOBS + (HANDOUT_JOBS if args.handout_rows else [])
    jobs = [job for job in candidates if args.only is None or job.name in args.only]
    unknown = set(args.only or ()) - {job.name for job in candidates}
    if unknown:
        parser.error(f"--only: unknown job(s) {sorted(unknown)}; expected some of {[job.name for job in candidates]}")
    for job in jobs:
        job.record.update(name=job.name, row=job.row, target_steps=args.steps or job.target_steps,
                          published=job.published, target_accuracy=job.target_accuracy)

    started = time.time()
    out = Path(args.out)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="gpu-profile-"))
    work.mkdir(parents=True, exist_ok=True)
    outputs_reserve = 10
    test_deadline = started + args.total_seconds - outputs_reserve
    train_deadline = test_deadline - args.test_seconds
    summary = {"mode": "smoke (CPU, numbers meaningless)" if args.smoke else "full", "device": device,
               "machine": gpu_description(args.python), "train_seconds": train_deadline - started,
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "jobs": [j.record for j in jobs]}
    if device.startswith("cuda") and not summary["machine"].get("cuda_available"):
        summary.update(error=f"--device {device}: torch sees no CUDA device ({summary['machine']}); nothing was run",
                       wall_seconds=time.time() - started)
        write_outputs(summary, out, work)
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
        print(summary["error"], file=sys.stderr)
        return 2
    summary["batched_tasks"] = choose_batched(args.python, device, work, args)
    args.batched_models = tuple(summary["batched_tasks"]["chosen"])
    print(f"batched-tasks step for: {', '.join(args.batched_models) or 'none'}", flush=True)
    print(f"{len(jobs)} jobs in parallel on {device}; training stops {train_deadline - started:.0f} s after the "
          f"start, tests {test_deadline - started:.0f} s; work folder {work}", flush=True)
    lock = threading.Lock()

    def job_done(job: Job, record: dict) -> None:
        with lock:  # partial results survive even if this process is stopped later
            job.record.update(record)
            summary["wall_seconds"] = time.time() - started
            write_outputs(summary, out, work)

    threads = [threading.Thread(target=run_job, args=(job, args.python, device, work, (train_deadline, test_deadline),
                                                      args, job_done)) for job in jobs]
    for thread in threads:
        thread.start()
    middle = started + (train_deadline - started) / 2
    while any(thread.is_alive() for thread in threads) and time.time() < middle:
        time.sleep(1)
    if device.startswith("cuda"):
        utilisation = gpu_utilisation()
        with lock:
            summary["gpu_utilisation"] = utilisation
    for thread in threads:
        thread.join()
    left = test_deadline - time.time()
    if args.bench_seconds and left >= args.bench_seconds:
        summary["benches"] = run_benches(args.python, device, left - 5, work, args)
    with lock:
        summary["wall_seconds"] = time.time() - started
        write_outputs(summary, out, work)
    print(markdown(summary))
    if not args.work_dir:  # everything worth keeping is in logs.tar.gz; the checkpoints are not
        shutil.rmtree(work, ignore_errors=True)
    failed = [job.name for job in jobs if "accuracy" not in job.record]
    if failed:
        print(f"jobs without a test accuracy: {', '.join(failed)} (see gpu_results.json and logs.tar.gz)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
