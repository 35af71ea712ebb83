"""MAML._inner_loop and MAML._outer_step, compared with the reference on identical meta-parameters and tasks.

Comparisons: every configuration, weight and task is built here (maml_setup.py) and sent to both sides; inner
learning rates differ per parameter tensor. Property checks (no reference needed, so no reference worker) run the
student's code alone on random tasks with its own initialisation.

`direction_derivative` is d<adapted parameters, v>/d(meta-parameters) for a random v drawn in the probe from a seed:
exactly v when the inner loop is first order (each step's gradient a constant), v plus Hessian terms when it is
second order. It tells whether the inner loop builds the graph the meta-gradient needs without relying on what the
student returns as `gradients`.

PYTEST_DONT_REWRITE: the feedback shows each assertion's own message, without pytest's expression dump.
"""

import pytest
import torch

from hw2_checks import FLOAT32, GRADIENT, assert_accuracy_close, assert_close, assert_tensor_dicts_close, flat, \
    random_tasks, relative_error, self_check
from maml_setup import config, first_task, meta_state, tasks

BUG_MARGIN = 1e-2  # what a bug changes, relative; asserted on the reference so that no test can become vacuous


def inner_loop(side, batch, train, parameters=None, inner_lrs=None, direction_seed=None, **overrides):
    images, labels, _, _ = first_task(batch)
    return side.run("maml_inner_loop", config=config(**overrides), images=images, labels=labels, train=train,
                    parameters=parameters, inner_lrs=inner_lrs, direction_seed=direction_seed)


def assert_untouched(result, where):
    changed = sorted(name for name, same in result["meta_parameters_unchanged"].items() if not same)
    assert not changed, (
        f"{where} changed the meta-parameters {changed}: build new tensors (parameters[name] - lr * gradient) "
        "instead of updating in place (no -=, .sub_(), .data, or assignment into the meta-parameter tensors)")


@pytest.mark.points(6)
def test_inner_loop_matches_reference(student, reference):
    """_inner_loop: adapted parameters, support accuracies and last-step gradients equal the reference's"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=0)
    for train in (False, True):
        got = inner_loop(student, batch, train, parameters, inner_lrs)
        want = inner_loop(reference, batch, train, parameters, inner_lrs)
        where = f"train={train}"
        assert_tensor_dicts_close(got["adapted"], want["adapted"], FLOAT32, f"{where}: adapted parameters")
        assert_tensor_dicts_close(got["gradients"], want["gradients"], GRADIENT,
                                  f"{where}: last inner-step gradients")
        assert len(got["accuracies"]) == len(want["accuracies"]), (
            f"{where}: {len(got['accuracies'])} support accuracies, expected {len(want['accuracies'])} "
            "(num_inner_steps + 1)")
        for step, (mine, correct) in enumerate(zip(got["accuracies"], want["accuracies"])):
            assert_accuracy_close(mine, correct, len(first_task(batch)[1]), f"{where}: support accuracy {step}")


@pytest.mark.points(3)
def test_inner_loop_accuracy_list_has_one_entry_per_step_plus_final(student):
    """_inner_loop returns num_inner_steps + 1 support accuracies: before each step and after the last one"""
    batch = random_tasks(seed=1)
    for num_inner_steps in (0, 1, 3):
        got = inner_loop(student, batch, False, num_inner_steps=num_inner_steps)
        assert len(got["accuracies"]) == num_inner_steps + 1, (
            f"with num_inner_steps={num_inner_steps}: {len(got['accuracies'])} accuracies, expected "
            f"{num_inner_steps + 1} (one before each step and one after the last step)")


@pytest.mark.points(2)
def test_inner_loop_accuracies_are_numbers(student):
    """Support accuracies are numbers (Python floats or 0-dim tensors without a graph), not tensors of values"""
    batch = random_tasks(seed=2)
    for train in (False, True):
        got = inner_loop(student, batch, train)
        bad = [kind for kind in got["accuracy_kinds"] if kind not in ("float", "int", "tensor[]")]
        assert not bad, (
            f"train={train}: the accuracies list holds {bad}; each entry must be one number, the fraction of support "
            "examples classified correctly (util.score returns a 0-dim tensor, or use a float)")
        assert all(value is not None and 0 <= value <= 1 for value in got["accuracies"]), (
            f"train={train}: accuracies must be fractions in [0, 1], got {got['accuracies']}")


@pytest.mark.points(5)
def test_inner_loop_is_second_order_when_training(student, reference):
    """With train=True the adapted parameters are differentiable through the inner gradients (create_graph=True)"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=3)
    mine = inner_loop(student, batch, True, parameters, inner_lrs, direction_seed=3)
    got, direction = mine["direction_derivative"], mine["direction"]
    missing = sorted(name for name, value in got.items() if value is None)
    assert not missing, (
        f"train=True: the adapted parameters do not depend on the meta-parameters {missing}; start from "
        "self._meta_parameters and keep the graph")
    want = inner_loop(reference, batch, True, parameters, inner_lrs, direction_seed=3)["direction_derivative"]
    self_check(relative_error(flat(want), flat(direction)) > BUG_MARGIN,
               "the reference's second-order terms are visible")
    first_order = relative_error(flat(got), flat(direction)) <= FLOAT32
    assert not first_order, (
        "train=True: the inner loop is first order (its gradients are treated as constants); compute them with "
        "torch.autograd.grad(..., create_graph=True) while training so the meta-gradient includes second-order terms")
    assert_tensor_dicts_close(got, want, GRADIENT, "train=True: derivative of the adapted parameters")


@pytest.mark.points(3)
def test_inner_loop_builds_no_graph_at_evaluation(student):
    """With train=False the inner loop builds no second-order graph (create_graph=False): evaluation stays cheap"""
    got = inner_loop(student, random_tasks(seed=4), False, direction_seed=4)
    with_graph = sorted(name for name, flag in got["gradients_require_grad"].items() if flag)
    assert not with_graph, (
        f"train=False: the inner-loop gradients of {with_graph} carry a graph; use create_graph=False when not "
        "training (the graph is only needed to differentiate the outer loss)")
    for name, value in got["direction_derivative"].items():
        if value is not None:  # None: the student adapted detached copies, which is fine at evaluation
            assert_close(value, got["direction"][name], FLOAT32,
                         f"train=False: derivative of the adapted {name} (second-order terms must be absent)")


@pytest.mark.points(4)
def test_inner_loop_leaves_meta_parameters_untouched(student):
    """The inner loop never updates a tensor in place: the meta-parameters are unchanged after adapting"""
    batch = random_tasks(seed=5)
    for train in (False, True):
        assert_untouched(inner_loop(student, batch, train), f"_inner_loop(train={train})")
    outer = student.run("maml_outer_step", config=config(), tasks=batch, train=True)
    assert_untouched(outer, "_outer_step(train=True)")


@pytest.mark.points(5)
def test_outer_step_matches_reference(student, reference):
    """_outer_step: query loss, support accuracies per inner step and query accuracy equal the reference's"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=6)
    num_query_rows = batch["labels_query"].numel()
    num_support_rows = batch["labels_support"].numel()
    for train in (False, True):
        inputs = dict(config=config(), tasks=batch, train=train, parameters=parameters, inner_lrs=inner_lrs)
        got = student.run("maml_outer_step", **inputs)
        want = reference.run("maml_outer_step", **inputs)
        where = f"train={train}"
        assert_close(got["loss"], want["loss"], FLOAT32, f"{where}: outer (query) loss")
        assert got["accuracies_support"].shape == want["accuracies_support"].shape, (
            f"{where}: accuracies_support has shape {tuple(got['accuracies_support'].shape)}, expected "
            f"{tuple(want['accuracies_support'].shape)} (num_inner_steps + 1 values, averaged over the tasks)")
        for step, (mine, correct) in enumerate(zip(got["accuracies_support"].tolist(),
                                                   want["accuracies_support"].tolist())):
            assert_accuracy_close(mine, correct, num_support_rows, f"{where}: support accuracy after {step} steps")
        assert_accuracy_close(got["accuracy_query"], want["accuracy_query"], num_query_rows,
                              f"{where}: query accuracy")
        if train:
            assert got["loss_requires_grad"], (
                "train=True: the outer loss must be differentiable w.r.t. the meta-parameters")


@pytest.mark.points(8)
def test_outer_step_meta_gradient_is_second_order(student, reference):
    """The meta-gradient of _outer_step equals the reference's second-order MAML gradient (not the first-order one)"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=7)
    inputs = dict(parameters=parameters, inner_lrs=inner_lrs, tasks=batch)
    got = student.run("maml_meta_gradient", config=config(), **inputs)["meta_gradients"]
    want = reference.run("maml_meta_gradient", config=config(), **inputs)["meta_gradients"]
    first_order = reference.run("maml_meta_gradient", config=config(variant="first_order"),
                                **inputs)["meta_gradients"]
    margin = relative_error(flat(first_order), flat(want))
    self_check(margin > BUG_MARGIN, f"first- and second-order meta-gradients differ by only {margin:.1e}")
    missing = sorted(name for name, value in got.items() if value is None)
    assert not missing, f"the outer loss does not depend on the meta-parameters {missing}"
    assert relative_error(flat(got), flat(first_order)) > GRADIENT, (
        "the meta-gradient is the FIRST-order one: the inner loop must use create_graph=True while training")
    assert_tensor_dicts_close(got, want, GRADIENT, "meta-gradient")


@pytest.mark.points(4)
def test_outer_loss_uses_query_labels(student, reference):
    """The outer loss is the cross-entropy of the adapted model's query logits against the QUERY labels"""
    batch = tasks(reference, num_support=3, num_query=3)  # equal sizes: the wrong labels would not even fail a shape
    parameters, inner_lrs = meta_state(reference, seed=8)
    inputs = dict(config=config(), parameters=parameters, inner_lrs=inner_lrs, train=False)
    got = student.run("maml_outer_step", tasks=batch, **inputs)
    want = reference.run("maml_outer_step", tasks=batch, **inputs)
    swapped = reference.run("maml_outer_step", tasks={**batch, "labels_query": batch["labels_support"]}, **inputs)
    self_check(relative_error(swapped["loss"], want["loss"]) > BUG_MARGIN,
               "query labels change the reference's outer loss")
    assert_close(got["loss"], want["loss"], FLOAT32,
                 "outer loss (cross-entropy of the query logits and labels_query)")


@pytest.mark.points(5)
def test_learned_inner_lrs_get_gradients(student, reference):
    """With learn_inner_lrs the inner learning rates are used as tensors and receive the reference's meta-gradient"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=9, learn_inner_lrs=True)
    inputs = dict(config=config(learn_inner_lrs=True), parameters=parameters, inner_lrs=inner_lrs, tasks=batch)
    got = student.run("maml_meta_gradient", **inputs)
    want = reference.run("maml_meta_gradient", **inputs)
    self_check(float(flat(want["inner_lr_gradients"]).norm()) > 0,
               "the inner learning rates get a reference meta-gradient")
    missing = sorted(name for name, value in got["inner_lr_gradients"].items() if value is None)
    assert not missing, (
        f"no gradient reached the inner learning rates of {missing}: use the tensors self._inner_lrs[name] in the "
        "update (not a float copy, .item(), .detach() or the constant inner_lr)")
    assert_tensor_dicts_close(got["inner_lr_gradients"], want["inner_lr_gradients"], GRADIENT,
                              "meta-gradient of the inner learning rates")
    assert_tensor_dicts_close(got["meta_gradients"], want["meta_gradients"], GRADIENT,
                              "meta-gradient of the meta-parameters (learned inner learning rates)")
