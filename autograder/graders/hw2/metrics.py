"""Accuracy the HW2 grader measures itself (test_training_accuracy.py and `python -m autograder calibrate hw2`).

The submission's own code trains in the worker (ProtoNet: its train_step, hence its _step; MAML: its train_step,
hence its _outer_step and _inner_loop), under the profile's budget, from initial weights the grader drew with a
secret seed (on the reference), on the provided sampler's training stream; it hands back the trained weights and
commits to its trajectory, which the grader checks by replaying a few secret segments with the reference's
train_step on the same stream (`autograder.scoring.training_audit`). The trained weights are then scored with the
REFERENCE code in a trusted worker, on tasks the harness draws from the TEST split with a seed the sandbox never
sees (no evaluation-time code of the submission runs, and the test drawings never enter the sandbox):

- ProtoNet: the reference network with the trained weights embeds each set; prototypes, distances and predictions
  are computed here;
- MAML: the reference adapts the trained meta-parameters to each support set with its _inner_loop (train=False)
  and returns the query logits.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache

import torch

from autograder import SOLUTIONS_DIR
from autograder.scoring.training_audit import audit_trajectory, checkpoint_steps, spacing
from autograder.scoring.training_time import run_paced
from omniglot_data.trajectory import parameters_of

CALL_TIMEOUT = 1800  # seconds per probe call when calibrating (grading uses the test's timeout marker)
EVAL_CHUNK = 100  # tasks per evaluation call: keeps each request and reply small
AUDIT_CHECKPOINTS = 20  # the trajectory is committed about this many times per run
AUDIT_SEGMENTS = 2  # segments replayed with the reference's train_step (10% of the training)
# Replayed vs committed outputs, relative to the segment's movement (bench/audit_tolerance.py): correct alternates
# reach 0.022 (ProtoNet with index_add, first segment: Adam turns rounding noise into full steps), bugs 0.88-1.2.
AUDIT_TOLERANCE = 0.15
AUDIT_PROBE_TASKS, AUDIT_PROBE_SEED = 4, 330  # training-split tasks on which trained weights are compared


class BadPredictions(AssertionError):
    """The model's output cannot be scored (wrong shape, not finite); the message is what the feedback shows."""


@lru_cache(maxsize=1)
def _provided_omniglot():
    """The provided omniglot.py (trusted, instructor-written): the harness draws tasks with the students' sampler."""
    path = SOLUTIONS_DIR / "hw2" / "omniglot.py"
    spec = importlib.util.spec_from_file_location("_hw2_grader_omniglot", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluation_tasks(budget, seed: int, data_dir: str | None, split: str = "test",
                     count: int | None = None) -> dict[str, torch.Tensor]:
    """`budget["eval_tasks"]` (or `count`) tasks of `split`, stacked: images_support [T, N*S, 1, 28, 28], ..."""
    omniglot = _provided_omniglot()
    count = int(budget["eval_tasks"]) if count is None else count
    loader = omniglot.get_omniglot_dataloader(
        split, count, int(budget["num_way"]), int(budget["num_support"]), int(budget["eval_num_query"]), count,
        seed=seed, data_dir=data_dir)
    tasks = next(iter(loader))
    keys = ("images_support", "labels_support", "images_query", "labels_query")
    return {key: torch.stack([task[i] for task in tasks]) for i, key in enumerate(keys)}


def probe_tasks(budget, data_dir: str | None) -> dict[str, torch.Tensor]:
    """The training-split tasks on which the audit compares trained weights (fixed: nothing secret about them)."""
    return evaluation_tasks(budget, AUDIT_PROBE_SEED, data_dir, split="train", count=AUDIT_PROBE_TASKS)


def prototype_logits(support: torch.Tensor, labels_support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Negative squared distances [T, N*Q, N] of query embeddings to the class means of the support embeddings."""
    support, query = support.double(), query.double()
    membership = torch.nn.functional.one_hot(labels_support).double()  # [T, N*S, N]
    prototypes = membership.transpose(1, 2) @ support / membership.sum(dim=1).unsqueeze(-1)  # [T, N, D]
    return -(query.unsqueeze(2) - prototypes.unsqueeze(1)).square().sum(-1)


def _check(value, expected_shape: tuple, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected_shape:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise BadPredictions(f"{what}: got {shape} for a chunk of evaluation tasks, expected {expected_shape}")
    if not bool(torch.isfinite(value).all()):
        raise BadPredictions(f"{what} contain NaN or infinity after training")
    return value


def _chunks(tasks: dict):
    count = tasks["labels_support"].shape[0]
    for start in range(0, count, EVAL_CHUNK):
        yield {key: value[start:start + EVAL_CHUNK] for key, value in tasks.items()}


def _trained_weights(student, reference, train_probe: str, replay_probe: str, inputs: dict, steps: int,
                     initial: tuple[str, dict], outputs, notes: list | None, curves: list | None) -> dict:
    """Train in the student's worker from `initial` (the probe's argument name and the parameters), check the
    committed trajectory (`outputs(states)`: the reference's outputs of training states on a probe batch); the
    trained parameters. The training curve the probe replied goes to `curves` (with the steps trained)."""
    every = spacing(steps, AUDIT_CHECKPOINTS)
    commitment = run_paced(student, reference, train_probe,
                           {**inputs, **dict([initial]), "steps": steps, "checkpoint_every": every}, steps)
    if curves is not None:
        curves.append((commitment.get("curve"), steps))
    boundaries = checkpoint_steps(steps, every)

    def replay(state, k):  # the reference regenerates the provided sampler's stream itself: nothing to fetch
        return reference.run(replay_probe, **inputs, state=state, first_step=boundaries[k],
                             steps=boundaries[k + 1] - boundaries[k])["state"]

    final, audit = audit_trajectory(
        commitment=commitment, initial_parameters=initial[1], total_steps=steps, every=every,
        fetch_state=lambda k: student.run("training_checkpoint", index=k).get("state"), replay=replay,
        outputs=outputs, segments=AUDIT_SEGMENTS, tolerance=AUDIT_TOLERANCE)
    if notes is not None:
        notes.append(audit.describe())
    return parameters_of(final)


def protonet_accuracy(student, reference, budget, device, *, train_seed, init_seed, eval_seed, train=True,
                      data_dir=None, notes=None, curves=None) -> float:
    """Query accuracy of the ProtoNet embedding trained under `budget`, on `budget["eval_tasks"]` test-split tasks."""
    initial = reference.run("protonet_parameters", seed=init_seed)["state"]
    inputs = dict(seed=train_seed, batch_size=int(budget["protonet_batch_size"]), num_way=int(budget["num_way"]),
                  num_support=int(budget["num_support"]), num_query=int(budget["train_num_query"]),
                  learning_rate=float(budget["protonet_learning_rate"]), device=device)
    probe = probe_tasks(budget, data_dir)
    images = torch.cat([probe["images_support"], probe["images_query"]], dim=1).flatten(0, 1)

    def outputs(states):
        return list(reference.run("protonet_outputs", states=states, images=images, device=device)["outputs"])

    weights = _trained_weights(student, reference, "protonet_train", "protonet_replay", inputs,
                               int(budget["protonet_steps"]) if train else 0, ("initial_state", initial), outputs,
                               notes, curves)
    correct, total = 0, 0
    for chunk in _chunks(evaluation_tasks(budget, eval_seed, data_dir)):
        got = reference.run("protonet_embed", state=weights, images_support=chunk["images_support"],
                            images_query=chunk["images_query"], device=device)
        count, support_rows = chunk["labels_support"].shape
        query_rows = chunk["images_query"].shape[1]
        support = got.get("support")
        dim = support.shape[-1] if isinstance(support, torch.Tensor) and support.dim() == 3 else -1
        support = _check(support, (count, support_rows, dim), "the support embeddings")
        query = _check(got.get("query"), (count, query_rows, dim), "the query embeddings")
        logits = prototype_logits(support, chunk["labels_support"], query)
        correct += int((logits.argmax(-1) == chunk["labels_query"]).sum())
        total += chunk["labels_query"].numel()
    return correct / total


def maml_accuracy(student, reference, budget, device, *, train_seed, init_seed, eval_seed, train=True, data_dir=None,
                  notes=None, curves=None) -> float:
    """Query accuracy of MAML trained under `budget` and adapted by the reference's inner loop, on test-split tasks."""
    num_way = int(budget["num_way"])
    config = dict(num_outputs=num_way, num_inner_steps=int(budget["maml_inner_steps"]),
                  inner_lr=float(budget["maml_inner_lr"]), learn_inner_lrs=False,
                  outer_lr=float(budget["maml_outer_lr"]), num_hidden_channels=int(budget["maml_hidden_channels"]),
                  variant="maml")
    initial = reference.run("maml_parameters", seed=init_seed, config=config)["parameters"]
    inputs = dict(seed=train_seed, batch_size=int(budget["maml_batch_size"]), num_way=num_way,
                  num_support=int(budget["num_support"]), num_query=int(budget["train_num_query"]), config=config,
                  device=device)
    probe = probe_tasks(budget, data_dir)

    def outputs(states):
        return list(reference.run("maml_outputs", config=config, states=states, images_support=probe["images_support"],
                                  labels_support=probe["labels_support"], images_query=probe["images_query"],
                                  device=device)["outputs"])

    weights = _trained_weights(student, reference, "maml_train", "maml_replay", inputs,
                               int(budget["maml_steps"]) if train else 0, ("initial_parameters", initial), outputs,
                               notes, curves)
    correct, total = 0, 0
    for chunk in _chunks(evaluation_tasks(budget, eval_seed, data_dir)):
        got = reference.run("maml_query_logits", config=config, parameters=weights,
                            images_support=chunk["images_support"], labels_support=chunk["labels_support"],
                            images_query=chunk["images_query"], device=device)
        logits = _check(got.get("logits"), (*chunk["labels_query"].shape, num_way), "the adapted query logits")
        correct += int((logits.argmax(-1) == chunk["labels_query"]).sum())
        total += chunk["labels_query"].numel()
    return correct / total


METRICS = {"protonet_accuracy": protonet_accuracy, "maml_accuracy": maml_accuracy}
