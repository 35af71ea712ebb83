"""Harness-side set-up shared by the MAML tests: configurations, weights and inner learning rates, tasks.

Both sides get the SAME meta-parameters (the reference's initialisation, perturbed here so that the biases are not
zero) and per-parameter inner learning rates that all differ from each other and from `inner_lr`, so code that uses
one rate for every tensor, or a constant, computes something else.

Every size differs from every other (T tasks, N way, S support and Q query examples per class, inner steps, channels),
so that code using one where another is meant fails. The exception is SAME_SIZE_TASKS (S = Q), for the tests of
_outer_step's own bookkeeping: there the query loss taken with the support labels (its own test) does not crash.
"""

from __future__ import annotations

import torch

from hw2_checks import reference_inputs

# Small enough to run in a fraction of a second per call, large enough for batch norm and the head to matter.
CONFIG = dict(num_outputs=4, num_inner_steps=6, inner_lr=0.4, learn_inner_lrs=False, outer_lr=0.001,
              num_hidden_channels=8, variant="maml", imaml_lambda=2.0, imaml_cg_steps=5)
TASKS = dict(split="train", seed=2330, num_tasks=3, num_way=4, num_support=2, num_query=5)
SAME_SIZE_TASKS = {**TASKS, "num_tasks": 2, "num_support": 3, "num_query": 3}


def config(**overrides) -> dict:
    return {**CONFIG, **overrides}


def meta_state(reference, seed: int, **overrides) -> tuple[dict, dict]:
    """(parameters, inner_lrs) for the configuration: the reference's initialisation (drawn once per grading; it
    depends only on the network's shape) plus a perturbation drawn here from `seed`."""
    shape = {key: config(**overrides)[key] for key in ("num_outputs", "num_hidden_channels")}
    state = reference_inputs(reference, "maml_parameters", seed=0, config=config(**shape))
    generator = torch.Generator().manual_seed(seed)
    parameters = {name: value + 0.05 * torch.randn(value.shape, generator=generator)
                  for name, value in state["parameters"].items()}
    inner_lrs = {name: torch.tensor(0.25 + 0.03 * i) for i, name in enumerate(sorted(state["inner_lrs"]))}
    return parameters, inner_lrs


def tasks(reference, **overrides) -> dict:
    return reference_inputs(reference, "sample_tasks", **{**TASKS, **overrides})


def given_adaptation(batch: dict, parameters: dict, seed: int,
                     num_inner_steps: int = CONFIG["num_inner_steps"]) -> dict:
    """What maml_outer_step's stand-in inner loop returns for each task (instead of the submission's _inner_loop), so
    that _outer_step is graded on its own: adapted = meta-parameters + a delta drawn here, and support accuracies that
    differ from task to task and step to step (multiples of 1 / the support size, as real ones are)."""
    generator = torch.Generator().manual_seed(seed)
    count, rows = batch["labels_support"].shape
    deltas = [{name: 0.1 * value.norm() / value.numel() ** 0.5 * torch.randn(value.shape, generator=generator)
               for name, value in parameters.items()} for _ in range(count)]
    accuracies = [(torch.randint(0, rows + 1, (num_inner_steps + 1,), generator=generator) / rows).tolist()
                  for _ in range(count)]
    return {"deltas": deltas, "accuracies": accuracies}


def first_task(batch: dict) -> tuple:
    return batch["images_support"][0], batch["labels_support"][0], batch["images_query"][0], batch["labels_query"][0]


HEAD_PARAMETERS = ("w4", "b4")  # the linear head of the MAML network (maml.HEAD_PARAMETERS); ANIL adapts only these
