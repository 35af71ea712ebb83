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
# The query accuracy among the metrics of train_step (ProtoNet's, MAML's): the training curve's accuracy.
QUERY_ACCURACY_METRICS = ("accuracy/query", "accuracy/post_adapt_query")

# The keys and kinds of each probe's reply, read by the harness (never by importing this module): anything else in
# a reply fails the call (autograder/engine/harness/replies.py).
REPLIES = {
    "sample_tasks": {"images_support": "array", "labels_support": "array", "images_query": "array",
                     "labels_query": "array"},
    "protonet_parameters": {"state": "map"},
    "protonet_step": {"loss": "number", "loss_requires_grad": "flag", "accuracy_support": "number|none",
                      "accuracy_query": "number|none", "accuracy_kinds": "list", "gradients?": "map",
                      "support_embedding_gradients?": "list", "support_embedded_separately?": "list",
                      "later_calls": "list"},
    "protonet_train": {"final_train_metrics": "map", "digests": "list", "curve": "map"},
    "training_checkpoint": {"state": "map"},
    "protonet_replay": {"state": "map"},
    "protonet_outputs": {"outputs": "array"},
    "protonet_embed": {"support": "array", "query": "array"},
    "maml_parameters": {"parameters": "map", "inner_lrs": "map"},
    "maml_inner_loop": {"adapted": "map", "adapted_requires_grad": "map", "accuracies": "list",
                        "accuracy_values": "list", "accuracy_kinds": "list", "gradients": "map",
                        "gradients_require_grad": "map", "meta_parameters_unchanged": "map",
                        "meta_gradients_left": "list", "direction?": "map", "direction_derivative?": "map",
                        "direction_lr_derivative?": "map", "later_adapted": "list"},
    "maml_forward": {"logits": "array"},
    "maml_support_gradient": {"gradients": "map"},
    "maml_outer_step": {"loss": "number", "loss_requires_grad": "flag", "accuracies_support": "array",
                        "accuracy_query": "number|none", "meta_gradients_left": "list",
                        "meta_parameters_unchanged": "map", "inner_loop_train_flags": "list",
                        "first_adapted?": "map", "first_gradients_require_grad?": "map", "direction?": "map",
                        "direction_derivative?": "map", "direction_lr_derivative?": "map", "later_calls": "list"},
    "maml_meta_gradient": {"loss": "number", "accuracies_support": "array", "accuracy_query": "number|none",
                           "meta_gradients": "map", "inner_lr_gradients": "map", "meta_parameters_unchanged": "map"},
    "maml_train": {"final_train_metrics": "map", "digests": "list", "curve": "map"},
    "maml_replay": {"state": "map"},
    "maml_outputs": {"outputs": "array"},
    "maml_query_logits": {"logits": "array"},
    "say": {},
}


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


def _episode_batches(seed, first_step, steps, batch_size, num_way, num_support, num_query, device):
    """Training batches number first_step .. first_step + steps - 1 of the provided sampler's stream for `seed`
    (the stream every training probe reads; the grader's replay regenerates segments of it)."""
    import omniglot

    loader = omniglot.get_omniglot_dataloader("train", batch_size, num_way, num_support, num_query,
                                              (first_step + steps) * batch_size, seed=[seed, 0], device=device)
    for step, task_batch in enumerate(loader):
        if step >= first_step:
            yield task_batch


_CHECKPOINTS: list = []  # the training states a *_train probe committed to, for `training_checkpoint`


def _train(learner, parameters, steps, batch_size, num_way, num_support, num_query, seed, device,
           checkpoint_every=0) -> dict:
    """`steps` calls of the learner's train_step on training-split batches. With `checkpoint_every`, commit to the
    trajectory: the digest of the training state (the named `parameters` and their Adam moments in
    learner._optimizer) at steps 0, every, 2 every, ..., steps (`omniglot_data.trajectory`). `curve`: train_step's
    loss and query accuracy against the steps (`omniglot_data.training_curve`), for the feedback."""
    from omniglot_data import trajectory
    from omniglot_data.training_curve import TrainingCurve

    metrics, digests = {}, []
    curve = TrainingCurve(steps)
    _CHECKPOINTS.clear()

    def commit():
        _CHECKPOINTS.append(trajectory.training_state(parameters, learner._optimizer))
        digests.append(trajectory.digest(_CHECKPOINTS[-1]))

    for step, task_batch in enumerate(_episode_batches(seed, 0, steps, batch_size, num_way, num_support, num_query,
                                                       device)):
        if checkpoint_every and step % checkpoint_every == 0:
            commit()
        metrics = learner.train_step(task_batch)
        found = metrics if isinstance(metrics, dict) else {}
        curve.add(loss=found.get("loss"),
                  accuracy=next((found[key] for key in QUERY_ACCURACY_METRICS if key in found), None))
    if checkpoint_every:
        commit()
    return {"final_train_metrics": {key: _number(value) for key, value in metrics.items()}, "digests": digests,
            "curve": curve.reply()}


def training_checkpoint(index):
    """Committed training state number `index` of the training probe run in this worker."""
    return {"state": _CHECKPOINTS[index]}


def _replay(learner, parameters, state, seed, first_step, steps, batch_size, num_way, num_support, num_query,
            device) -> dict:
    """From training state `state`, the learner's train_step on batches first_step.. of the stream; the state after.
    Called on the reference: the trusted step a committed trajectory must follow."""
    from omniglot_data import trajectory

    trajectory.load_training_state(state, parameters, learner._optimizer)
    for task_batch in _episode_batches(seed, first_step, steps, batch_size, num_way, num_support, num_query, device):
        learner.train_step(task_batch)
    return {"state": trajectory.training_state(parameters, learner._optimizer)}


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

    def gradient_of(self, images_support):
        """(the gradient of the loss w.r.t. the embeddings of `images_support`, whether they had a call of their own).

        The embeddings come from the call that embedded exactly these images, else from a call whose input holds them
        as consecutive rows (support and query embedded together); the gradient is None when no call embedded them
        or no gradient reached that call's output."""
        count = images_support.shape[0]
        matches = [(images.shape[0] == count, start, output) for images, output in self.calls
                   if images.shape[1:] == images_support.shape[1:]
                   for start in range(images.shape[0] - count + 1)
                   if torch.equal(images[start:start + count], images_support)]
        if not matches:
            return None, False
        own_call, start, output = max(matches, key=lambda match: match[0])  # a call of their own first
        if output.grad is None:
            return None, own_call
        return output.grad[start:start + count].detach().reshape(count, -1).clone(), own_call


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


def _protonet_metrics(result) -> dict:
    if not isinstance(result, tuple) or len(result) != 3:
        raise TypeError(f"ProtoNet._step must return (loss, accuracy_support, accuracy_query), got {_kind(result)}")
    loss, accuracy_support, accuracy_query = result
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"ProtoNet._step must return the loss as a scalar tensor, got {_kind(loss)}")
    return {
        "loss": float(loss.detach()),
        "loss_requires_grad": bool(loss.requires_grad),
        "accuracy_support": _number(accuracy_support),
        "accuracy_query": _number(accuracy_query),
        "accuracy_kinds": [_kind(accuracy_support), _kind(accuracy_query)],
    }


def protonet_step(tasks, state=None, seed=0, identity_network=False, backward=False, record_embeddings=False,
                  calls=1):
    """ProtoNet._step on a task batch: loss, accuracies (and their kinds), optionally gradients.

    state: network weights to load; None keeps the network's own initialisation from `seed`.
    identity_network: embed by flattening the images (the harness then knows every embedding exactly).
    backward: also return the gradients of the loss w.r.t. the network's parameters.
    record_embeddings: also return the gradient of the loss w.r.t. each task's support embeddings (None where no
        network call embedded the support images, or no gradient reached them).
    calls: call _step this many times on the same object and batch; "later_calls" holds the metrics of calls 2...
    """
    network = _FlatteningNetwork() if identity_network else None
    _seed(seed)
    model = _protonet(state, network)
    if record_embeddings:
        model._network = _EmbeddingRecorder(model._network)
    task_batch = _task_batch(tasks)
    result = model._step(task_batch)
    outputs = _protonet_metrics(result)
    loss = result[0]
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
        found = [model._network.gradient_of(task[0]) for task in task_batch]
        outputs["support_embedding_gradients"] = [gradient for gradient, _ in found]
        outputs["support_embedded_separately"] = [own_call for _, own_call in found]
    outputs["later_calls"] = [_protonet_metrics(model._step(task_batch)) for _ in range(calls - 1)]
    return outputs


def _protonet_learner(learning_rate, device, state=None):
    import protonet

    learner = protonet.ProtoNet(learning_rate=learning_rate, log_dir=None, device=device)
    if state is not None:
        learner._network.load_state_dict(state)
    return learner


def protonet_train(seed, steps, batch_size, num_way, num_support, num_query, learning_rate, device="cpu",
                   initial_state=None, checkpoint_every=0):
    """Train with the student's ProtoNet (its train_step, hence its _step) on training-split episodes, from the
    network weights `initial_state`, committing to the trajectory (see `_train`)."""
    _seed(seed)
    learner = _protonet_learner(learning_rate, device, initial_state)
    return _train(learner, dict(learner._network.named_parameters()), steps, batch_size, num_way, num_support,
                  num_query, seed, device, checkpoint_every)


def protonet_replay(state, seed, first_step, steps, batch_size, num_way, num_support, num_query, learning_rate,
                    device="cpu"):
    learner = _protonet_learner(learning_rate, device)
    return _replay(learner, dict(learner._network.named_parameters()), state, seed, first_step, steps, batch_size,
                   num_way, num_support, num_query, device)


def protonet_outputs(states, images, device="cpu"):
    """Embeddings [len(states), M, D] of the grader's probe images by a network with each training state's weights.
    Called on the reference: the audit compares trained weights as the functions they compute."""
    from omniglot_data import trajectory

    outputs = []
    for state in states:
        network = _protonet_learner(0.001, device, trajectory.parameters_of(state))._network
        network.eval()
        with torch.no_grad():
            outputs.append(network(images.to(device)).reshape(len(images), -1).float().cpu())
    return {"outputs": torch.stack(outputs)}


def protonet_embed(state, images_support, images_query, device="cpu"):
    """Embeddings of each task's support set and query set (one forward pass per set) by a network with the weights
    `state`. Called on the reference: the grader scores trained weights with the reference's network."""
    network = _protonet_learner(0.001, device, state)._network
    network.eval()
    support, query = [], []
    with torch.no_grad():
        for task_support, task_query in zip(images_support, images_query):
            support.append(network(task_support.to(device)).reshape(len(task_support), -1).float().cpu())
            query.append(network(task_query.to(device)).reshape(len(task_query), -1).float().cpu())
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


def _grads_left(model) -> list:
    """Names of the meta-parameters whose .grad is set: what .backward() inside the inner loop leaves behind."""
    return sorted(name for name, value in model._meta_parameters.items() if value.grad is not None)


def _direction(model, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(value.shape, generator=generator).to(value.device)
            for name, value in model._meta_parameters.items()}


def _accuracy_value(value):
    """The accuracy an entry stands for, whatever its kind: a number, or the mean of a tensor/array (of per-example
    correctness, say); None for anything else."""
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, torch.Tensor) and value.numel() > 0:
        return float(value.detach().float().mean().cpu())
    if isinstance(value, np.ndarray) and value.size > 0 and value.dtype != object:
        return float(value.astype(np.float64).mean())
    return None


def _inner_loop_result(result) -> tuple:
    if not isinstance(result, tuple) or len(result) != 3:
        raise TypeError(f"MAML._inner_loop must return (parameters, accuracies, gradients), got {_kind(result)}")
    adapted, accuracies, gradients = result
    adapted = _tensor_dict(adapted, "the adapted parameters")
    gradients = _tensor_dict(gradients, "the inner-loop gradients")
    if not isinstance(accuracies, (list, tuple)):
        raise TypeError(f"MAML._inner_loop must return the accuracies as a list, got {_kind(accuracies)}")
    return adapted, accuracies, gradients


def _direction_derivatives(model, adapted: dict, seed: int) -> dict:
    """A random direction v; d<adapted, v>/d(meta-parameters) and d<adapted, v>/d(inner learning rates that require
    grad), None per name where the adapted parameters do not depend on it."""
    meta, rates = model._meta_parameters, model._inner_lrs
    direction = _direction(model, seed)
    learned = [name for name, value in rates.items() if value.requires_grad]
    derivative = {name: None for name in meta}
    rate_derivative = {name: None for name in rates}
    connected = [name for name in direction if name in adapted and adapted[name].requires_grad]
    if connected:
        inner = sum((adapted[name] * direction[name]).sum() for name in connected)
        values = torch.autograd.grad(inner, [meta[name] for name in meta] + [rates[name] for name in learned],
                                     allow_unused=True)
        detached = [None if value is None else value.detach().cpu().clone() for value in values]
        derivative = dict(zip(meta, detached[:len(meta)]))
        rate_derivative.update(zip(learned, detached[len(meta):]))
    return {"direction": _detached(direction), "direction_derivative": derivative,
            "direction_lr_derivative": rate_derivative}


def maml_inner_loop(config, images, labels, train, parameters=None, inner_lrs=None, seed=0, direction_seed=None,
                    calls=1):
    """MAML._inner_loop on one support set.

    direction_seed: draw a random direction v (returned as "direction") and also return d<adapted, v>/d(meta-
        parameters) (None per name where the adapted parameters do not depend on it): v itself for a first-order
        inner loop, v plus Hessian terms for a second-order one; and d<adapted, v>/d(each learned inner rate).
    calls: call _inner_loop this many times on the same object; "later_adapted" holds the adapted parameters of
        calls 2...
    """
    model = _maml(config, parameters, inner_lrs, seed)
    before = _detached(model._meta_parameters)
    adapted, accuracies, gradients = _inner_loop_result(model._inner_loop(images, labels, train))
    outputs = {
        "adapted": _detached(adapted),
        "adapted_requires_grad": {name: bool(value.requires_grad) for name, value in adapted.items()},
        "accuracies": [_number(value) for value in accuracies],
        "accuracy_values": [_accuracy_value(value) for value in accuracies],
        "accuracy_kinds": [_kind(value) for value in accuracies],
        "gradients": _detached(gradients),
        "gradients_require_grad": {name: bool(value.requires_grad) for name, value in gradients.items()},
        "meta_parameters_unchanged": _unchanged(model, before),
        "meta_gradients_left": _grads_left(model),
    }
    if direction_seed is not None:
        outputs.update(_direction_derivatives(model, adapted, direction_seed))
    outputs["later_adapted"] = [_detached(_inner_loop_result(model._inner_loop(images, labels, train))[0])
                                for _ in range(calls - 1)]
    return outputs


def maml_forward(config, images, parameters):
    """Logits of the MAML network with the given parameters (called on the reference: scores parameters that a
    submission's inner loop returned)."""
    model = _maml(config)
    with torch.no_grad():
        return {"logits": model._forward(images, parameters).float().cpu()}


def maml_support_gradient(config, images, labels, parameters):
    """The gradient of the support loss F.cross_entropy(_forward(images, parameters), labels) w.r.t. `parameters`
    (called on the reference: what one inner step of a submission must subtract, times its inner learning rates)."""
    model = _maml(config)
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in parameters.items()}
    loss = torch.nn.functional.cross_entropy(model._forward(images, leaves), labels)
    return {"gradients": dict(zip(leaves, (g.detach() for g in torch.autograd.grad(loss, list(leaves.values())))))}


def _support_index(tasks: dict, images) -> int:
    for index, support in enumerate(tasks["images_support"]):
        if isinstance(images, torch.Tensor) and images.shape == support.shape and torch.equal(images.cpu(), support):
            return index
    raise ValueError("_outer_step called _inner_loop with images that are not the support set of any task of the "
                     "batch: adapt each task on its SUPPORT images and labels")


def _train_flag(args, kwargs):
    value = kwargs.get("train", args[2] if len(args) > 2 else None)
    return value if isinstance(value, bool) else None


def _outer_step_metrics(result, model) -> dict:
    if not isinstance(result, tuple) or len(result) != 3:
        raise TypeError(f"MAML._outer_step must return (outer_loss, accuracies_support, accuracy_query), got "
                        f"{_kind(result)}")
    loss, accuracies_support, accuracy_query = result
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"MAML._outer_step must return the outer loss as a scalar tensor, got {_kind(loss)}")
    return {
        "loss": float(loss.detach()),
        "loss_requires_grad": bool(loss.requires_grad),
        "accuracies_support": torch.as_tensor(accuracies_support).detach().float().cpu(),
        "accuracy_query": _number(accuracy_query),
        "meta_gradients_left": _grads_left(model),
    }


def maml_outer_step(config, tasks, train, parameters=None, inner_lrs=None, seed=0, given_adaptation=None,
                    direction_seed=None, calls=1):
    """MAML._outer_step on a task batch: loss and metrics (no backward), and what it asked of _inner_loop.

    given_adaptation: {"deltas": [{name: tensor}] per task, "accuracies": [[float]] per task}: replace the
        submission's _inner_loop by one that returns meta-parameters + delta of the task whose support images it is
        given (a differentiable function of the meta-parameters), those accuracies and no gradients, so that
        _outer_step is graded on its own. Otherwise the submission's _inner_loop runs, watched.
    direction_seed: for the first _inner_loop call, the derivatives of `_direction_derivatives`.
    calls: call _outer_step this many times on the same object; "later_calls" holds the metrics of calls 2...
    """
    model = _maml(config, parameters, inner_lrs, seed)
    before = _detached(model._meta_parameters)
    inner_loop, seen = model._inner_loop, []

    def watched(*args, **kwargs):
        if given_adaptation is None:
            result = inner_loop(*args, **kwargs)
        else:
            images = kwargs.get("images", args[0] if args else None)
            task = _support_index(tasks, images)
            result = ({name: value + given_adaptation["deltas"][task][name].to(value.device)
                       for name, value in model._meta_parameters.items()},
                      [torch.tensor(float(value)) for value in given_adaptation["accuracies"][task]], {})
        seen.append((_train_flag(args, kwargs), result))
        return result

    model._inner_loop = watched
    outputs = _outer_step_metrics(model._outer_step(_task_batch(tasks), train), model)
    outputs["meta_parameters_unchanged"] = _unchanged(model, before)
    outputs["inner_loop_train_flags"] = [flag for flag, _ in seen]
    if seen and given_adaptation is None:
        adapted, _, gradients = _inner_loop_result(seen[0][1])
        outputs["first_adapted"] = _detached(adapted)
        outputs["first_gradients_require_grad"] = {name: bool(value.requires_grad)
                                                   for name, value in gradients.items()}
        if direction_seed is not None:
            outputs.update(_direction_derivatives(model, adapted, direction_seed))
    outputs["later_calls"] = [_outer_step_metrics(model._outer_step(_task_batch(tasks), train), model)
                              for _ in range(calls - 1)]
    return outputs


def maml_meta_gradient(config, tasks, parameters=None, inner_lrs=None, seed=0):
    """One meta-gradient computation of the chosen variant (MAML._meta_gradient_step, the training step without
    the optimizer update): the .grad of every meta-parameter and inner learning rate, and the metrics."""
    model = _maml(config, parameters, inner_lrs, seed)
    before = _detached(model._meta_parameters)
    loss, accuracies_support, accuracy_query = model._meta_gradient_step(_task_batch(tasks))
    grad = lambda tensor: None if tensor.grad is None else tensor.grad.detach().cpu().clone()  # noqa: E731
    return {
        "loss": float(loss.detach()),
        "accuracies_support": torch.as_tensor(accuracies_support).detach().float().cpu(),
        "accuracy_query": _number(accuracy_query),
        "meta_gradients": {name: grad(value) for name, value in model._meta_parameters.items()},
        "inner_lr_gradients": {name: grad(value) for name, value in model._inner_lrs.items()},
        "meta_parameters_unchanged": _unchanged(model, before),
    }


def maml_train(seed, steps, batch_size, num_way, num_support, num_query, config, device="cpu", initial_parameters=None,
               checkpoint_every=0):
    """Train with the student's MAML (its train_step: _outer_step and _inner_loop) on training-split episodes, from
    the meta-parameters `initial_parameters`, committing to the trajectory (see `_train`)."""
    learner = _maml({**config, "num_outputs": num_way, "device": device}, initial_parameters, seed=seed)
    return _train(learner, learner._meta_parameters, steps, batch_size, num_way, num_support, num_query, seed, device,
                  checkpoint_every)


def maml_replay(state, seed, first_step, steps, batch_size, num_way, num_support, num_query, config, device="cpu"):
    learner = _maml({**config, "num_outputs": num_way, "device": device})
    return _replay(learner, learner._meta_parameters, state, seed, first_step, steps, batch_size, num_way,
                   num_support, num_query, device)


def maml_outputs(config, states, images_support, labels_support, images_query, device="cpu"):
    """Adapted query logits [len(states), T, N*Q, N] of each training state's meta-parameters on the grader's probe
    tasks. Called on the reference: the audit compares trained weights as the functions they compute."""
    from omniglot_data import trajectory

    outputs = [maml_query_logits(config, trajectory.parameters_of(state), images_support, labels_support,
                                 images_query, device)["logits"] for state in states]
    return {"outputs": torch.stack(outputs)}


def maml_query_logits(config, parameters, images_support, labels_support, images_query, device="cpu"):
    """Adapt meta-parameters `parameters` to each task's support set with _inner_loop (train=False), then the query
    logits. Called on the reference: the grader scores trained weights with the reference's MAML."""
    learner = _maml({**config, "device": device}, parameters)
    logits = []
    for support, labels, query in zip(images_support, labels_support, images_query):
        adapted, _, _ = learner._inner_loop(support.to(device), labels.to(device), False)
        with torch.no_grad():
            logits.append(learner._forward(query.to(device), adapted).float().cpu())
    return {"logits": torch.stack(logits)}


def say(text):
    """Print a line into this test's output (the feedback shows it): how the grader explains a partial score."""
    print(text, flush=True)
    return {}
