"""The trajectory audit of the accuracy tests (autograder/scoring/training_audit.py, omniglot_data/trajectory.py), on a tiny
model trained with Adam: an honest trajectory passes, every way of faking one is refused with a message."""

from __future__ import annotations

import random

import pytest
import torch

from autograder.scoring.training_audit import TrajectoryMismatch, audit_trajectory, checkpoint_steps, relative_output_error
from omniglot_data import trajectory

STEPS, EVERY, LR = 40, 10, 0.01


def make_model():
    torch.manual_seed(0)
    return torch.nn.Linear(6, 3)


def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 + step)
    return torch.randn(8, 6, generator=generator), torch.randint(0, 3, (8,), generator=generator)


def train_step(model, optimizer, inputs, targets, scale=1.0):
    loss = scale * torch.nn.functional.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def train(initial: dict, scale=1.0, jump_at=None, jump_to=None):
    """A committed run: (commitment, checkpoints), as a training probe makes it."""
    model = make_model()
    model.load_state_dict(initial)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    parameters = dict(model.named_parameters())
    checkpoints, digests = [], []
    for step in range(STEPS):
        if step % EVERY == 0:
            checkpoints.append(trajectory.training_state(parameters, optimizer))
            digests.append(trajectory.digest(checkpoints[-1]))
        if step == jump_at:  # what a submission shipping weights does: overwrite them mid-training
            with torch.no_grad():
                for name, value in jump_to.items():
                    parameters[name].copy_(value)
        train_step(model, optimizer, *batches(step), scale=scale)
    checkpoints.append(trajectory.training_state(parameters, optimizer))
    digests.append(trajectory.digest(checkpoints[-1]))
    return {"digests": digests}, checkpoints


def replay(state: dict, k: int) -> dict:
    """The reference's step from a committed state over segment k."""
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    parameters = dict(model.named_parameters())
    trajectory.load_training_state(state, parameters, optimizer)
    steps = checkpoint_steps(STEPS, EVERY)
    for step in range(steps[k], steps[k + 1]):
        train_step(model, optimizer, *batches(step))
    return trajectory.training_state(parameters, optimizer)


@pytest.fixture
def initial():
    return {name: value.detach().clone() for name, value in make_model().state_dict().items()}


def outputs(states: list[dict]) -> list[torch.Tensor]:
    """The reference model's logits on a probe batch, for each state."""
    inputs, _ = batches(-1)
    found = []
    for state in states:
        model = make_model()
        model.load_state_dict(trajectory.parameters_of(state))
        found.append(model(inputs).detach())
    return found


def audit(commitment, checkpoints, initial, segments=10):
    return audit_trajectory(commitment=commitment, initial_parameters=initial, total_steps=STEPS, every=EVERY,
                            fetch_state=lambda k: checkpoints[k], replay=replay, outputs=outputs, segments=segments,
                            tolerance=1e-2, rng=random.Random(0))


def test_state_round_trip_and_digest():
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    train_step(model, optimizer, *batches(0))
    state = trajectory.training_state(dict(model.named_parameters()), optimizer)
    other = make_model()
    other_optimizer = torch.optim.Adam(other.parameters(), lr=LR)
    trajectory.load_training_state(state, dict(other.named_parameters()), other_optimizer)
    again = trajectory.training_state(dict(other.named_parameters()), other_optimizer)
    assert trajectory.digest(again) == trajectory.digest(state)
    changed = {**state, "param/bias": state["param/bias"] + 1e-7}
    assert trajectory.digest(changed) != trajectory.digest(state)
    assert float(state["step"]) == 1.0


def test_honest_trajectory_passes_and_every_segment_replays_exactly(initial):
    commitment, checkpoints = train(initial)
    final, result = audit(commitment, checkpoints, initial)
    assert trajectory.digest(final) == commitment["digests"][-1]
    assert [(first, last) for first, last, _ in result.segments] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    assert max(error for *_, error in result.segments) == 0.0
    assert "replayed with the reference's update" in result.describe()


def test_trajectory_from_another_initialisation_is_refused(initial):
    other = {name: value + 0.1 for name, value in initial.items()}
    commitment, checkpoints = train(other)
    with pytest.raises(TrajectoryMismatch, match="did not start from the initial weights"):
        audit(commitment, checkpoints, initial)


def test_jump_to_shipped_weights_is_caught_in_its_segment(initial):
    shipped = {name: torch.randn_like(value) for name, value in initial.items()}
    commitment, checkpoints = train(initial, jump_at=25, jump_to=shipped)
    with pytest.raises(TrajectoryMismatch, match="training steps 20-30"):
        audit(commitment, checkpoints, initial)


def test_another_update_rule_is_caught(initial):
    commitment, checkpoints = train(initial, scale=3.0)  # a loss that is not the reference's
    with pytest.raises(TrajectoryMismatch, match="replaying them"):
        audit(commitment, checkpoints, initial, segments=1)


def test_state_changed_after_the_commitment_is_refused(initial):
    commitment, checkpoints = train(initial)
    checkpoints[-1] = {**checkpoints[-1], "param/weight": checkpoints[-1]["param/weight"] * 2}
    with pytest.raises(TrajectoryMismatch, match="not the one committed"):
        audit(commitment, checkpoints, initial)


def test_wrong_number_of_checkpoints_is_refused(initial):
    commitment, checkpoints = train(initial)
    with pytest.raises(TrajectoryMismatch, match="expected 5"):
        audit({"digests": commitment["digests"][:-1]}, checkpoints, initial)
    with pytest.raises(TrajectoryMismatch, match="no training state"):
        audit(commitment, [None] * len(checkpoints), initial)


def test_episode_digest_is_order_sensitive_and_dtype_blind():
    images, labels = batches(0)
    first, second, swapped = trajectory.EpisodeDigest(), trajectory.EpisodeDigest(), trajectory.EpisodeDigest()
    first.add(images, labels.float())
    second.add(images.double(), labels.float())  # a float64 episode is trained on as float32: same digest
    swapped.add(labels.float(), images)
    assert first.hexdigest() == second.hexdigest() != swapped.hexdigest()


def test_relative_output_error_is_scale_free():
    start, end = torch.zeros(3), torch.ones(3)
    assert relative_output_error(start, end, torch.ones(3) * 1.01) == pytest.approx(0.01)
    assert relative_output_error(start, end, torch.ones(4)) == float("inf")
    assert relative_output_error(start, end, torch.full((3,), float("nan"))) == float("inf")
