"""Training steps per second with 1 torch thread against more: what the training scripts' default `--threads` rests on.

    ./kit python bench/threads.py                 # run it WITHOUT OMP_NUM_THREADS set
    ./kit python bench/threads.py --threads-list 1 2 4

Each model (the MANN, ProtoNet and MAML steps of bench/train_steps.py's "provided" loop, at the training scripts'
default sizes) is timed with every thread count in one process, alternating in rounds, so that other work on the
machine slows every contender alike. One RATIO line per model and thread count above one: 1 thread / N threads
(above 1x: the single thread is faster).
"""

from __future__ import annotations

import argparse

import common
import train_steps


def with_threads(threads: int, step):
    """`step`, run with torch's intra-op pool set to `threads` (set before every call: the contenders alternate)."""
    import torch

    def call() -> int:
        torch.set_num_threads(threads)
        return step()
    return call


def main(argv=None) -> int:
    import torch

    from omniglot_data.experiment import default_threads, usable_cores

    torch_default = torch.get_num_threads()  # before anything sets it: what a script gets without --threads
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(train_steps.MODELS), default=list(train_steps.MODELS))
    parser.add_argument("--threads-list", type=int, nargs="+", default=None,
                        help="thread counts to compare (default: 1, 2 and torch's own default, at most the cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per contender per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the median is reported)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few calls of everything, to check that the benchmark still runs (numbers meaningless)")
    args = parser.parse_args(argv)
    counts = sorted(set(args.threads_list or [1, 2, torch_default]))
    if min(counts) < 1:
        raise SystemExit(f"--threads-list: expected positive integers, got {counts}")
    if not args.threads_list:
        counts = [count for count in counts if count <= usable_cores()] or [1]
    common.use_reference("hw1")
    common.use_reference("hw2")
    print(common.machine_header("cpu"))
    print(f"torch's default threads here: {torch_default}; the training scripts' default (--threads unset, "
          f"OMP_NUM_THREADS unset): {default_threads()}")
    print(f"timing: {args.rounds} alternating rounds of {args.seconds:g} s per contender, median reported")
    for model in args.models:
        settings = {**train_steps.MODELS[model], **(train_steps.SMOKE_SIZES[model] if args.smoke else {})}
        contenders = {}
        for count in counts:
            if model == "mann":
                step = train_steps.mann_contenders(settings, "cpu", args.seed)["provided"]
            else:
                step = train_steps.hw2_contenders(model, settings, "cpu", args.seed)["provided"]
            contenders[f"{count} thread{'s' if count > 1 else ''}"] = with_threads(count, step)
        measured = common.side_by_side(contenders, args.seconds, args.rounds, "cpu",
                                       min_calls=1 if args.smoke else 3)
        names = list(contenders)
        for other in names[1:]:
            common.report(f"{model} train steps on cpu", "steps", {name: measured[name] for name in (names[0], other)},
                          names[0], other)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
