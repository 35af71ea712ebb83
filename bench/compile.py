"""`--compile` against eager mode: training steps per second, time to compile, and whether the losses agree.

    ./kit python bench/compile.py                       # CPU, inductor (compiling takes minutes here)
    ./kit python bench/compile.py --device cuda
    ./kit python bench/compile.py --backend aot_eager   # trace only: checks agreement, measures no code generation

Each model is built twice from the same seed, once eager and once compiled the way the training scripts' `--compile`
does it (hw1.py: `model.compile()`; protonet.py: `network.compile()`; maml.py: `torch.compile(maml._features)`),
and both are fed the same pre-sampled task batches. Reported per model:

- compile: wall time of the compiled learner's first WARMUP_STEPS steps (tracing and code generation, including the
  recompilation for a second batch shape) against the eager learner's. Inductor caches compiled graphs on disk
  (TORCHINDUCTOR_CACHE_DIR, by default /tmp/torchinductor_<user>), so a second run compiles much faster;
  `--cold-cache` measures a first run (an empty cache folder);
- agreement: the relative difference between the two learners' training losses at step 1 (identical weights and
  data: only floating-point reassociation separates them) and the largest one over the next steps (after optimizer
  steps from slightly different gradients: Adam can turn a rounding-level difference in a near-zero gradient into
  a sizeable step, so these grew to ~1e-3 within two steps here, and two training runs then drift apart like runs
  on two different GPUs do);
- RATIO: compiled / eager training steps per second after the warm-up, side by side in alternating rounds.

Only the models whose training `--compile` accepts are here: second-order MAML cannot be compiled (maml.py says why).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import common

# name -> settings: the training scripts' defaults for the popular configuration (MANN as in bench/train_steps.py).
MODELS = {
    "attention": dict(num_classes=4, num_shot=1, meta_batch_size=128, hidden_dim=128),
    "lstm": dict(num_classes=4, num_shot=1, meta_batch_size=128, hidden_dim=128),
    "protonet": dict(num_way=5, num_support=1, num_query=15, batch_size=16),
    "fomaml": dict(num_way=5, num_support=1, num_query=15, batch_size=16, num_inner_steps=1, learn_inner_lrs=True),
}
SMOKE_SIZES = {"attention": dict(meta_batch_size=4, hidden_dim=16), "lstm": dict(meta_batch_size=4, hidden_dim=16),
               "protonet": dict(num_query=2, batch_size=2), "fomaml": dict(num_query=2, batch_size=2)}
WARMUP_STEPS = 3  # the first call compiles; a second batch shape (e.g. support vs query) may compile once more
DISTINCT_BATCHES = 8  # pre-sampled batches, reused in turn: sampling is the same for both and outside the timing


def hw1_learners(model: str, settings: dict, device: str, seed: int, backend: str):
    import torch

    import hw1

    args = hw1.parse_args([f"--num_classes={settings['num_classes']}", f"--num_shot={settings['num_shot']}",
                           f"--meta_batch_size={settings['meta_batch_size']}",
                           f"--hidden_dim={settings['hidden_dim']}"])
    source = hw1.episode_loader(args, "train", seed, torch.device(device))
    batches = [next(source) for _ in range(DISTINCT_BATCHES)]

    def learner(compiled: bool):
        torch.manual_seed(seed)
        network = hw1.build_model(model, args.num_classes, args.num_shot + 1, args.hidden_dim).to(device)
        if compiled:
            network.compile(backend=backend)
        optimizer = torch.optim.Adam(network.parameters(), lr=args.learning_rate)
        steps = 0

        def step() -> float:
            nonlocal steps
            images, labels = batches[steps % len(batches)]
            steps += 1
            loss = network.loss_function(network(images, labels), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.detach()
        return step

    return learner


def hw2_learners(model: str, settings: dict, device: str, seed: int, backend: str):
    import torch

    import omniglot

    sizes = (settings["num_way"], settings["num_support"], settings["num_query"])
    source = iter(omniglot.get_omniglot_dataloader("train", settings["batch_size"], *sizes,
                                                   num_tasks_per_epoch=10**9, seed=seed, device=device))
    batches = [next(source) for _ in range(DISTINCT_BATCHES)]

    def learner(compiled: bool):
        torch.manual_seed(seed)
        if model == "protonet":
            import protonet

            trainee = protonet.ProtoNet(device=device)
            if compiled:
                trainee._network.compile(backend=backend)
        else:
            import maml

            trainee = maml.MAML(settings["num_way"], settings["num_inner_steps"], 0.4, settings["learn_inner_lrs"],
                                0.001, device=device, variant="first_order")
            if compiled:
                trainee._features = torch.compile(trainee._features, backend=backend)
        steps = 0

        def step():
            nonlocal steps
            metrics = trainee.train_step(batches[steps % len(batches)])
            steps += 1
            return metrics["loss"]
        return step

    return learner


def warm_up(step, device: str) -> tuple[float, list[float]]:
    """Seconds for WARMUP_STEPS steps, and their losses."""
    common.synchronize(device)
    started = time.perf_counter()
    losses = [step() for _ in range(WARMUP_STEPS)]
    common.synchronize(device)
    return time.perf_counter() - started, [float(loss) for loss in losses]


def main(argv=None) -> int:
    from omniglot_data.experiment import COMPILE_BACKENDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--backend", choices=COMPILE_BACKENDS, default=None,
                        help="torch.compile backend (default: inductor; aot_eager with --smoke)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold-cache", action="store_true",
                        help="compile into an empty inductor cache folder (a first run) instead of the shared one")
    common.common_arguments(parser, seconds=3.0, rounds=3)
    args = parser.parse_args(argv)
    args.backend = args.backend or ("aot_eager" if args.smoke else "inductor")
    if args.cold_cache:  # before torch is imported: inductor reads the variable when it first needs the folder
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-compile-cache-")
    common.apply_common(args)
    device = common.resolve_device(args.device)
    common.use_reference("hw1")
    common.use_reference("hw2")
    print(common.machine_header(device))
    print(f"backend: {args.backend}; timing after {WARMUP_STEPS} warm-up steps: {args.rounds} alternating rounds of "
          f"{args.seconds:g} s per contender, median reported")
    for model in args.models:
        settings = {**MODELS[model], **(SMOKE_SIZES[model] if args.smoke else {})}
        if model in ("attention", "lstm"):
            learner = hw1_learners(model, settings, device, args.seed, args.backend)
            described = (f"N={settings['num_classes']} K={settings['num_shot']} B={settings['meta_batch_size']} "
                         f"H={settings['hidden_dim']}")
        else:
            learner = hw2_learners(model, settings, device, args.seed, args.backend)
            described = (f"{settings['num_way']}w{settings['num_support']}s Q={settings['num_query']} "
                         f"B={settings['batch_size']}")
        contenders = {"eager": learner(compiled=False), f"--compile {args.backend}": learner(compiled=True)}
        warm = {name: warm_up(step, device) for name, step in contenders.items()}
        (eager_seconds, eager_losses), (compiled_seconds, compiled_losses) = warm.values()
        differences = [abs(a - b) / max(abs(a), 1e-12) for a, b in zip(eager_losses, compiled_losses)]
        label = f"{model} train steps ({described}) on {device}"
        cache = "cold" if args.cold_cache else "shared"
        print(f"  {label} | first {WARMUP_STEPS} steps: eager {eager_seconds:.1f} s, compiled {compiled_seconds:.1f} s "
              f"(compiling, {cache} cache); relative loss difference: step 1 {differences[0]:.1e}, steps "
              f"2-{WARMUP_STEPS} up to {max(differences[1:]):.1e}", flush=True)
        measured = common.side_by_side(contenders, args.seconds, args.rounds, device, min_calls=1 if args.smoke else 3)
        common.report(label, "steps", measured, f"--compile {args.backend}", "eager")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
