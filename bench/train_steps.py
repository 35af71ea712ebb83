"""Training steps per second: the provided training loops of MANN, ProtoNet and MAML against a straightforward loop.

    ./kit python bench/train_steps.py                     # CPU
    ./kit python bench/train_steps.py --device cuda

Each model is timed three ways in one process, alternating in rounds; the model, its sizes and the optimizer step
are identical in all three, only the loop around them differs:

- provided: what `hw1.py` / `util.train` do: episodes from the packed cache (HW1: `DataLoader` over the cached
  `DataGenerator`, pinned memory on CUDA; HW2: `omniglot.EpisodeSampler`, images already on the device) and metrics
  kept on the device, read once every logging interval (HW1: 100 steps, HW2: 10);
- sync every step: the provided data path, but every metric read with `.item()` after every step (a host sync);
- baseline: what a straightforward CS330-style loop does: a PNG decoded for every drawing of every episode
  (HW1: `DataGenerator(cache=False)`; HW2: `png_baseline.PngTaskSampler`) plus `.item()` after every step.

The RATIO line is provided / baseline; the middle column shows how much of the gap is the host sync alone.
"""

from __future__ import annotations

import argparse

import common

# name -> settings; the sizes are the defaults of the training scripts for the popular configuration.
MODELS = {
    "mann": dict(num_classes=4, num_shot=1, meta_batch_size=128, hidden_dim=128),
    "protonet": dict(num_way=5, num_support=1, num_query=15, batch_size=16),
    "maml": dict(num_way=5, num_support=1, num_query=15, batch_size=16, num_inner_steps=1, learn_inner_lrs=True),
}
SMOKE_SIZES = {"mann": dict(meta_batch_size=4, hidden_dim=16), "protonet": dict(num_query=2, batch_size=2),
               "maml": dict(num_query=2, batch_size=2)}
HW1_LOG_INTERVAL = 100  # hw1.py --eval_every default
HW2_LOG_INTERVAL = 10  # util --log_interval default


def mann_contenders(settings: dict, device: str, seed: int) -> dict:
    import torch

    import hw1
    from png_baseline import png_data_dir

    def loop(sync_every: int, png: bool):
        flags = [f"--num_classes={settings['num_classes']}", f"--num_shot={settings['num_shot']}",
                 f"--meta_batch_size={settings['meta_batch_size']}", f"--hidden_dim={settings['hidden_dim']}"]
        if png:
            flags += ["--no_cache", f"--data_dir={png_data_dir('train')}"]
        args = hw1.parse_args(flags)
        torch.manual_seed(seed)
        model = hw1.build_model("lstm", args.num_classes, args.num_shot + 1, args.hidden_dim).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
        batches = hw1.episode_loader(args, "train", seed, torch.device(device))
        window = torch.zeros(2, device=device)
        steps = 0

        def step() -> int:
            nonlocal steps
            images, labels = next(batches)
            preds = model(images, labels)
            loss = model.loss_function(preds, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            window.add_(torch.stack([loss.detach(), hw1.query_accuracy(preds.detach(), labels).mean()]))
            steps += 1
            if steps % sync_every == 0:
                window.tolist()
                window.zero_()
            return 1
        return step

    return {"provided": loop(HW1_LOG_INTERVAL, png=False), "sync every step": loop(1, png=False),
            "baseline (PNG + sync)": loop(1, png=True)}


def hw2_contenders(model: str, settings: dict, device: str, seed: int) -> dict:
    import torch

    import omniglot
    import util
    from png_baseline import PngTaskSampler

    def learner():
        torch.manual_seed(seed)
        if model == "protonet":
            import protonet

            return protonet.ProtoNet(device=device)
        import maml

        return maml.MAML(settings["num_way"], settings["num_inner_steps"], 0.4, settings["learn_inner_lrs"], 0.001,
                         device=device)

    sizes = (settings["num_way"], settings["num_support"], settings["num_query"])
    batch_size = settings["batch_size"]

    def loop(sync_every: int, png: bool):
        trainee = learner()
        if png:
            sampler = PngTaskSampler("train", *sizes, seed=seed, device=device)
            batches = iter(lambda: sampler.sample(batch_size), None)
        else:
            batches = iter(omniglot.get_omniglot_dataloader("train", batch_size, *sizes, num_tasks_per_epoch=10**9,
                                                            seed=seed, device=device))
        pending = []

        def step() -> int:
            pending.append(trainee.train_step(next(batches)))
            if len(pending) == sync_every:
                util._average(pending)  # the provided loop's one device-to-host copy per logging interval
                pending.clear()
            return 1
        return step

    return {"provided": loop(HW2_LOG_INTERVAL, png=False), "sync every step": loop(1, png=False),
            "baseline (PNG + sync)": loop(1, png=True)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    common.common_arguments(parser, seconds=3.0, rounds=3)
    args = parser.parse_args(argv)
    common.apply_common(args)
    device = common.resolve_device(args.device)
    common.use_reference("hw1")
    common.use_reference("hw2")
    print(common.machine_header(device))
    print(f"timing: {args.rounds} alternating rounds of {args.seconds:g} s per contender, median reported")
    for model in args.models:
        settings = {**MODELS[model], **(SMOKE_SIZES[model] if args.smoke else {})}
        described = (f"N={settings['num_classes']} K={settings['num_shot']} B={settings['meta_batch_size']} "
                     f"H={settings['hidden_dim']}" if model == "mann" else
                     f"{settings['num_way']}w{settings['num_support']}s Q={settings['num_query']} "
                     f"B={settings['batch_size']}" + (" 1 inner step, learned lrs" if model == "maml" else ""))
        if model == "mann":
            contenders = mann_contenders(settings, device, args.seed)
        else:
            contenders = hw2_contenders(model, settings, device, args.seed)
        measured = common.side_by_side(contenders, args.seconds, args.rounds, device, min_calls=1 if args.smoke else 3)
        common.report(f"{model} train steps ({described}) on {device}", "steps", measured, "provided",
                      "baseline (PNG + sync)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
