"""What HW1's validation costs: one training step of hw1.py against one evaluation of --num_val_episodes episodes.

    OMP_NUM_THREADS=1 ./kit python bench/hw1_validation.py

Both are timed in one process, alternating in rounds (bench/common.py). The RATIO line is training steps per second
over validations per second: how many training steps one validation costs. Divided by --eval_every (100), it is
the share of training time that validation adds.
"""

from __future__ import annotations

import argparse

import common


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--num_val_episodes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--seed", type=int, default=0)
    common.common_arguments(parser, seconds=3.0, rounds=3)
    args = parser.parse_args(argv)
    common.apply_common(args)
    common.use_reference("hw1")
    import torch

    import hw1
    from train_steps import mann_contenders

    flags = ["--meta_batch_size", "4", "--hidden_dim", "16"] if args.smoke else []
    options = hw1.parse_args(flags)
    print(common.machine_header("cpu"))
    print(f"MANN N={options.num_classes} K={options.num_shot} B={options.meta_batch_size} H={options.hidden_dim}; "
          f"timing: {args.rounds} alternating rounds of {args.seconds:g} s per contender, median reported")
    settings = dict(num_classes=options.num_classes, num_shot=options.num_shot,
                    meta_batch_size=options.meta_batch_size, hidden_dim=options.hidden_dim)
    model = hw1.build_model("lstm", options.num_classes, options.num_shot + 1, options.hidden_dim)
    source = hw1.episode_loader(options, "val", args.seed, torch.device("cpu"))
    for episodes in args.num_val_episodes:
        val_set = [next(source) for _ in range(-(-episodes // options.meta_batch_size))]

        def validation() -> int:
            hw1.evaluate(model, iter(val_set), episodes)
            return 1

        contenders = {"training step": mann_contenders(settings, "cpu", args.seed)["provided"],
                      f"validation of {episodes} episodes": validation}
        measured = common.side_by_side(contenders, args.seconds, args.rounds, "cpu", min_calls=1 if args.smoke else 3)
        common.report(f"hw1 validation cost ({episodes} episodes)", "calls", measured, "training step",
                      f"validation of {episodes} episodes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
