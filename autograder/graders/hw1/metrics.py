"""Accuracy the HW1 grader measures itself; shared by test_hw1_training.py and `python -m autograder calibrate hw1`.

The submission's own code (its DataGenerator, model and loss_function) trains in the worker, from initial weights
the grader drew with a secret seed (on the reference) and an episode seed it gives; the worker hands back the
trained weights and commits to its trajectory, which the grader checks by replaying a few secret segments with the
reference's step (`autograder.scoring.training_audit`). The trained weights are then scored with the REFERENCE model, in a
trusted worker, on episodes the harness draws from the TEST split with a seed the sandbox never sees: no
evaluation-time code of the submission runs, and the test drawings never enter the sandbox.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from autograder.scoring.training_audit import (TrajectoryMismatch, audit_trajectory, checkpoint_steps,
                                               episodes_not_replayed, spacing)
from autograder.scoring.training_time import run_paced
from hw1_episodes import PIXEL_TOLERANCE, draw_episodes, hide_query_labels, store_and_index
from omniglot_data.trajectory import EpisodeDigest, parameters_of

CALL_TIMEOUT = 1800  # seconds per probe call when calibrating (grading uses the test's timeout marker)
EVAL_CHUNK = 500  # episodes per predict call: keeps each reply small
AUDIT_CHECKPOINTS = 30  # the trajectory is committed about this many times per run
AUDIT_SEGMENTS = 3  # segments replayed with the reference's step (10% of the training)
# Replayed vs committed outputs, relative to the segment's movement (bench/audit_tolerance.py): correct alternates
# reach 0.022 (ProtoNet with index_add, first segment: Adam turns rounding noise into full steps), bugs 0.88-1.2.
AUDIT_TOLERANCE = 0.15
AUDIT_PROBE_EPISODES, AUDIT_PROBE_SEED = 64, 330  # training-split episodes on which trained weights are compared
REPLAY_CHUNK_BYTES = 32 * 2**20  # episodes fetched and replayed per call (a gpu-profile segment is ~270 MB of them)


class BadPredictions(AssertionError):
    """The model's output cannot be scored (wrong shape, not finite); the message is what the feedback shows."""


def query_accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of all query predictions (row K of every episode) whose highest logit is the true class."""
    return float((preds[:, -1].argmax(-1) == labels[:, -1].argmax(-1)).mean())


_PIXEL_WEIGHTS = np.random.default_rng(784).standard_normal(784)


@lru_cache(maxsize=2)
def _test_drawings(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Every test-split drawing's pixels (uint8 ink [M, 784]) sorted by a random projection, and the projections:
    a candidate image is then looked up by its projection and confirmed pixel by pixel."""
    store, _ = store_and_index(data_dir)
    pixels = store.images[store.rows("test")].reshape(-1, 784)
    keys = pixels.astype(np.float64) @ _PIXEL_WEIGHTS
    order = np.argsort(keys)
    return pixels[order], keys[order]


def count_test_drawings(images, data_dir: str | None) -> int:
    """How many of `images` ([..., 784] ink in [0, 1]) are test-split drawings (to within float rounding). The
    sandbox never holds the test split, so such images can only have been shipped inside the submission."""
    flat = np.asarray(images, dtype=np.float32).reshape(-1, 784) * np.float32(255)
    levels = np.rint(flat)
    exact = (np.abs(flat - levels).max(axis=1) <= PIXEL_TOLERANCE * 255) & (levels.min(axis=1) >= 0) & (
        levels.max(axis=1) <= 255)
    candidates = levels[exact]
    pixels, keys = _test_drawings(data_dir)
    projected = candidates.astype(np.float64) @ _PIXEL_WEIGHTS
    position = np.clip(np.searchsorted(keys, projected), 1, len(keys) - 1)
    matched = np.zeros(len(candidates), dtype=bool)
    for near in (position - 1, position):  # the projection rounds differently per call: confirm both neighbours
        close = np.flatnonzero(~matched & (np.abs(keys[near] - projected) <= 1e-6 * (1 + np.abs(projected))))
        matched[close[np.all(candidates[close] == pixels[near[close]], axis=1)]] = True
    return int(matched.sum())


def _train_and_score(student, reference, model: str, budget, device: str, *, train_seed: int, init_seed: int,
                     eval_seed: int, train: bool, data_dir: str | None, notes: list | None,
                     curves: list | None) -> float:
    num_classes, samples_per_class = int(budget["num_classes"]), int(budget["num_shot"]) + 1
    case = dict(model=model, num_classes=num_classes, samples_per_class=samples_per_class,
                hidden_dim=int(budget["hidden_dim"]))
    batch_size, learning_rate = int(budget["meta_batch_size"]), float(budget["learning_rate"])
    steps = int(budget["train_steps"]) if train else 0
    every = spacing(steps, AUDIT_CHECKPOINTS)
    boundaries = checkpoint_steps(steps, every)
    initial = reference.run("initial_state", seed=init_seed, **case)["state"]
    commitment = run_paced(student, reference, "train_model",
                           dict(**case, meta_batch_size=batch_size, learning_rate=learning_rate, steps=steps,
                                seed=train_seed, device=device, initial_state=initial, checkpoint_every=every), steps)
    if curves is not None:
        curves.append((commitment.get("curve"), steps))

    episode_bytes = samples_per_class * num_classes * (784 + num_classes) * 4
    chunk_steps = max(1, REPLAY_CHUNK_BYTES // (batch_size * episode_bytes))

    def replay(state, k):
        """Segment k replayed on the reference, on the episodes the student's stream gives for it (fetched in
        chunks; their digest must be the one committed during training)."""
        first, last = boundaries[k], boundaries[k + 1]
        episodes = EpisodeDigest()
        for chunk_first in range(first, last, chunk_steps):
            count = min(chunk_steps, last - chunk_first)
            got = student.run("training_batches", **case, meta_batch_size=batch_size, seed=train_seed,
                              first_step=chunk_first, steps=count)
            images, labels = got.get("images"), got.get("labels")
            shape = (count, batch_size, samples_per_class, num_classes)
            for value, expected in ((images, (*shape, 784)), (labels, (*shape, num_classes))):
                if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected or \
                        value.dtype != torch.float32:
                    raise TrajectoryMismatch(f"training steps {first}-{last}: the training probe returned "
                                             f"episodes that are not float32 tensors of shape {expected}")
            leaked = count_test_drawings(images, data_dir)
            if leaked:
                raise TrajectoryMismatch(f"training steps {first}-{last}: {leaked} training images are drawings of "
                                         "the TEST split, which the training sandbox does not hold: train on the "
                                         "episodes of DataGenerator(..., 'train') only")
            for step_images, step_labels in zip(images, labels):
                episodes.add(step_images, step_labels)
            state = reference.run("replay_training", **case, learning_rate=learning_rate, state=state,
                                  images=images, labels=labels, device=device)["state"]
        committed = commitment.get("batch_digests") if isinstance(commitment, dict) else None
        if not isinstance(committed, list) or len(committed) != len(boundaries) - 1 or \
                committed[k] != episodes.hexdigest():
            raise episodes_not_replayed(first, last)
        return state

    store, _ = store_and_index(data_dir)
    probe_images, probe_labels = (torch.from_numpy(array) for array in draw_episodes(
        store, "train", num_classes, samples_per_class, AUDIT_PROBE_EPISODES, seed=AUDIT_PROBE_SEED))

    def outputs(states):
        return list(reference.run("training_outputs", **case, states=states, images=probe_images,
                                  labels=probe_labels, device=device)["outputs"])

    final, audit = audit_trajectory(
        commitment=commitment, initial_parameters=initial, total_steps=steps, every=every,
        fetch_state=lambda k: student.run("training_checkpoint", index=k).get("state"), replay=replay,
        outputs=outputs, segments=AUDIT_SEGMENTS, tolerance=AUDIT_TOLERANCE)
    if notes is not None:
        notes.append(audit.describe())
    weights = parameters_of(final)
    images, labels = draw_episodes(store, "test", num_classes, samples_per_class, int(budget["eval_episodes"]),
                                   eval_seed)
    shown = hide_query_labels(labels)
    preds = []
    for start in range(0, len(images), EVAL_CHUNK):
        chunk = slice(start, start + EVAL_CHUNK)
        got = reference.run("predict", **case, state=weights, images=torch.from_numpy(images[chunk]),
                            labels=torch.from_numpy(shown[chunk]), device=device)["preds"]
        value = got.float().numpy()
        if not np.all(np.isfinite(value[:, -1])):
            raise BadPredictions("the trained weights give NaN or infinite query logits")
        preds.append(value)
    return query_accuracy(np.concatenate(preds), labels)


def mann_accuracy(student, reference, budget, device, *, train_seed, init_seed, eval_seed, train=True, data_dir=None,
                  notes=None, curves=None) -> float:
    """Query accuracy of the MANN trained under `budget`, on `budget["eval_episodes"]` test-split episodes."""
    return _train_and_score(student, reference, "lstm", budget, device, train_seed=train_seed, init_seed=init_seed,
                            eval_seed=eval_seed, train=train, data_dir=data_dir, notes=notes, curves=curves)


METRICS = {"mann_accuracy": mann_accuracy}
