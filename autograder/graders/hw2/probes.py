"""Probes of HW2: drive `protonet.py` and `maml.py` through their interfaces and return plain data.

Shipped into the student's sandbox: nothing here is secret. Expected values, tolerances, thresholds and the
evaluation seed live in the harness-side tests. The assignment modules are imported inside each probe, so a broken
maml.py cannot take the ProtoNet tests down with it (and vice versa).

Conventions:
- A batch of tasks travels as one dict of stacked tensors (see `_task_batch`), shapes [T, N*S, 1, 28, 28], [T, N*S],
  [T, N*Q, 1, 28, 28], [T, N*Q].
- Parameters travel as {name: tensor}; a probe loads them into a freshly built student object, so both sides of a
  comparison compute with identical weights and inputs.
- Accuracies come back as numbers where they are numbers, and their kind ("float", "tensor[]", "tensor[5]", ...) is
  reported separately so that the harness can say what is wrong with one that is not a plain number.
"""

from __future__ import annotations

import random

import numpy as np
import torch

TASK_KEYS = ("images_support", "labels_support", "images_query", "labels_query")
_TRAINED: dict = {}  # the learner trained by a *_train probe, for the evaluation probe called next in the same test


# ---- helpers ------------------------------------------------------------------------------------------------------


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _task_batch(tasks: dict) -> list[tuple]:
    """The list of task tuples the assignment's methods take, from stacked tensors."""
    return [tuple(tasks[key][t] for key in TASK_KEYS) for t in range(tasks["images_support"].shape[0])]


def _kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "float" if isinstance(value, (float, np.floating)) else "int"
    if isinstance(value, torch.Tensor):
        shape = ",".join(str(size) for size in value.shape)
        return f"tensor[{shape}]" + (" requires_grad" if value.requires_grad else "")
    if isinstance(value, np.ndarray):
        return f"ndarray[{','.join(str(size) for size in value.shape)}]"
    return type(value).__name__


def _number(value):
    """float(value) for a number or a one-element tensor/array, else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().reshape(()).cpu())
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    return None


def _detached(tensors: dict) -> dict:
    return {name: value.detach().cpu().clone() for name, value in tensors.items()}


def _tensor_dict(value, what: str) -> dict:
    if not isinstance(value, dict) or not all(isinstance(v, torch.Tensor) for v in value.values()):
        raise TypeError(f"{what}: expected a dict of tensors by parameter name, got {_kind(value)}")
    return value


def sample_tasks(split, seed, num_tasks, num_way, num_support, num_query):
    """Tasks of the provided episode sampler (omniglot.py), stacked; called on the reference side only."""
    import omniglot

    loader = omniglot.get_omniglot_dataloader(split, num_tasks, num_way, num_support, num_query, num_tasks, seed=seed)
    tasks = next(iter(loader))
    return {key: torch.stack([task[i] for task in tasks]) for i, key in enumerate(TASK_KEYS)}


def _train(learner, steps, batch_size, num_way, num_support, num_query, seed, device) -> dict:
    """`steps` calls of the learner's train_step on training-split batches (the provided loop's episode stream)."""
    import omniglot

    metrics = {}
    if steps > 0:
        loader = omniglot.get_omniglot_dataloader("train", batch_size, num_way, num_support, num_query,
                                                  steps * batch_size, seed=[seed, 0], device=device)
        for task_batch in loader:
            metrics = learner.train_step(task_batch)
    return metrics


# ---- ProtoNet -------------------------------------------------------------------------------------------------------


class _EmbeddingRecorder(torch.nn.Module):
    """Wraps the network, keeping every call's input and output (with its gradient kept after backward)."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, images):
        output = self.network(images)
        if output.requires_grad:
            output.retain_grad()
        self.calls.append((images, output))
        return output


class _FlatteningNetwork(torch.nn.Module):
    """Embeds an image as its flattened pixels, times a parameter equal to 1 (so the loss has a graph)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, images):
        return images.flatten(1) * self.scale


def _protonet(state=None, network=None):
    import protonet

    model = protonet.ProtoNet(learning_rate=0.001, log_dir=None, device="cpu")
    if network is not None:
        model._network = network
    elif state is not None:
        model._network.load_state_dict(state)
    model._network.train()
    return model


def protonet_parameters(seed):
    _seed(seed)
    return {"state": _detached(_protonet()._network.state_dict())}


def protonet_step(tasks, state=None, seed=0, identity_network=False, backward=False, record_embeddings=False):
    """ProtoNet._step on a task batch: loss, accuracies (and their kinds), optionally gradients.

    state: network weights to load; None keeps the network's own initialisation from `seed`.
    identity_network: embed by flattening the images (the harness then knows every embedding exactly).
    backward: also return the gradients of the loss w.r.t. the network's parameters.
    record_embeddings: also return the gradient of the loss w.r.t. each task's support embeddings (None where the
        support images were not embedded by a call of their own, or no gradient reached them).
    """
    network = _FlatteningNetwork() if identity_network else None
    _seed(seed)
    model = _protonet(state, network)
    if record_embeddings:
        model._network = _EmbeddingRecorder(model._network)
    task_batch = _task_batch(tasks)
    loss, accuracy_support, accuracy_query = model._step(task_batch)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"ProtoNet._step must return the loss as a scalar tensor, got {_kind(loss)}")
    outputs = {
        "loss": float(loss.detach()),
        "loss_requires_grad": bool(loss.requires_grad),
        "accuracy_support": _number(accuracy_support),
        "accuracy_query": _number(accuracy_query),
        "accuracy_kinds": [_kind(accuracy_support), _kind(accuracy_query)],
    }
    if backward or record_embeddings:
        if not loss.requires_grad:
            raise RuntimeError("ProtoNet._step returned a loss that does not depend on the network's parameters")
        loss.backward()
    if backward:
        outputs["gradients"] = {
            name: (parameter.grad.detach().clone() if parameter.grad is not None else torch.zeros_like(parameter))
            for name, parameter in model._network.named_parameters()
        }
    if record_embeddings:
        found = []
        for images_support, *_ in task_batch:
            match = [out for images, out in model._network.calls
                     if images.shape == images_support.shape and torch.equal(images, images_support)]
            found.append(match[0].grad.detach().clone() if match and match[0].grad is not None else None)
        outputs["support_embedding_gradients"] = found
        outputs["support_embedded_separately"] = [
            any(images.shape == task[0].shape and torch.equal(images, task[0]) for images, _ in model._network.calls)
            for task in task_batch
        ]
    return outputs


def protonet_train(seed, steps, batch_size, num_way, num_support, num_query, learning_rate, device="cpu"):
    """Train with the student's ProtoNet (its train_step, hence its _step) on training-split episodes."""
    import protonet

    _seed(seed)
    learner = protonet.ProtoNet(learning_rate=learning_rate, log_dir=None, device=device)
    metrics = _train(learner, steps, batch_size, num_way, num_support, num_query, seed, device)
    _TRAINED["protonet"] = learner
    return {"final_train_metrics": {key: _number(value) for key, value in metrics.items()}}


def protonet_embed(images_support, images_query):
    """Embeddings of each task's support set and query set (one forward pass per set) by the trained network."""
    learner = _TRAINED.get("protonet")
    if learner is None:
        raise RuntimeError("protonet_embed: call protonet_train first (in the same test)")
    network = learner._network
    network.eval()
    support, query = [], []
    with torch.no_grad():
        for task_support, task_query in zip(images_support, images_query):
            support.append(network(task_support.to(learner.device)).reshape(len(task_support), -1).float().cpu())
            query.append(network(task_query.to(learner.device)).reshape(len(task_query), -1).float().cpu())
    return {"support": torch.stack(support), "query": torch.stack(query)}


# ---- MAML -----------------------------------------------------------------------------------------------------------


def _maml(config, parameters=None, inner_lrs=None, seed=0):
    """A student MAML object with the given meta-parameters and inner learning rates (None: its own, from seed)."""
    import maml

    _seed(seed)
    model = maml.MAML(log_dir=None, device=config.get("device", "cpu"), **{k: v for k, v in config.items()
                                                                            if k != "device"})
    if parameters is not None:
        model.set_meta_parameters(parameters, inner_lrs)
    return model


def maml_parameters(seed, config):
    model = _maml(config, seed=seed)
    return {"parameters": _detached(model._meta_parameters), "inner_lrs": _detached(model._inner_lrs)}


def _unchanged(model, before: dict) -> dict:
    current = model._meta_parameters
    return {name: bool(torch.equal(current[name].detach().cpu(), value)) for name, value in before.items()}


def _direction(model, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(value.shape, generator=generator).to(value.device)
            for name, value in model._meta_parameters.items()}


def maml_inner_loop(config, images, labels, train, parameters=None, inner_lrs=None, seed=0, direction_seed=None):
    """MAML._inner_loop on one support set.

    direction_seed: draw a random direction v (returned as "direction") and also return d<adapted, v>/d(meta-
        parameters) (None per name where the adapted parameters do not depend on it): v itself for a first-order
        inner loop, v plus Hessian terms for a second-order one.
    """
    model = _maml(config, parameters, inner_lrs, seed)
    before = _detached(model._meta_parameters)
    result = model._inner_loop(images, labels, train)
    if not isinstance(result, tuple) or len(result) != 3:
        raise TypeError(f"MAML._inner_loop must return (parameters, accuracies, gradients), got {_kind(result)}")
    adapted, accuracies, gradients = result
    adapted = _tensor_dict(adapted, "the adapted parameters")
    gradients = _tensor_dict(gradients, "the inner-loop gradients")
    if not isinstance(accuracies, (list, tuple)):
        raise TypeError(f"MAML._inner_loop must return the accuracies as a list, got {_kind(accuracies)}")
    outputs = {
        "adapted": _detached(adapted),
        "adapted_requires_grad": {name: bool(value.requires_grad) for name, value in adapted.items()},
        "accuracies": [_number(value) for value in accuracies],
        "accuracy_kinds": [_kind(value) for value in accuracies],
        "gradients": _detached(gradients),
        "gradients_require_grad": {name: bool(value.requires_grad) for name, value in gradients.items()},
        "meta_parameters_unchanged": _unchanged(model, before),
    }
    if direction_seed is not None:
        meta = model._meta_parameters
        direction = _direction(model, direction_seed)
        outputs["direction"] = _detached(direction)
        connected = [name for name in direction if name in adapted and adapted[name].requires_grad]
        derivative = {name: None for name in meta}
        if connected:
            inner = sum((adapted[name] * direction[name]).sum() for name in connected)
            values = torch.autograd.grad(inner, [meta[name] for name in meta], allow_unused=True)
            derivative = {name: None if value is None else value.detach().clone()
                          for name, value in zip(meta, values)}
        outputs["direction_derivative"] = derivative
    return outputs


def maml_outer_step(config, tasks, train, parameters=None, inner_lrs=None, seed=0):
    """MAML._outer_step on a task batch: loss and metrics (no backward)."""
    model = _maml(config, parameters, inner_lrs, seed)
    before = _detached(model._meta_parameters)
    result = model._outer_step(_task_batch(tasks), train)
    if not isinstance(result, tuple) or len(result) != 3:
        raise TypeError(f"MAML._outer_step must return (outer_loss, accuracies_support, accuracy_query), got "
                        f"{_kind(result)}")
    loss, accuracies_support, accuracy_query = result
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"MAML._outer_step must return the outer loss as a scalar tensor, got {_kind(loss)}")
    return {
        "loss": float(loss.detach()),
        "loss_requires_grad": bool(loss.requires_grad),
        "accuracies_support": torch.as_tensor(accuracies_support).detach().float().cpu().reshape(-1),
        "accuracy_query": _number(accuracy_query),
        "meta_parameters_unchanged": _unchanged(model, before),
    }


def maml_meta_gradient(config, tasks, parameters=None, inner_lrs=None, seed=0):
    """One meta-gradient computation of the chosen variant (MAML._meta_gradient_step, the training step without
    the optimizer update): the .grad of every meta-parameter and inner learning rate, and the metrics."""
    model = _maml(config, parameters, inner_lrs, seed)
    before = _detached(model._meta_parameters)
    loss, accuracies_support, accuracy_query = model._meta_gradient_step(_task_batch(tasks))
    grad = lambda tensor: None if tensor.grad is None else tensor.grad.detach().cpu().clone()  # noqa: E731
    return {
        "loss": float(loss.detach()),
        "accuracies_support": torch.as_tensor(accuracies_support).detach().float().cpu().reshape(-1),
        "accuracy_query": _number(accuracy_query),
        "meta_gradients": {name: grad(value) for name, value in model._meta_parameters.items()},
        "inner_lr_gradients": {name: grad(value) for name, value in model._inner_lrs.items()},
        "meta_parameters_unchanged": _unchanged(model, before),
    }


def maml_train(seed, steps, batch_size, num_way, num_support, num_query, config, device="cpu"):
    """Train with the student's MAML (its train_step: _outer_step and _inner_loop) on training-split episodes."""
    learner = _maml({**config, "num_outputs": num_way, "device": device}, seed=seed)
    metrics = _train(learner, steps, batch_size, num_way, num_support, num_query, seed, device)
    _TRAINED["maml"] = learner
    return {"final_train_metrics": {key: _number(value) for key, value in metrics.items()}}


def maml_query_logits(images_support, labels_support, images_query):
    """Adapt the trained MAML to each task's support set with its _inner_loop (train=False), then the query logits."""
    learner = _TRAINED.get("maml")
    if learner is None:
        raise RuntimeError("maml_query_logits: call maml_train first (in the same test)")
    logits = []
    for support, labels, query in zip(images_support, labels_support, images_query):
        adapted, _, _ = learner._inner_loop(support.to(learner.device), labels.to(learner.device), False)
        with torch.no_grad():
            logits.append(learner._forward(query.to(learner.device), adapted).float().cpu())
    return {"logits": torch.stack(logits)}


def say(text):
    """Print a line into this test's output (the feedback shows it): how the grader explains a partial score."""
    print(text, flush=True)
    return {}
