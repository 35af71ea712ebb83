# hw1/tests/test_hw1_mann.py: public tests, provided. Run them with `pytest hw1`; you need not change them.
"""Public tests of hw1.py: `episode_sequence`, `MANN.forward`, `MANN.loss_function` and the training script.

PYTEST_DONT_REWRITE: a failing check reports its message alone
(what was observed and what was expected), without pytest's dump of the values."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import hw1
from hw1 import MANN, episode_sequence

IMAGE_SIZE = 784


def random_episodes(batch_size, samples_per_class, num_classes, seed=0):
    """Random images [B, K+1, N, 784] and one-hot labels [B, K+1, N, N] (support in class order, query shuffled)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, samples_per_class, num_classes, IMAGE_SIZE, generator=generator)
    classes = torch.arange(num_classes).repeat(batch_size, samples_per_class, 1)
    for b in range(batch_size):
        classes[b, -1] = torch.randperm(num_classes, generator=generator)
    return images, F.one_hot(classes, num_classes).float()


def make_mann(num_classes, samples_per_class, hidden_dim=16, seed=0):
    torch.manual_seed(seed)
    return MANN(num_classes, samples_per_class, hidden_dim)


# ------------------------------------------------------------------------------------------ episode_sequence


def test_episode_sequence_layout():
    batch_size, samples_per_class, num_classes = 2, 3, 4
    images, labels = random_episodes(batch_size, samples_per_class, num_classes)
    sequence = episode_sequence(images, labels)
    sequence_length = samples_per_class * num_classes
    assert tuple(sequence.shape) == (batch_size, sequence_length, IMAGE_SIZE + num_classes), (
        f"expected a sequence [B, (K+1)*N, 784+N] = {(batch_size, sequence_length, IMAGE_SIZE + num_classes)}, "
        f"got {tuple(sequence.shape)}")
    for k in range(samples_per_class):
        for n in range(num_classes):
            step = sequence[:, k * num_classes + n]
            assert torch.equal(step[:, :IMAGE_SIZE], images[:, k, n]), (
                f"step k*N+n = {k * num_classes + n} must start with images[:, {k}, {n}] (the image comes first, "
                "and the sequence runs row by row: support rows in order, then the query row)")
            expected_label = labels[:, k, n] if k < samples_per_class - 1 else torch.zeros_like(labels[:, k, n])
            assert torch.equal(step[:, IMAGE_SIZE:], expected_label), (
                f"step {k * num_classes + n} must end with the label of images[:, {k}, {n}]"
                + (" (support rows keep their labels)" if k < samples_per_class - 1 else
                   " set to all zeros (the query labels are hidden from the model)"))


def test_episode_sequence_leaves_the_inputs_untouched():
    images, labels = random_episodes(2, 2, 3)
    images_before, labels_before = images.clone(), labels.clone()
    episode_sequence(images, labels)
    assert torch.equal(labels, labels_before), (
        "episode_sequence changed the caller's labels tensor (the query labels are needed later for the loss): "
        "zero the query labels in a new tensor, not in place")
    assert torch.equal(images, images_before), "episode_sequence changed the caller's images tensor"


# ------------------------------------------------------------------------------------------ MANN.forward


@pytest.mark.parametrize("batch_size, samples_per_class, num_classes", [(1, 2, 2), (3, 3, 4), (2, 6, 5)])
def test_mann_forward_shape(batch_size, samples_per_class, num_classes):
    images, labels = random_episodes(batch_size, samples_per_class, num_classes)
    preds = make_mann(num_classes, samples_per_class)(images, labels)
    expected = (batch_size, samples_per_class, num_classes, num_classes)
    assert isinstance(preds, torch.Tensor) and tuple(preds.shape) == expected, (
        f"MANN.forward must return [B, K+1, N, N] = {expected}, got "
        f"{tuple(preds.shape) if isinstance(preds, torch.Tensor) else type(preds).__name__}")
    assert preds.dtype == torch.float32, f"expected float32 predictions, got {preds.dtype}"


def test_mann_forward_ignores_the_query_labels():
    model = make_mann(3, 3)
    images, labels = random_episodes(4, 3, 3)
    changed = labels.clone()
    changed[:, -1] = changed[:, -1].flip(dims=[1])  # give every query a different (wrong) label
    with torch.no_grad():
        assert torch.equal(model(images, labels), model(images, changed)), (
            "changing the query labels changed the predictions: the model must not see the query labels "
            "(zero the last row of labels before feeding the sequence)")


def test_mann_forward_uses_the_support_labels():
    model = make_mann(3, 3)
    images, labels = random_episodes(4, 3, 3)
    changed = labels.clone()
    changed[:, :-1] = changed[:, :-1].flip(dims=[-1])
    with torch.no_grad():
        assert not torch.allclose(model(images, labels)[:, -1], model(images, changed)[:, -1]), (
            "changing the support labels did not change the query predictions: the support labels must be part "
            "of the input sequence")


def test_mann_forward_leaves_the_callers_tensors_untouched():
    images, labels = random_episodes(2, 2, 3)
    images_before, labels_before = images.clone(), labels.clone()
    make_mann(3, 2)(images, labels)
    assert torch.equal(labels, labels_before), (
        "MANN.forward changed the caller's labels tensor: the caller needs the true query labels for the loss, so "
        "hide them in a new tensor")
    assert torch.equal(images, images_before), "MANN.forward changed the caller's images tensor"


def test_mann_reads_the_episode_row_by_row():
    samples_per_class, num_classes = 3, 3
    model = make_mann(num_classes, samples_per_class)
    images, labels = random_episodes(2, samples_per_class, num_classes)
    changed = images.clone()
    changed[:, -1, 0] = 1 - changed[:, -1, 0]  # the first query image: step K*N of the sequence
    with torch.no_grad():
        before, after = model(images, labels), model(changed, labels)
    assert torch.equal(before[:, :-1], after[:, :-1]), (
        "changing the first query image changed predictions of the support rows: the LSTM must read the support "
        "set (rows 0..K-1, in order) before the queries, and its outputs must be reshaped back in the same "
        "row-major order (check both the sequence and the reshape)")
    assert not torch.allclose(before[:, -1, 0], after[:, -1, 0]), \
        "changing the first query image did not change its own prediction"


# ------------------------------------------------------------------------------------------ MANN.loss_function


def test_loss_is_the_query_cross_entropy():
    samples_per_class, num_classes = 3, 4
    model = make_mann(num_classes, samples_per_class)
    _, labels = random_episodes(5, samples_per_class, num_classes)
    preds = torch.randn(5, samples_per_class, num_classes, num_classes, generator=torch.Generator().manual_seed(1))
    loss = model.loss_function(preds, labels)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, (
        "loss_function must return a scalar (0-dim) tensor, got "
        + (f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__))
    expected = -(labels[:, -1] * preds[:, -1].log_softmax(dim=-1)).sum(dim=-1).mean()
    ratio = loss.item() / expected.item()
    assert torch.allclose(loss, expected, atol=1e-5), (
        f"expected the mean cross-entropy of the query row (preds are logits), {expected.item():.5f}, "
        f"got {loss.item():.5f} ({ratio:.3g} times as much; this batch has B = 5 episodes of N = {num_classes} queries)")


def test_loss_ignores_the_support_rows():
    samples_per_class, num_classes = 3, 2
    model = make_mann(num_classes, samples_per_class)
    _, labels = random_episodes(4, samples_per_class, num_classes)
    preds = torch.randn(4, samples_per_class, num_classes, num_classes, requires_grad=True)
    model.loss_function(preds, labels).backward()
    assert preds.grad is not None and torch.all(preds.grad[:, :-1] == 0), (
        "the loss depends on the support rows' predictions: compute it on the query row (index K) only")
    assert torch.any(preds.grad[:, -1] != 0), "the loss does not depend on the query predictions"


# ------------------------------------------------------------------------------------------ training script


def test_provided_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        hw1.parse_args(["--help"])
    assert exit_info.value.code == 0, f"`python hw1.py --help` exited with {exit_info.value.code}"
    text = capsys.readouterr().out
    for flag in ("--num_classes", "--num_shot", "--meta_batch_size", "--hidden_dim", "--learning_rate",
                 "--train_steps", "--device", "--seed", "--log_dir", "--eval_every", "--checkpoint_every", "--resume",
                 "--model", "--num_test_episodes"):
        assert flag in text, f"`python hw1.py --help` does not document {flag}"


@pytest.mark.slow
def test_training_script_runs_and_resumes(store, tmp_path):
    log_dir = tmp_path / "run"
    common = ["--num_classes", "2", "--num_shot", "1", "--meta_batch_size", "8", "--hidden_dim", "16",
              "--eval_every", "5", "--checkpoint_every", "10", "--num_test_episodes", "16", "--device", "cpu",
              "--log_dir", str(log_dir)]
    assert hw1.main(common + ["--train_steps", "10"]) == 0, "training 10 steps did not exit with 0"
    assert hw1.main(common + ["--train_steps", "15", "--resume"]) == 0, "resuming to 15 steps did not exit with 0"
    results = json.loads((log_dir / "results.json").read_text())
    assert results["train_steps"] == 15 and results["num_test_episodes"] >= 16, (
        f"results.json says {results['train_steps']} steps and {results['num_test_episodes']} test episodes, "
        "expected 15 and at least 16")
    assert 0.0 <= results["test_accuracy"] <= 1.0, f"test accuracy {results['test_accuracy']} is not in [0, 1]"
    missing = [name for name in ("learning_curve.png", "state15.pt") if not (log_dir / name).is_file()]
    assert not missing, f"the run wrote no {' and no '.join(missing)} into --log_dir"
