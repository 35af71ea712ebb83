"""Accuracy the HW1 grader measures itself; shared by test_hw1_training.py and `python -m autograder calibrate hw1`.

The submission's own code (its DataGenerator, model and loss_function) trains in the worker from a seed the
harness gives; then the harness draws evaluation episodes from the TEST split with its own trusted sampler and a
seed the worker never sees, sends them with the query labels zeroed, gets logits back and scores them here.
"""

from __future__ import annotations

import numpy as np
import torch

from hw1_episodes import draw_episodes, hide_query_labels, store_and_index

CALL_TIMEOUT = 1800  # seconds per probe call when calibrating (grading uses the test's timeout marker)
EVAL_CHUNK = 500  # episodes per predict call: keeps each reply small


class BadPredictions(AssertionError):
    """The model's output cannot be scored (wrong shape, not finite); the message is what the feedback shows."""


def query_accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of all query predictions (row K of every episode) whose highest logit is the true class."""
    return float((preds[:, -1].argmax(-1) == labels[:, -1].argmax(-1)).mean())


def _train_and_score(runner, model: str, budget, device: str, *, train_seed: int, eval_seed: int, train: bool,
                     data_dir: str | None) -> float:
    num_classes, samples_per_class = int(budget["num_classes"]), int(budget["num_shot"]) + 1
    runner.run("train_model", model=model, num_classes=num_classes, samples_per_class=samples_per_class,
               hidden_dim=int(budget["hidden_dim"]), meta_batch_size=int(budget["meta_batch_size"]),
               learning_rate=float(budget["learning_rate"]), steps=int(budget["train_steps"]) if train else 0,
               seed=train_seed, device=device)
    store, _ = store_and_index(data_dir)
    images, labels = draw_episodes(store, "test", num_classes, samples_per_class, int(budget["eval_episodes"]),
                                   eval_seed)
    shown = hide_query_labels(labels)
    preds = []
    for start in range(0, len(images), EVAL_CHUNK):
        chunk = slice(start, start + EVAL_CHUNK)
        got = runner.run("predict", images=torch.from_numpy(images[chunk]), labels=torch.from_numpy(shown[chunk]))
        value = got.get("preds")
        expected = (len(images[chunk]), samples_per_class, num_classes, num_classes)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise BadPredictions(f"the model's forward returned {shape} for a batch of evaluation episodes; "
                                 f"expected logits of shape {expected} ([B, K+1, N, N])")
        value = value.float().numpy()
        if not np.all(np.isfinite(value[:, -1])):
            raise BadPredictions("the model's query logits contain NaN or infinity after training")
        preds.append(value)
    return query_accuracy(np.concatenate(preds), labels)


def mann_accuracy(runner, budget, device, *, train_seed, eval_seed, train=True, data_dir=None) -> float:
    """Query accuracy of the MANN trained under `budget`, on `budget["eval_episodes"]` test-split episodes."""
    return _train_and_score(runner, "lstm", budget, device, train_seed=train_seed, eval_seed=eval_seed, train=train,
                            data_dir=data_dir)


METRICS = {"mann_accuracy": mann_accuracy}
