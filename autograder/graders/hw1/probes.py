"""Probes of the HW1 grader: run in the worker, drive the submission through its public interface, return plain data.

Shipped into the student's sandbox: nothing here is secret, and nothing computed here is trusted. The probes only
call the student's code and hand back what it returned; every check happens in the harness (test_*.py).
"""

import random
import time

import numpy as np
import torch

import hw1
import load_data

MODEL_CLASSES = {"lstm": "MANN", "attention": "AttentionLearner"}
_trained = {}  # the model `train_model` trained, for the `predict` calls of the same test (same worker)


def _seed_everything(seed):
    """Seed every generator a submission might use instead of (or besides) `self.rng`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _type_name(value):
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def sample_once(num_classes, samples_per_class, split, seed):
    """One `_sample()` exactly as returned (types included), for the type and shape checks."""
    _seed_everything(seed)
    generator = load_data.DataGenerator(num_classes, samples_per_class, split, config={"seed": seed})
    images, labels = generator._sample()
    return {"images": images, "labels": labels, "images_type": _type_name(images),
            "labels_type": _type_name(labels)}


def sample_episodes(num_classes, samples_per_class, split, seed, episodes):
    """`episodes` consecutive `_sample()` calls on ONE generator, stacked: images [E, K+1, N, 784], labels
    [E, K+1, N, N] (converted with np.asarray, dtype kept: the type check is `sample_once`'s job)."""
    _seed_everything(seed)
    generator = load_data.DataGenerator(num_classes, samples_per_class, split, config={"seed": seed})
    images, labels = [], []
    for _ in range(episodes):
        episode_images, episode_labels = generator._sample()
        images.append(np.asarray(episode_images))
        labels.append(np.asarray(episode_labels))
    return {"images": np.stack(images), "labels": np.stack(labels)}


def _build(model, num_classes, samples_per_class, hidden_dim, state=None):
    network = getattr(hw1, MODEL_CLASSES[model])(num_classes, samples_per_class, hidden_dim)
    if state is not None:
        network.load_state_dict(state)
    return network


def initial_state(model, num_classes, samples_per_class, hidden_dim, seed):
    """A freshly initialised model's parameters (called on the reference: the weights both sides then load)."""
    torch.manual_seed(seed)
    network = _build(model, num_classes, samples_per_class, hidden_dim)
    return {"state": {name: value.detach().clone() for name, value in network.state_dict().items()}}


def forward(model, num_classes, samples_per_class, hidden_dim, state, images, labels, with_loss=True):
    """Load `state` and run forward on (images, labels); with `with_loss`, also the loss and its backward pass.

    Returns the logits, the loss and every parameter's gradient (None without `with_loss`), and the caller's
    `images` and `labels` tensors as they are after the calls (they must be unchanged).
    """
    network = _build(model, num_classes, samples_per_class, hidden_dim, state)
    preds = network(images, labels)
    outputs = {"preds": preds.detach(), "loss": None, "gradients": None}
    if with_loss:
        loss = network.loss_function(preds, labels)
        loss.backward()
        outputs["loss"] = loss.detach()
        outputs["gradients"] = {name: parameter.grad.detach().clone() if parameter.grad is not None else None
                                for name, parameter in network.named_parameters()}
    return {**outputs, "images_after": images, "labels_after": labels}


def loss(num_classes, samples_per_class, preds, labels):
    """`loss_function(preds, labels)` and its gradient with respect to `preds`."""
    network = _build("lstm", num_classes, samples_per_class, hidden_dim=4)
    preds = preds.clone().requires_grad_(True)
    value = network.loss_function(preds, labels)
    value.backward()
    return {"loss": value.detach(), "preds_grad": preds.grad}


def train_model(model, num_classes, samples_per_class, hidden_dim, meta_batch_size, learning_rate, steps, seed,
                device):
    """Meta-train the submission's model with its own DataGenerator and loss_function (Adam, as hw1.py's loop);
    keep it for `predict`. Training episodes come from the train split, seeded by `seed`."""
    _seed_everything(seed)
    network = _build(model, num_classes, samples_per_class, hidden_dim).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    generator = load_data.DataGenerator(num_classes, samples_per_class, "train", config={"seed": seed})
    network.train()
    started = time.perf_counter()
    last_loss = None
    for _ in range(steps):
        batch = [generator._sample() for _ in range(meta_batch_size)]
        images = torch.as_tensor(np.stack([np.asarray(b[0]) for b in batch]), device=device)
        labels = torch.as_tensor(np.stack([np.asarray(b[1]) for b in batch]), device=device)
        value = network.loss_function(network(images, labels), labels)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        last_loss = value.detach()
    seconds = time.perf_counter() - started
    _trained["network"] = network
    _trained["device"] = device
    final = float(last_loss) if last_loss is not None else None
    return {"seconds": seconds, "final_loss": final}


def predict(images, labels):
    """Logits of the trained model for episodes whose query labels the harness has zeroed."""
    network = _trained["network"]
    device = _trained["device"]
    network.eval()
    with torch.no_grad():
        preds = network(images.to(device), labels.to(device))
    return {"preds": preds.float().cpu()}


def say(text):
    """Print a line into this test's output (the feedback shows it): how the grader explains a partial score."""
    print(text, flush=True)
    return {}
