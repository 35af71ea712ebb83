"""Harness-side set-up shared by the MAML tests: configurations, weights and inner learning rates, tasks.

Both sides get the SAME meta-parameters (the reference's initialisation, perturbed here so that the biases are not
zero) and per-parameter inner learning rates that all differ from each other and from `inner_lr`, so code that uses
one rate for every tensor, or a constant, computes something else.
"""

from __future__ import annotations

import torch

from hw2_checks import reference_inputs

# Small enough to run in a fraction of a second per call, large enough for batch norm and the head to matter.
CONFIG = dict(num_outputs=5, num_inner_steps=2, inner_lr=0.4, learn_inner_lrs=False, outer_lr=0.001,
              num_hidden_channels=8, variant="maml", imaml_lambda=2.0, imaml_cg_steps=5)
TASKS = dict(split="train", seed=2330, num_tasks=2, num_way=5, num_support=2, num_query=3)


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


def first_task(batch: dict) -> tuple:
    return batch["images_support"][0], batch["labels_support"][0], batch["images_query"][0], batch["labels_query"][0]


HEAD_PARAMETERS = ("w4", "b4")  # the linear head of the MAML network (maml.HEAD_PARAMETERS); ANIL adapts only these
