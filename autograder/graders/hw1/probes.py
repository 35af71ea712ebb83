"""Probes of the HW1 grader: run in the worker, drive the submission through its public interface, return plain data.

Shipped into the student's sandbox: nothing here is secret, and nothing computed here is trusted. The probes only
call the student's code and hand back what it returned; every check happens in the harness (test_*.py).
"""

import random
import sys
import time
import types

import numpy as np
import torch

from omniglot_data import trajectory
from omniglot_data.training_curve import TrainingCurve

MODEL_CLASSES = {"lstm": "MANN", "attention": "AttentionLearner"}

# The keys and kinds of each probe's reply, read by the harness (never by importing this module): anything else in
# a reply fails the call (autograder/engine/harness/replies.py).
REPLIES = {
    "sample_calls": {"images": "list", "labels": "list", "images_type": "list", "labels_type": "list"},
    "sample_episodes": {"images": "array", "labels": "array"},
    "initial_state": {"state": "map"},
    "forward": {"preds": "array", "loss": "array|none", "gradients": "map|none", "preds_again": "array",
                "images_after": "array", "labels_after": "array"},
    "fit": {"losses": "list", "differentiable": "flag"},
    "loss": {"loss": "list", "preds_grad": "list", "labels_after": "array"},
    "train_model": {"seconds": "number", "final_loss": "number|none", "digests": "list", "batch_digests": "list",
                    "curve": "map"},
    "training_checkpoint": {"state": "map"},
    "training_batches": {"images": "array", "labels": "array"},
    "replay_training": {"state": "map"},
    "training_outputs": {"outputs": "array"},
    "predict": {"preds": "array"},
}
_trained = {}  # what `train_model` trained, for the `training_checkpoint` calls of the same test (same worker)


def _load_data():
    """The submission's load_data.py (imported on first use, so a broken hw1.py costs only the model tests)."""
    import load_data

    return load_data


def _stand_in_load_data():
    """What hw1.py needs of load_data.py to define its models (the released constants), for a submission whose
    load_data.py does not import: a broken data file then costs only the data tests, not the model tests too."""
    module = types.ModuleType("load_data")
    module.IMAGE_SIDE, module.IMAGE_SIZE, module.DRAWINGS_PER_CHARACTER = 28, 784, 20

    def unavailable(*args, **kwargs):
        raise ImportError("load_data.py does not import, so its DataGenerator cannot be used")

    module.DataGenerator = module.derive_seed = unavailable
    return module


def _hw1():
    """The submission's hw1.py, imported on first use (on a stand-in load_data when the student's does not import)."""
    if "hw1" not in sys.modules and "load_data" not in sys.modules:
        try:
            import load_data  # noqa: F401
        except Exception:  # noqa: BLE001 - the data tests report it; the models do not depend on it
            sys.modules["load_data"] = _stand_in_load_data()
    import hw1

    return hw1


def _seed_everything(seed):
    """Seed every generator a submission might use instead of (or besides) `self.rng`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _type_name(value):
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def sample_calls(num_classes, samples_per_class, split, seed, calls=2):
    """`calls` consecutive `_sample()` results of one generator exactly as returned (types included), as lists:
    for the type and shape checks, which a generator must pass on every call, not only on its first."""
    _seed_everything(seed)
    generator = _load_data().DataGenerator(num_classes, samples_per_class, split, config={"seed": seed})
    results = [generator._sample() for _ in range(calls)]
    return {"images": [images for images, _ in results], "labels": [labels for _, labels in results],
            "images_type": [_type_name(images) for images, _ in results],
            "labels_type": [_type_name(labels) for _, labels in results]}


def sample_episodes(num_classes, samples_per_class, split, seed, episodes, global_seed=None):
    """`episodes` consecutive `_sample()` calls on ONE generator, stacked: images [E, K+1, N, 784], labels
    [E, K+1, N, N] (converted with np.asarray, dtype kept: the type check is `sample_calls`'s job).

    The global generators (random, numpy, torch) are seeded with `seed` too, so that a sampler that uses them
    instead of `self.rng` is still repeatable here and loses only the test that asks for it: that test passes
    another `global_seed`."""
    _seed_everything(seed if global_seed is None else global_seed)
    generator = _load_data().DataGenerator(num_classes, samples_per_class, split, config={"seed": seed})
    images, labels = [], []
    for _ in range(episodes):
        episode_images, episode_labels = generator._sample()
        images.append(np.asarray(episode_images))
        labels.append(np.asarray(episode_labels))
    return {"images": np.stack(images), "labels": np.stack(labels)}


def _build(model, num_classes, samples_per_class, hidden_dim, state=None):
    network = getattr(_hw1(), MODEL_CLASSES[model])(num_classes, samples_per_class, hidden_dim)
    if state is not None:
        network.load_state_dict(state)
    return network


def initial_state(model, num_classes, samples_per_class, hidden_dim, seed):
    """A freshly initialised model's parameters (called on the reference: the weights both sides then load)."""
    torch.manual_seed(seed)
    network = _build(model, num_classes, samples_per_class, hidden_dim)
    return {"state": {name: value.detach().clone() for name, value in network.state_dict().items()}}


def query_cross_entropy(preds, labels, any_layout=False):
    """The mean cross-entropy of the query row's logits preds[:, -1] (preds [B, K+1, N, N]; with `any_layout`, any
    tensor of that many numbers, read in that order), written here rather than taken from the submission: the tests
    of forward do not charge a mistake of loss_function."""
    num_classes = labels.shape[-1]
    if not any_layout and tuple(preds.shape) != tuple(labels.shape):
        raise ValueError(f"forward returned logits of shape {tuple(preds.shape)}, expected [B, K+1, N, N] = "
                         f"{tuple(labels.shape)}")
    queries = preds.reshape(labels.shape)[:, -1].reshape(-1, num_classes)
    return torch.nn.functional.cross_entropy(queries.float(), labels[:, -1].reshape(-1, num_classes).argmax(-1))


def forward(model, num_classes, samples_per_class, hidden_dim, state, images, labels, with_loss=True):
    """Load `state` and run forward on (images, labels); with `with_loss`, also the query cross-entropy
    (`query_cross_entropy`) and its backward pass; then forward once more on the same model instance (a second call
    must not depend on the first).

    Returns the logits of both calls, the loss and every parameter's gradient (None without `with_loss`), and the
    caller's `images` and `labels` tensors as they are after the calls (they must be unchanged). The loss reads a
    copy of the labels made before forward: a forward that writes into them loses the test for that alone.
    """
    torch.manual_seed(0)  # random logits come out the same for any input: they fail the dependence checks
    network = _build(model, num_classes, samples_per_class, hidden_dim, state)
    labels_before = labels.clone()
    preds = network(images, labels)
    outputs = {"preds": preds.detach(), "loss": None, "gradients": None}
    if with_loss:
        loss = query_cross_entropy(preds, labels_before)
        loss.backward()
        outputs["loss"] = loss.detach()
        outputs["gradients"] = {name: parameter.grad.detach().clone() if parameter.grad is not None else None
                                for name, parameter in network.named_parameters()}
    outputs["preds_again"] = network(images, labels).detach()
    return {**outputs, "images_after": images, "labels_after": labels}


def fit(model, num_classes, samples_per_class, hidden_dim, state, images, labels, steps, learning_rate):
    """`steps` Adam steps of the model (from `state`) on the one batch (images, labels), minimising
    `query_cross_entropy` of its forward: the loss before each step, as floats. A model of the episodes fits a
    batch; code that only looks like one (a fixed function of the inputs with the parameters added as zeros) does
    not."""
    torch.manual_seed(0)
    network = _build(model, num_classes, samples_per_class, hidden_dim, state)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    losses = []
    for _ in range(steps):
        value = query_cross_entropy(network(images, labels.clone()), labels, any_layout=True)
        if not value.requires_grad:
            return {"losses": losses + [float(value.detach())], "differentiable": False}
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        losses.append(float(value.detach()))
    return {"losses": losses, "differentiable": True}


def loss(num_classes, samples_per_class, preds, labels):
    """`loss_function(p, labels)` and its gradient with respect to `p`, for each `p` of the list `preds`, all on
    one model instance (in order): lists `loss` and `preds_grad`; and the caller's `labels` as they are after."""
    network = _build("lstm", num_classes, samples_per_class, hidden_dim=4)
    losses, gradients = [], []
    for value in preds:
        value = value.clone().requires_grad_(True)
        result = network.loss_function(value, labels)
        result.backward()
        losses.append(result.detach())
        gradients.append(value.grad)
    return {"loss": losses, "preds_grad": gradients, "labels_after": labels}


def _training_run(model, num_classes, samples_per_class, hidden_dim, seed, initial_state):
    """The model and the episode stream of a training run, set up in the same order every time (all generators
    seeded, the model built, then the DataGenerator), so that asking again for a segment's episodes replays them."""
    _seed_everything(seed)
    network = _build(model, num_classes, samples_per_class, hidden_dim, initial_state)
    generator = _load_data().DataGenerator(num_classes, samples_per_class, "train", config={"seed": seed})
    return network, generator


def _training_batch(generator, meta_batch_size):
    """One meta-batch of the submission's episodes, as float32 tensors [B, K+1, N, 784], [B, K+1, N, N] (a dtype
    slip in _sample is the data tests' business, not a reason to train on something else)."""
    batch = [generator._sample() for _ in range(meta_batch_size)]
    images = torch.as_tensor(np.stack([np.asarray(b[0]) for b in batch]), dtype=torch.float32)
    labels = torch.as_tensor(np.stack([np.asarray(b[1]) for b in batch]), dtype=torch.float32)
    return images, labels


def _train_step(network, optimizer, images, labels):
    """hw1.py's training step: the model's loss_function of its own predictions, one Adam step; the loss and the
    query accuracy of those predictions (None when they are not logits shaped like the labels), as 0-d tensors."""
    preds = network(images, labels)
    value = network.loss_function(preds, labels)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    accuracy = None
    if isinstance(preds, torch.Tensor) and tuple(preds.shape) == tuple(labels.shape):
        with torch.no_grad():
            accuracy = (preds[:, -1].argmax(-1) == labels[:, -1].argmax(-1)).float().mean()
    return value.detach(), accuracy


def train_model(model, num_classes, samples_per_class, hidden_dim, meta_batch_size, learning_rate, steps, seed,
                device, initial_state=None, checkpoint_every=0):
    """Meta-train the submission's model with its own DataGenerator and loss_function (Adam, as hw1.py's loop),
    from the weights `initial_state`; training episodes come from the train split, seeded by `seed`.

    With `checkpoint_every`, commit to the trajectory: the digest of the training state (parameters and Adam
    moments, `omniglot_data.trajectory`) at steps 0, every, 2 every, ..., steps, and of the episodes of each
    segment; the states stay here for `training_checkpoint`. `curve`: the training loss and query accuracy against
    the steps (`omniglot_data.training_curve`), for the feedback.
    """
    network, generator = _training_run(model, num_classes, samples_per_class, hidden_dim, seed, initial_state)
    network = network.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    network.train()
    started = time.perf_counter()
    checkpoints, digests, batch_digests, hasher, last_loss = [], [], [], None, None
    curve = TrainingCurve(steps)

    def commit():
        state = trajectory.training_state(dict(network.named_parameters()), optimizer)
        checkpoints.append(state)
        digests.append(trajectory.digest(state))

    for step in range(steps):
        if checkpoint_every and step % checkpoint_every == 0:
            commit()
            if hasher is not None:
                batch_digests.append(hasher.hexdigest())
            hasher = trajectory.EpisodeDigest()
        images, labels = _training_batch(generator, meta_batch_size)
        if hasher is not None:
            hasher.add(images, labels)
        last_loss, accuracy = _train_step(network, optimizer, images.to(device), labels.to(device))
        curve.add(loss=last_loss, accuracy=accuracy)
    if checkpoint_every:
        commit()
        if hasher is not None:
            batch_digests.append(hasher.hexdigest())
    _trained.update(network=network, device=device, checkpoints=checkpoints)
    return {"seconds": time.perf_counter() - started, "final_loss": None if last_loss is None else float(last_loss),
            "digests": digests, "batch_digests": batch_digests, "curve": curve.reply()}


def training_checkpoint(index):
    """Committed training state number `index` of the run `train_model` made in this worker."""
    return {"state": _trained["checkpoints"][index]}


_replayed_stream: dict = {}  # the episode stream `training_batches` regenerates, read forward across calls


def training_batches(model, num_classes, samples_per_class, hidden_dim, meta_batch_size, seed, first_step, steps):
    """The episodes that training steps first_step .. first_step + steps - 1 of a `train_model` run with this seed
    read: the stream set up again as training set it up, the episodes before them drawn and dropped (calls asking
    for later steps continue the same stream)."""
    key = (model, num_classes, samples_per_class, hidden_dim, meta_batch_size, seed)
    if _replayed_stream.get("key") != key or _replayed_stream["step"] > first_step:
        _, generator = _training_run(model, num_classes, samples_per_class, hidden_dim, seed, None)
        _replayed_stream.update(key=key, generator=generator, step=0)
    generator = _replayed_stream["generator"]
    for _ in range((first_step - _replayed_stream["step"]) * meta_batch_size):
        generator._sample()
    batches = [_training_batch(generator, meta_batch_size) for _ in range(steps)]
    _replayed_stream["step"] = first_step + steps
    return {"images": torch.stack([b[0] for b in batches]), "labels": torch.stack([b[1] for b in batches])}


def replay_training(model, num_classes, samples_per_class, hidden_dim, learning_rate, state, images, labels, device):
    """From training state `state`, the training steps on the given meta-batches ([S, B, ...]); the state after them.
    Called on the reference: the trusted step a committed trajectory must follow."""
    network = _build(model, num_classes, samples_per_class, hidden_dim).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    parameters = dict(network.named_parameters())
    trajectory.load_training_state(state, parameters, optimizer)
    network.train()
    for batch_images, batch_labels in zip(images, labels):
        _train_step(network, optimizer, batch_images.to(device), batch_labels.to(device))
    return {"state": trajectory.training_state(parameters, optimizer)}


def training_outputs(model, num_classes, samples_per_class, hidden_dim, states, images, labels, device):
    """The logits [len(states), B, K+1, N, N] of a model with each training state's parameters on the grader's probe
    episodes. Called on the reference: the audit compares trained weights as the functions they compute."""
    outputs = [predict(model, num_classes, samples_per_class, hidden_dim, trajectory.parameters_of(state), images,
                       labels, device)["preds"] for state in states]
    return {"outputs": torch.stack(outputs)}


def predict(model, num_classes, samples_per_class, hidden_dim, state, images, labels, device):
    """Logits of a model built with the weights `state` (parameters by name) for episodes whose query labels the
    harness has zeroed. Called on the reference: the grader scores trained weights with the reference's model."""
    network = _build(model, num_classes, samples_per_class, hidden_dim, state).to(device)
    network.eval()
    with torch.no_grad():
        preds = network(images.to(device), labels.to(device))
    return {"preds": preds.float().cpu()}
