"""Training states that a grader can check: flat tensors of the parameters and their Adam moments, and a digest.

The graders' accuracy tests train the submission's code in a sandbox and must know that the weights it hands back
come from that training, from the initialisation the grader chose, and not from a file or a table. The training
probe therefore commits to its trajectory as it goes, by the digest of its state every few steps; afterwards the
grader asks for a few of those states, checks them against the digests, and replays the steps between them with
the reference's own update (in the grading engine, outside the sandbox). This module is the part both sides share: the probe
computes the digests with it in the worker, the grader recomputes them with it in the harness.

A training state is a flat dict of CPU tensors:

    "param/<name>"       the parameter
    "exp_avg/<name>"     Adam's first moment (zeros before the first step)
    "exp_avg_sq/<name>"  Adam's second moment (zeros before the first step)
    "step"               Adam's step count, a float64 scalar (the same for every parameter: one param group)
"""

from __future__ import annotations

import hashlib

import torch

PARAM, EXP_AVG, EXP_AVG_SQ, STEP = "param/", "exp_avg/", "exp_avg_sq/", "step"


def training_state(parameters: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """A detached CPU copy of named parameters and their Adam state (`optimizer` holds exactly these tensors)."""
    state: dict[str, torch.Tensor] = {}
    steps = set()
    for name, parameter in parameters.items():
        moments = optimizer.state.get(parameter, {})
        state[PARAM + name] = parameter.detach().to("cpu", copy=True)
        for key, prefix in (("exp_avg", EXP_AVG), ("exp_avg_sq", EXP_AVG_SQ)):
            value = moments.get(key)
            state[prefix + name] = (torch.zeros_like(state[PARAM + name]) if value is None
                                    else value.detach().to("cpu", copy=True))
        steps.add(float(moments["step"]) if "step" in moments else 0.0)
    if len(steps) > 1:
        raise ValueError(f"the optimizer's parameters are at different step counts {sorted(steps)}")
    state[STEP] = torch.tensor(steps.pop() if steps else 0.0, dtype=torch.float64)
    return state


def initial_training_state(parameters: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The training state of `parameters` before the first step (zero moments, step 0)."""
    state: dict[str, torch.Tensor] = {}
    for name, value in parameters.items():
        value = value.detach().to("cpu", copy=True)
        state[PARAM + name] = value
        state[EXP_AVG + name] = torch.zeros_like(value)
        state[EXP_AVG_SQ + name] = torch.zeros_like(value)
    state[STEP] = torch.tensor(0.0, dtype=torch.float64)
    return state


def parameters_of(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{name: parameter} of a training state."""
    return {key[len(PARAM):]: value for key, value in state.items() if key.startswith(PARAM)}


def load_training_state(state: dict[str, torch.Tensor], parameters: dict[str, torch.Tensor],
                        optimizer: torch.optim.Optimizer) -> None:
    """Copy a training state into named parameters and the Adam optimizer that holds them."""
    names = set(parameters_of(state))
    if names != set(parameters):
        raise ValueError(f"training state for parameters {sorted(names)}, expected {sorted(parameters)}")
    step = float(state[STEP])
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(state[PARAM + name])
            if step > 0:
                optimizer.state[parameter] = {
                    "step": torch.tensor(step, dtype=torch.float32),
                    "exp_avg": state[EXP_AVG + name].to(parameter.device, parameter.dtype).clone(),
                    "exp_avg_sq": state[EXP_AVG_SQ + name].to(parameter.device, parameter.dtype).clone(),
                }
            else:
                optimizer.state.pop(parameter, None)


def digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a flat tensor dict: names, dtypes, shapes and bytes, in sorted name order."""
    hasher = hashlib.sha256()
    for name in sorted(state):
        value = state[name].detach().to("cpu").contiguous()
        hasher.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        hasher.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return hasher.hexdigest()


class EpisodeDigest:
    """The digest of the episodes of training steps, as a training probe commits to them and the grader checks
    them: each step's tensors (images, then labels) as float32 bytes, in order."""

    def __init__(self):
        self._hasher = hashlib.sha256()

    def add(self, *tensors: torch.Tensor) -> None:
        for tensor in tensors:
            self._hasher.update(tensor.detach().to("cpu", torch.float32).contiguous().reshape(-1)
                                .view(torch.uint8).numpy().tobytes())

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()
