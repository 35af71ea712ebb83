# hw2/tests/test_hw2_protonet.py: public tests, provided. Run them with `pytest hw2`; you need not change them.
"""Public tests of protonet.py: `ProtoNet._step` and the training script.

PYTEST_DONT_REWRITE: a failing check reports its message alone
(what was observed and what was expected), without pytest's dump of the values."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import protonet
from hw2_tasks import random_task
from protonet import ProtoNet

EMBEDDING_SIZE = 3


class PixelEmbedding(nn.Module):
    """A stand-in network whose embedding of an image is its first 3 pixels, so tests can place embeddings exactly."""

    def forward(self, images):
        return images[:, 0, 0, :EMBEDDING_SIZE]


def embedded_task(support_points, labels_support, query_points, labels_query, requires_grad=False):
    """Images whose PixelEmbedding is the given points [examples, 3]."""
    def images(points):
        result = torch.zeros(len(points), 1, 28, 28)
        result[:, 0, 0, :EMBEDDING_SIZE] = torch.as_tensor(points, dtype=torch.float32)
        return result.requires_grad_(requires_grad)
    return images(support_points), torch.as_tensor(labels_support), images(query_points), torch.as_tensor(labels_query)


def pixel_protonet():
    model = ProtoNet(learning_rate=0.001, log_dir=None, device="cpu")
    model._network = PixelEmbedding()
    return model


def expected_loss(task, squared=True, class_major=False):
    """Loss of one task computed from its PixelEmbedding (the variants give precise failure messages)."""
    images_support, labels_support, images_query, labels_query = task
    support, query = images_support[:, 0, 0, :EMBEDDING_SIZE], images_query[:, 0, 0, :EMBEDDING_SIZE]
    num_way = int(labels_support.max()) + 1
    if class_major:  # the wrong assumption that the support set is sorted by class
        prototypes = support.reshape(num_way, -1, EMBEDDING_SIZE).mean(dim=1)
    else:
        prototypes = torch.stack([support[labels_support == c].mean(dim=0) for c in range(num_way)])
    distances = ((query[:, None, :] - prototypes[None, :, :]) ** 2).sum(dim=-1)
    return F.cross_entropy(-(distances if squared else distances.sqrt()), labels_query)


def test_step_returns_a_differentiable_scalar_loss_and_two_accuracies():
    torch.manual_seed(0)
    model = ProtoNet(learning_rate=0.001, log_dir=None, device="cpu")
    result = model._step([random_task(seed=1), random_task(seed=2)])
    assert isinstance(result, tuple) and len(result) == 3, (
        f"ProtoNet._step must return (loss, accuracy_support, accuracy_query), got {type(result).__name__}"
        + (f" of length {len(result)}" if isinstance(result, tuple) else ""))
    loss, accuracy_support, accuracy_query = result
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, "the loss must be a scalar (0-dim) tensor"
    assert loss.requires_grad, "the loss must be differentiable w.r.t. the network's parameters (no .item(), no detach)"
    assert torch.isfinite(loss), f"the loss is not finite: {float(loss)}"
    for name, value in (("support", accuracy_support), ("query", accuracy_query)):
        assert 0.0 <= float(value) <= 1.0, f"the {name} accuracy must be a fraction in [0, 1], got {float(value)}"
    loss.backward()
    gradients = [p.grad for p in model._network.parameters()]
    assert all(g is not None for g in gradients), "loss.backward() left some network parameters without a gradient"


def test_loss_uses_class_means_and_negative_squared_distances():
    model = pixel_protonet()
    # 3-way, 2-shot, shuffled support: the classes are NOT in blocks.
    generator = torch.Generator().manual_seed(3)
    labels_support = torch.tensor([2, 0, 1, 0, 2, 1])
    labels_query = torch.tensor([1, 2, 0, 0, 2, 1, 1])
    task = embedded_task(torch.rand(6, 3, generator=generator), labels_support, torch.rand(7, 3, generator=generator),
                         labels_query)
    loss = float(model._step([task])[0])
    expected = float(expected_loss(task))
    if abs(loss - expected) > 1e-5 * max(1.0, abs(expected)):
        hints = []
        if abs(loss - float(expected_loss(task, squared=False))) < 1e-5:
            hints.append("it equals the loss with the Euclidean distance; ProtoNets use the SQUARED distance")
        if abs(loss - float(expected_loss(task, class_major=True))) < 1e-5:
            hints.append("it equals the loss of prototypes that assume the support set is sorted by class; "
                         "select the examples of a class by label")
        pytest.fail(f"ProtoNet loss {loss:.6f}, expected {expected:.6f} (cross-entropy of the query logits "
                    "-||e_query - p_c||^2, p_c the mean support embedding of class c)"
                    + ("; " + "; ".join(hints) if hints else ""), pytrace=False)


def test_prototypes_do_not_depend_on_the_support_order():
    torch.manual_seed(0)
    model = ProtoNet(learning_rate=0.001, log_dir=None, device="cpu")
    images_support, labels_support, images_query, labels_query = random_task(num_way=4, num_support=3, seed=5)
    permutation = torch.randperm(len(labels_support), generator=torch.Generator().manual_seed(9))
    loss = model._step([(images_support, labels_support, images_query, labels_query)])[0]
    permuted = model._step([(images_support[permutation], labels_support[permutation], images_query, labels_query)])[0]
    assert torch.allclose(loss, permuted, rtol=1e-5, atol=1e-6), (
        f"reordering the support set (images and labels together) changed the loss from {loss.item():.6f} to "
        f"{permuted.item():.6f}: find the examples of each class by their labels, not by their position")


def test_gradient_reaches_the_support_embeddings():
    model = pixel_protonet()
    generator = torch.Generator().manual_seed(4)
    task = embedded_task(torch.rand(4, 3, generator=generator), [0, 1, 1, 0], torch.rand(4, 3, generator=generator),
                         [1, 0, 0, 1], requires_grad=True)
    loss = model._step([task])[0]
    loss.backward()
    support_gradient, query_gradient = task[0].grad, task[2].grad
    assert support_gradient is not None and support_gradient.abs().sum() > 0, (
        "no gradient flows from the loss to the support embeddings: the prototypes must be computed from the "
        "support embeddings with differentiable operations (no .detach(), .item(), .numpy() or torch.no_grad())")
    assert query_gradient is not None and query_gradient.abs().sum() > 0, "no gradient flows to the query embeddings"


def test_query_loss_and_accuracy_use_the_query_labels():
    model = pixel_protonet()
    support = [[0, 0, 0], [4, 0, 0], [0, 4, 0]]
    # Each query point sits on a prototype; with the true labels the query accuracy is 1, with rotated labels 0.
    query = [[4, 0, 0], [0, 4, 0], [0, 0, 0], [4, 0, 0]]
    labels_query = torch.tensor([1, 2, 0, 1])
    loss, accuracy_support, accuracy_query = model._step([embedded_task(support, [0, 1, 2], query, labels_query)])
    wrong_loss, _, wrong_accuracy = model._step([embedded_task(support, [0, 1, 2], query, (labels_query + 1) % 3)])
    assert float(accuracy_support) == 1.0, "each support point is its own prototype: the support accuracy must be 1"
    assert float(accuracy_query) == 1.0 and float(wrong_accuracy) == 0.0, (
        f"query accuracy {float(accuracy_query)} with the true query labels and {float(wrong_accuracy)} with wrong "
        "ones, expected 1 and 0: score the query logits against labels_query")
    assert float(wrong_loss) > float(loss) + 1.0, (
        f"query loss {float(loss):.4f} with the true query labels and {float(wrong_loss):.4f} with wrong ones: the "
        "query loss must be the cross-entropy against labels_query")


def test_step_averages_over_the_task_batch():
    model = pixel_protonet()
    generator = torch.Generator().manual_seed(6)
    tasks = [embedded_task(torch.rand(4, 3, generator=generator), [0, 1, 0, 1],
                           torch.rand(2, 3, generator=generator), [1, 0]) for _ in range(3)]
    batch_loss = float(model._step(tasks)[0])
    one_at_a_time = [float(model._step([task])[0]) for task in tasks]  # yours: this test checks the averaging only
    expected = sum(one_at_a_time) / len(tasks)
    assert abs(batch_loss - expected) < 1e-5, (
        f"the loss of a batch of 3 tasks is {batch_loss:.6f}, but the mean of the losses of the same tasks passed one "
        f"at a time is {expected:.6f}: the batch loss must be the mean over its tasks")


@pytest.mark.slow
def test_training_script_trains_checkpoints_and_tests(store, tmp_path):
    log_dir = tmp_path / "protonet"
    common = ["--device", "cpu", "--num_way", "3", "--num_support", "1", "--num_query", "2", "--batch_size", "2",
              "--log_dir", str(log_dir)]
    protonet.main(protonet.parse_arguments(common + ["--num_train_iterations", "4", "--val_interval", "2",
                                                     "--num_val_tasks", "2", "--log_interval", "2",
                                                     "--save_interval", "2"]))
    assert (log_dir / "state4.pt").is_file(), "training must write a checkpoint state<step>.pt into --log_dir"
    assert (log_dir / "learning_curves.png").is_file(), "training must plot learning_curves.png into --log_dir"
    results = protonet.main(protonet.parse_arguments(common + ["--test", "--num_test_tasks", "5"]))
    saved = json.loads((log_dir / "results.json").read_text())
    assert saved["test"]["num_tasks"] == 5 and 0.0 <= saved["test"]["accuracy"] <= 1.0, (
        f"results.json: test on {saved['test']['num_tasks']} tasks with accuracy {saved['test']['accuracy']}, "
        "expected 5 tasks and an accuracy in [0, 1]")
    assert saved["train"]["steps"] == 4 and results["test"]["checkpoint_step"] == 4, (
        f"trained {saved['train']['steps']} steps and tested checkpoint {results['test']['checkpoint_step']}, "
        "expected 4 and 4")


def test_provided_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        protonet.parse_arguments(["--help"])
    text = capsys.readouterr().out
    for flag in ("--num_way", "--num_support", "--num_query", "--batch_size", "--num_train_iterations",
                 "--learning_rate", "--test", "--checkpoint_step", "--log_dir", "--device", "--seed"):
        assert flag in text, f"protonet.py --help does not list {flag}"
