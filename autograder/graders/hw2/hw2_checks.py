"""Harness-side helpers of the HW2 grader: tolerances, comparisons with messages a student can act on, shared inputs.

Imported by the test files (never shipped into the worker). Tolerances are relative to the norm of the reference
value, so that they mean the same thing for a loss of 1.6 and for a gradient tensor of norm 1e-3:

    error = ||got - want||_2 / max(||want||_2, FLOOR)

FLOAT32 (1e-5): values computed by a few float32 operations (losses, adapted parameters, gradients w.r.t. the
embeddings of the identity network). A correct solution written differently (matmul vs einsum vs explicit sums,
cdist vs differences, another reduction order) moves them by a few ulps per operation: measured at most 1.2e-6 on
the alternative correct submissions of tests/fixtures/validity/hw2/alternates.toml.
GRADIENT (1e-4): gradients back-propagated through the 4-block conv network with batch norm, first or second
order. Rounding differences of the forward pass are amplified by the backward pass: measured up to 2.6e-6 on the
alternates for ProtoNet's parameter gradients, up to 9e-7 for MAML's meta-gradient after the tests' 6 second-order
inner steps (maml_handwritten_cross_entropy; its adapted parameters differ by 9e-8). Every bug of the corpus moves
these by more than 1e-2, and each test that relies on a gap (first- vs second-order meta-gradient, ...) asserts that
gap on the reference itself.
"""

from __future__ import annotations

import math

import torch

from autograder.engine.harness import GraderError

FLOAT32 = 1e-5
GRADIENT = 1e-4
FLOOR = 1e-12


def relative_error(got, want) -> float:
    """||got - want|| / ||want||; infinity when either holds NaN or infinity (so no comparison passes on NaN)."""
    got = torch.as_tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    error = float((got - want).norm() / max(float(want.norm()), FLOOR))
    return error if math.isfinite(error) else math.inf


_REFERENCE_INPUTS: dict = {}  # one grading run = one harness process: inputs drawn once, shared by its tests


def reference_inputs(reference, probe: str, **inputs) -> dict:
    """A reference probe that only PRODUCES inputs (tasks, initial weights), run once per grading and remembered.

    Tests then call the student first and the reference for expected values after: a submission that fails early
    never starts a reference worker (the blank starter grades in half the time). The inputs must be small values
    (seeds, sizes, configurations): they are told apart by their repr, which abbreviates tensors.
    """
    key = (probe, repr(sorted(inputs.items())))
    return remembered(key, lambda: reference.run(probe, **inputs))


def remembered(key, compute):
    """compute() once per grading run for `key` (a value the harness derives only from its own constants, such as
    a reference measurement on tasks built here from a seed)."""
    if key not in _REFERENCE_INPUTS:
        _REFERENCE_INPUTS[key] = compute()
    return _REFERENCE_INPUTS[key]


def self_check(condition: bool, message: str) -> None:
    """A check of the grader's own premises (on the reference or on values computed here): failing it is a grader
    error, never the student's fault."""
    if not condition:
        raise GraderError(f"grader self-check failed: {message}")


def assert_number(value, what: str) -> float:
    assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), (
        f"{what}: expected a finite number, got {value!r}")
    return float(value)


def assert_close(got, want, tolerance: float, what: str) -> None:
    """Norm-relative comparison of numbers or tensors; names `what` and both values in the message."""
    if isinstance(want, (int, float)):
        got = assert_number(got, what)
    assert got is not None, f"{what}: got nothing (None), expected {_short(want)}"
    got_tensor = torch.as_tensor(got)
    want_tensor = torch.as_tensor(want)
    assert tuple(got_tensor.shape) == tuple(want_tensor.shape), (
        f"{what}: shape {tuple(got_tensor.shape)}, expected {tuple(want_tensor.shape)}")
    assert bool(torch.isfinite(got_tensor).all()), f"{what}: contains NaN or infinity"
    error = relative_error(got_tensor, want_tensor)
    assert error <= tolerance, (
        f"{what}: differs from the correct value by {error:.2e} (relative), more than the tolerance {tolerance:.0e}; "
        f"got {_short(got)}, expected {_short(want)}")


def assert_tensor_dicts_close(got: dict, want: dict, tolerance: float, what: str) -> None:
    """Compare dicts of tensors by name, as ONE vector: a tensor whose true value is 0 (the gradient of a convolution
    bias that batch norm removes) holds only rounding noise, which is meaningless relative to its own norm."""
    assert isinstance(got, dict) and set(got) == set(want), (
        f"{what}: expected a dict with the names {sorted(want)}, got {sorted(got) if isinstance(got, dict) else got!r}")
    for name in want:
        assert got[name] is not None, f"{what} [{name}]: got nothing (None)"
        assert tuple(torch.as_tensor(got[name]).shape) == tuple(torch.as_tensor(want[name]).shape), (
            f"{what} [{name}]: shape {tuple(torch.as_tensor(got[name]).shape)}, expected "
            f"{tuple(torch.as_tensor(want[name]).shape)}")
        assert bool(torch.isfinite(torch.as_tensor(got[name])).all()), f"{what} [{name}]: contains NaN or infinity"
    error = relative_error(flat(got), flat(want))
    if error > tolerance:
        difference = {name: float((torch.as_tensor(got[name], dtype=torch.float64)
                                   - torch.as_tensor(want[name], dtype=torch.float64)).norm()) for name in want}
        worst = max(difference, key=difference.get)
        raise AssertionError(
            f"{what}: differs from the correct values by {error:.2e} (relative, all tensors together), more than the "
            f"tolerance {tolerance:.0e}; the largest difference is in [{worst}]: got {_short(got[worst])}, expected "
            f"{_short(want[worst])}")


def assert_accuracy_close(got, want, examples: int, what: str) -> None:
    """Accuracies are counts over `examples` rows: equal up to one argmax tie flipped by float32 rounding."""
    got = assert_number(got, what)
    slack = 1.0 / examples + 1e-6
    assert abs(got - want) <= slack, f"{what}: got {got:.4f}, expected {want:.4f}"


def _short(value) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.6g}"
    tensor = torch.as_tensor(value)
    if tensor.numel() <= 6:
        return str([round(float(v), 6) for v in tensor.flatten()])
    return f"a tensor of shape {tuple(tensor.shape)} and norm {float(tensor.double().norm()):.6g}"


def flat(tensors: dict) -> torch.Tensor:
    """One float64 vector of a dict of tensors, in the dict's order (compare dicts with the same names)."""
    return torch.cat([torch.as_tensor(tensors[name], dtype=torch.float64).flatten() for name in sorted(tensors)])


def random_tasks(seed: int, num_tasks=2, num_way=5, num_support=2, num_query=3, sorted_support=False) -> dict:
    """Stacked tasks of random images in [0, 1] with shuffled labels (for checks that need no real characters);
    sorted_support: the support set in class order (class 0's examples first, ...), as code that groups the support
    examples by position assumes."""
    generator = torch.Generator().manual_seed(seed)
    tasks = {key: [] for key in ("images_support", "labels_support", "images_query", "labels_query")}
    for _ in range(num_tasks):
        for kind, count in (("support", num_support), ("query", num_query)):
            labels = torch.arange(num_way).repeat(count)[torch.randperm(num_way * count, generator=generator)]
            if kind == "support" and sorted_support:
                labels = labels.sort().values
            tasks[f"labels_{kind}"].append(labels)
            tasks[f"images_{kind}"].append(torch.rand(num_way * count, 1, 28, 28, generator=generator))
    return {key: torch.stack(values) for key, values in tasks.items()}


def first_match(got, candidates: dict, tolerance: float):
    """The name of the first candidate value (by name, in order) that `got` equals within `tolerance`, else None."""
    if got is None:
        return None
    for name, value in candidates.items():
        if relative_error(got, value) <= tolerance:
            return name
    return None


def support_accuracy_curve(values, num_inner_steps: int, what: str) -> list[float]:
    """The support accuracies of _outer_step as num_inner_steps + 1 numbers. Entries that are tensors of per-example
    correctness (one value per support image) are averaged: that mistake is graded by
    test_inner_loop_accuracies_are_numbers alone."""
    tensor = torch.as_tensor(values, dtype=torch.float64)
    assert tensor.dim() >= 1 and tensor.shape[0] == num_inner_steps + 1, (
        f"{what}: accuracies_support has shape {tuple(tensor.shape)}, expected ({num_inner_steps + 1},): one support "
        "accuracy before each inner step and one after the last, averaged over the tasks")
    return tensor.reshape(num_inner_steps + 1, -1).mean(dim=1).tolist()
