"""Public tests of the extra-credit attention learner (`episode_attention_mask`, `AttentionLearner.forward`).

PYTEST_DONT_REWRITE: a failing check reports its message alone
(what was observed and what was expected), without pytest's dump of the values."""

from __future__ import annotations

import pytest
import torch
from test_hw1_mann import random_episodes

from hw1 import AttentionLearner, episode_attention_mask

pytestmark = pytest.mark.extra_credit


def make_learner(num_classes, samples_per_class, hidden_dim=32, seed=0):
    torch.manual_seed(seed)
    return AttentionLearner(num_classes, samples_per_class, hidden_dim).eval()


@pytest.mark.parametrize("samples_per_class, num_classes", [(2, 2), (3, 4)])
def test_attention_mask(samples_per_class, num_classes):
    mask = episode_attention_mask(samples_per_class, num_classes)
    length, num_support = samples_per_class * num_classes, (samples_per_class - 1) * num_classes
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and tuple(mask.shape) == (length, length), (
        f"expected a bool tensor [L, L] with L = (K+1)*N = {length}")
    for i in range(length):
        for j in range(length):
            allowed = j < num_support or i == j
            assert bool(mask[i, j]) != allowed, (
                f"mask[{i}, {j}] should be {not allowed}: True blocks step {i} from attending to step {j}; every step "
                "may attend to the support steps (the first K*N), a query step also to itself, and nothing else")


def test_attention_forward_shape():
    images, labels = random_episodes(3, 3, 4)
    preds = make_learner(4, 3)(images, labels)
    assert isinstance(preds, torch.Tensor) and tuple(preds.shape) == (3, 3, 4, 4), (
        "AttentionLearner.forward must return [B, K+1, N, N] = (3, 3, 4, 4) logits, got "
        + (str(tuple(preds.shape)) if isinstance(preds, torch.Tensor) else type(preds).__name__))


def test_attention_forward_ignores_the_query_labels_and_keeps_the_callers_tensors():
    model = make_learner(3, 2)
    images, labels = random_episodes(2, 2, 3)
    labels_before = labels.clone()
    changed = labels.clone()
    changed[:, -1] = changed[:, -1].flip(dims=[1])
    with torch.no_grad():
        same = torch.allclose(model(images, labels), model(images, changed), atol=1e-6)
    assert torch.equal(labels, labels_before), "AttentionLearner.forward changed the caller's labels"
    assert same, "changing the query labels changed the predictions: the model must not see them (episode_sequence)"


def test_each_query_sees_only_the_support_set_and_itself():
    samples_per_class, num_classes = 3, 3
    model = make_learner(num_classes, samples_per_class)
    images, labels = random_episodes(2, samples_per_class, num_classes)
    changed = images.clone()
    changed[:, -1, 1] = 1 - changed[:, -1, 1]  # the second query image
    with torch.no_grad():
        before, after = model(images, labels), model(changed, labels)
    untouched = [(k, n) for k in range(samples_per_class) for n in range(num_classes) if (k, n) != (2, 1)]
    for k, n in untouched:
        assert torch.allclose(before[:, k, n], after[:, k, n], atol=1e-5), (
            f"changing query image [:, {samples_per_class - 1}, 1] changed the prediction for [:, {k}, {n}]: pass "
            "mask=episode_attention_mask(...) to the encoder so no step attends to another query")
    assert not torch.allclose(before[:, -1, 1], after[:, -1, 1]), "a query's own image did not change its prediction"
