"""The tasks of a meta-batch in one batched computation (`torch.func.vmap`), for the reference MAML and ProtoNet.

    ./kit python bench/batched_tasks.py                      # RATIO lines: batched vs plain steps/s (CPU)
    ./kit python bench/batched_tasks.py --device cuda        # the same on a GPU
    ./kit python bench/batched_tasks.py train maml.py ...    # a reference training run with the batched step

The homework's loops handle one task at a time (the student's `MAML._inner_loop` / `_outer_step` and
`ProtoNet._step`): on a GPU that is a few small kernels per layer per task, and a meta-batch of 16 tasks leaves the
card mostly idle. Here the reference algorithm of each is written once more with `torch.func` (`grad` inside `vmap`
over the tasks) and installed on the REFERENCE learner only, for benchmarks and the GPU profile's training rows. The
released starter code never sees it, and nothing of a student's submission is replaced.

A batched step must compute what the plain step computes: `tests/test_batched_tasks.py` checks on the CPU that loss,
metrics and every gradient (meta-parameters and learned inner learning rates) agree to float32 rounding
(`TOLERANCE`), for second-order MAML, first-order MAML, evaluation and ProtoNet, and that a short training run with
the batched step follows the plain run step by step.
"""

from __future__ import annotations

import argparse
import sys

import common

# Batched and per-task convolutions may pick different kernels: they agree to float32 rounding, not bitwise.
TOLERANCE = dict(rtol=1e-4, atol=1e-5)
# The MAML variants whose inner loop is plain gradient descent on all parameters; the others keep their own step.
BATCHED_MAML_VARIANTS = ("maml", "first_order")


def stack_tasks(task_batch, device):
    """A list of B task tuples -> (images_support [B, N*S, 1, 28, 28], labels_support [B, N*S], query likewise)."""
    import torch

    shapes = {tuple(tuple(tensor.shape) for tensor in task) for task in task_batch}
    if len(shapes) != 1:
        raise ValueError(f"batched tasks need tasks of one shape; this batch has {sorted(shapes)}")
    return tuple(torch.stack([task[part] for task in task_batch]).to(device) for part in range(4))


def maml_outer_step(self, task_batch, train):
    """`MAML._outer_step` (same arguments and returns) with the tasks vmapped; other variants take their own."""
    import torch
    import torch.nn.functional as F

    import util

    if self._variant not in BATCHED_MAML_VARIANTS:
        plain = getattr(type(self), "_plain_outer_step", type(self)._outer_step)  # see install()
        return plain(self, task_batch, train)
    create_graph = self._second_order(train)
    meta_parameters, inner_lrs = self._meta_parameters, self._inner_lrs

    def one_task(images_support, labels_support, images_query, labels_query):
        def support_loss(parameters):
            logits = self._forward(images_support, parameters)
            return F.cross_entropy(logits, labels_support), logits

        parameters, accuracies = dict(meta_parameters), []
        for _ in range(self._num_inner_steps):
            gradients, logits = torch.func.grad(support_loss, has_aux=True)(parameters)
            accuracies.append(util.score(logits, labels_support))
            if not create_graph:  # as autograd.grad(create_graph=False): the gradient is a constant
                gradients = {name: gradient.detach() for name, gradient in gradients.items()}
            parameters = {name: value - inner_lrs[name] * gradients[name] for name, value in parameters.items()}
        accuracies.append(util.score(self._forward(images_support, parameters), labels_support))
        logits_query = self._forward(images_query, parameters)
        return (F.cross_entropy(logits_query, labels_query), torch.stack(accuracies),
                util.score(logits_query, labels_query))

    losses, accuracies_support, accuracies_query = torch.func.vmap(one_task)(*stack_tasks(task_batch, self.device))
    return losses.mean(), accuracies_support.mean(dim=0), accuracies_query.mean()


def protonet_step(self, task_batch):
    """`ProtoNet._step` (same arguments and returns) with the tasks vmapped through the network."""
    import torch
    import torch.nn.functional as F

    import util

    images_support, labels_support, images_query, labels_query = stack_tasks(task_batch, self.device)
    num_way = images_support.shape[1] // self._batched_num_support
    weights = dict(self._network.named_parameters())
    buffers = dict(self._network.named_buffers())

    def embed(images):  # batch norm's statistics are those of this set of this task, as in the plain step
        return torch.func.functional_call(self._network, (weights, buffers), (images,))

    def one_task(images_support, labels_support, images_query, labels_query):
        embeddings_support, embeddings_query = embed(images_support), embed(images_query)
        membership = F.one_hot(labels_support, num_way).to(embeddings_support.dtype)  # [N*S, N]
        prototypes = (membership.T @ embeddings_support) / membership.sum(dim=0).unsqueeze(1)
        logits_support = -(embeddings_support.unsqueeze(1) - prototypes.unsqueeze(0)).square().sum(dim=-1)
        logits_query = -(embeddings_query.unsqueeze(1) - prototypes.unsqueeze(0)).square().sum(dim=-1)
        return (F.cross_entropy(logits_query, labels_query), util.score(logits_support, labels_support),
                util.score(logits_query, labels_query))

    losses, accuracies_support, accuracies_query = torch.func.vmap(one_task)(
        images_support, labels_support, images_query, labels_query)
    return losses.mean(), accuracies_support.mean(), accuracies_query.mean()


def install(module, num_support: int | None = None) -> None:
    """Replace the per-task step of the reference module `maml` or `protonet` (already imported) by the batched one.

    ProtoNet's one-hot needs the way N as a Python int inside vmap; it is read from the support size and
    `num_support` (the script's `--num_support`), so a step never waits on the device to learn it.
    """
    if hasattr(module, "MAML"):
        cls = module.MAML
        if not hasattr(cls, "_plain_outer_step"):
            cls._plain_outer_step = cls._outer_step
        cls._outer_step = maml_outer_step
    elif hasattr(module, "ProtoNet"):
        if num_support is None or num_support < 1:
            raise ValueError(f"install(protonet): num_support must be a positive int, got {num_support!r}")
        module.ProtoNet._batched_num_support = int(num_support)
        module.ProtoNet._step = protonet_step
    else:
        raise ValueError(f"install: {getattr(module, '__name__', module)!r} is neither the maml nor the protonet module")


def batch_learner(learner, num_support: int) -> None:
    """Give one reference learner (a MAML or ProtoNet object) the batched step, leaving its class as it is."""
    learner._batched_num_support = int(num_support)
    if hasattr(learner, "_meta_parameters"):
        learner._outer_step = maml_outer_step.__get__(learner)
    else:
        learner._step = protonet_step.__get__(learner)


def train(script: str, arguments: list[str]) -> None:
    """Run the reference `maml.py` / `protonet.py` (named as in autograder/solutions/hw2) with the batched step."""
    folder = common.use_reference("hw2")
    if script not in ("maml.py", "protonet.py"):
        raise SystemExit(f"batched_tasks.py train: expected maml.py or protonet.py, got {script!r}")
    module = __import__(script[:-3])
    install(module, num_support=_support_size(arguments))
    sys.argv = [str(folder / script), *arguments]
    print(f"batched tasks: {script} with the vmapped step (bench/batched_tasks.py)", flush=True)
    module.main(module.parse_arguments(arguments))


def _support_size(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--num_support", type=int, default=1)
    return parser.parse_known_args(arguments)[0].num_support


def contenders(model: str, settings: dict, device: str, seed: int) -> dict:
    """One training step of the plain and of the batched reference learner, from the same seed and the same tasks."""
    import importlib

    import torch

    import omniglot

    module = importlib.import_module(model)

    def loop(batched: bool):
        torch.manual_seed(seed)
        if model == "protonet":
            learner = module.ProtoNet(device=device)
        else:
            learner = module.MAML(settings["num_way"], settings["num_inner_steps"], 0.4, True, 0.001, device=device)
        if batched:
            batch_learner(learner, settings["num_support"])
        batches = iter(omniglot.get_omniglot_dataloader(
            "train", settings["batch_size"], settings["num_way"], settings["num_support"], settings["num_query"],
            num_tasks_per_epoch=10**9, seed=seed, device=device))

        def step() -> int:
            learner.train_step(next(batches))
            return 1
        return step

    return {"batched (vmap)": loop(True), "plain (per task)": loop(False)}


SETTINGS = {"protonet": dict(num_way=5, num_support=1, num_query=15, batch_size=16),
            "maml": dict(num_way=5, num_support=1, num_query=15, batch_size=16, num_inner_steps=1)}
SMOKE_SETTINGS = {"protonet": dict(num_query=2, batch_size=2), "maml": dict(num_query=2, batch_size=2)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        if len(argv) < 2:
            raise SystemExit("usage: batched_tasks.py train {maml.py,protonet.py} [the script's flags]")
        train(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--models", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0)
    common.common_arguments(parser, seconds=3.0, rounds=3)
    args = parser.parse_args(argv)
    common.apply_common(args)
    device = common.resolve_device(args.device)
    common.use_reference("hw2")
    print(common.machine_header(device))
    print(f"timing: {args.rounds} alternating rounds of {args.seconds:g} s per contender, median reported")
    for model in args.models:
        settings = {**SETTINGS[model], **(SMOKE_SETTINGS[model] if args.smoke else {})}
        label = (f"{model} {settings['num_way']}w{settings['num_support']}s Q={settings['num_query']} "
                 f"B={settings['batch_size']}")
        measured = common.side_by_side(contenders(model, settings, device, args.seed), args.seconds, args.rounds,
                                       device)
        common.report(label, "steps", measured, "batched (vmap)", "plain (per task)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
