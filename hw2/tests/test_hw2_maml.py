# hw2/tests/test_hw2_maml.py: public tests, provided. Run them with `pytest hw2`; you need not change them.
"""Public tests of maml.py: `MAML._inner_loop`, `MAML._outer_step`, the extra-credit variants and the script.

The tests use a tiny network (4 channels, 3-way tasks) so that they run in seconds on a CPU.

PYTEST_DONT_REWRITE: a failing check reports its message alone
(what was observed and what was expected), without pytest's dump of the values.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import maml as maml_module
import util
from hw2_tasks import random_task
from maml import HEAD_PARAMETERS, MAML

NUM_WAY = 3


def make_maml(num_inner_steps=1, inner_lr=0.4, learn_inner_lrs=False, variant="maml", **options):
    torch.manual_seed(0)
    return MAML(num_outputs=NUM_WAY, num_inner_steps=num_inner_steps, inner_lr=inner_lr,
                learn_inner_lrs=learn_inner_lrs, outer_lr=0.001, log_dir=None, device="cpu", num_hidden_channels=4,
                variant=variant, **options)


def task(seed=0):
    return random_task(num_way=NUM_WAY, num_support=2, num_query=2, seed=seed)


def gradient_descent(maml, images, labels, num_steps, create_graph, names=None):
    """What the inner loop must compute: num_steps of plain gradient descent from the meta-parameters."""
    parameters = dict(maml._meta_parameters)
    names = list(names or parameters)
    for _ in range(num_steps):
        loss = F.cross_entropy(maml._forward(images, parameters), labels)
        gradients = torch.autograd.grad(loss, [parameters[n] for n in names], create_graph=create_graph)
        parameters = {**parameters, **{n: parameters[n] - maml._inner_lrs[n] * g for n, g in zip(names, gradients)}}
    return parameters


def meta_gradient(maml, loss):
    return torch.autograd.grad(loss, list(maml._meta_parameters.values()), allow_unused=True)


def relative_difference(first, second):
    numerator = sum(float((a - b).detach().norm() ** 2) for a, b in zip(first, second)) ** 0.5
    return numerator / max(sum(float(b.detach().norm() ** 2) for b in second) ** 0.5, 1e-12)


@pytest.mark.parametrize("num_inner_steps", [0, 1, 3])
def test_inner_loop_returns_parameters_accuracies_and_gradients(num_inner_steps):
    maml = make_maml(num_inner_steps=num_inner_steps)
    images, labels, _, _ = task()
    result = maml._inner_loop(images, labels, train=False)
    assert isinstance(result, tuple) and len(result) == 3, (
        "MAML._inner_loop must return (parameters, accuracies, gradients)")
    parameters, accuracies, gradients = result
    assert isinstance(parameters, dict) and set(parameters) == set(maml._meta_parameters), (
        f"the adapted parameters must be a dict with the meta-parameters' names {sorted(maml._meta_parameters)}")
    for name, value in maml._meta_parameters.items():
        assert parameters[name].shape == value.shape, (
            f"adapted {name} has shape {tuple(parameters[name].shape)}, the meta-parameter {tuple(value.shape)}")
    assert len(accuracies) == num_inner_steps + 1, (
        f"with {num_inner_steps} inner steps, accuracies must hold {num_inner_steps + 1} values (before each step "
        f"and after the last), got {len(accuracies)}")
    assert all(0.0 <= float(a) <= 1.0 for a in accuracies), (
        f"accuracies must be fractions in [0, 1], got {[round(float(a), 4) for a in accuracies]}")
    if num_inner_steps:
        assert isinstance(gradients, dict) and set(gradients) == set(maml._meta_parameters), (
            "gradients must be a dict of the last inner step's gradient for every parameter name")


def test_one_inner_step_is_a_gradient_descent_step_on_the_support_loss():
    maml = make_maml(num_inner_steps=1, inner_lr=0.3)
    images, labels, _, _ = task(seed=1)
    parameters, accuracies, _ = maml._inner_loop(images, labels, train=False)
    expected = gradient_descent(maml, images, labels, 1, create_graph=False)
    for name in expected:
        assert torch.allclose(parameters[name], expected[name], rtol=1e-5, atol=1e-6), (
            f"adapted {name} differs from theta - inner_lr * d(support loss)/d theta (F.cross_entropy of "
            "self._forward(images, parameters) against the support labels)")
    expected_first = float(util.score(maml._forward(images, maml._meta_parameters), labels))
    assert abs(float(accuracies[0]) - expected_first) < 1e-6, (
        "accuracies[0] must be the support accuracy of the meta-parameters, before any step")


def test_several_inner_steps_use_the_updated_parameters():
    maml = make_maml(num_inner_steps=3, inner_lr=0.2)
    images, labels, _, _ = task(seed=2)
    parameters, accuracies, _ = maml._inner_loop(images, labels, train=False)
    expected = gradient_descent(maml, images, labels, 3, create_graph=False)
    worst = max(relative_difference([parameters[n]], [expected[n]]) for n in expected)
    assert worst < 1e-4, (
        f"after 3 inner steps the parameters differ from 3 steps of gradient descent (relative difference "
        f"{worst:.2e}); when one step is right, check that each step takes the gradient at the CURRENT adapted "
        "parameters")
    final_accuracy = float(util.score(maml._forward(images, expected), labels))
    assert abs(float(accuracies[-1]) - final_accuracy) < 1e-6, "accuracies[-1] must be measured after the last step"


@pytest.mark.parametrize("train", [True, False])
def test_inner_gradients_have_a_graph_only_when_training(train):
    maml = make_maml(num_inner_steps=2)
    images, labels, _, _ = task(seed=3)
    parameters, _, gradients = maml._inner_loop(images, labels, train=train)
    with_graph = {name: gradient.requires_grad for name, gradient in gradients.items()}
    if train:
        assert all(with_graph.values()), (
            f"train=True: the inner gradients must keep their graph (create_graph=True) so the meta-gradient includes "
            f"second-order terms; no graph for {[n for n, g in with_graph.items() if not g]}")
        assert all(p.requires_grad for p in parameters.values()), "adapted parameters must depend on the meta-parameters"
    else:
        assert not any(with_graph.values()), (
            "train=False: evaluation must not build a second-order graph (create_graph=False); graph found for "
            f"{[n for n, g in with_graph.items() if g]}")


def test_inner_loop_never_modifies_the_meta_parameters():
    maml = make_maml(num_inner_steps=2)
    before = {name: value.detach().clone() for name, value in maml._meta_parameters.items()}
    versions = {name: value._version for name, value in maml._meta_parameters.items()}
    images, labels, _, _ = task(seed=4)
    for train in (True, False):
        parameters, _, _ = maml._inner_loop(images, labels, train=train)
        changed = [n for n in before if not torch.equal(maml._meta_parameters[n].detach(), before[n])]
        in_place = [n for n in before if maml._meta_parameters[n]._version != versions[n]]
        assert not changed and not in_place, (
            f"the inner loop changed meta-parameters {changed or in_place} in place: build new tensors "
            "(parameters[name] - lr * gradient) in a new dict, never -=, .data or .copy_")
        assert any(not torch.equal(parameters[n].detach(), before[n]) for n in before), (
            "after 2 inner steps the adapted parameters still equal the meta-parameters")


def test_outer_step_returns_the_mean_query_loss_of_the_adapted_parameters():
    maml = make_maml(num_inner_steps=1)
    tasks = [task(seed=5), task(seed=6)]
    outer_loss, accuracies_support, accuracy_query = maml._outer_step(tasks, train=True)
    expected = []
    for images_support, labels_support, images_query, labels_query in tasks:
        adapted = gradient_descent(maml, images_support, labels_support, 1, create_graph=False)
        expected.append(float(F.cross_entropy(maml._forward(images_query, adapted), labels_query).detach()))
    assert outer_loss.dim() == 0 and outer_loss.requires_grad, (
        f"the outer loss must be a differentiable scalar, got shape {tuple(outer_loss.shape)} with requires_grad="
        f"{outer_loss.requires_grad}")
    assert abs(float(outer_loss.detach()) - sum(expected) / 2) < 1e-5, (
        f"outer loss {float(outer_loss):.6f}, expected {sum(expected) / 2:.6f}: the mean over tasks of the "
        "cross-entropy of the QUERY logits (adapted parameters) against labels_query")
    assert tuple(torch.as_tensor(accuracies_support).shape) == (2,), (
        "accuracies_support must hold num_inner_steps + 1 = 2 support accuracies averaged over the tasks, got shape "
        f"{tuple(torch.as_tensor(accuracies_support).shape)}")
    assert 0.0 <= float(accuracy_query) <= 1.0, f"the query accuracy {float(accuracy_query)} is not in [0, 1]"


def test_outer_loss_depends_on_the_query_labels():
    maml = make_maml(num_inner_steps=1)
    images_support, labels_support, images_query, labels_query = task(seed=7)
    loss = float(maml._outer_step([(images_support, labels_support, images_query, labels_query)],
                                  train=False)[0].detach())
    other = float(maml._outer_step([(images_support, labels_support, images_query, (labels_query + 1) % NUM_WAY)],
                                   train=False)[0].detach())
    assert loss != other, "changing labels_query did not change the outer loss: it must use the query labels"


def test_meta_gradient_is_second_order():
    maml = make_maml(num_inner_steps=1, inner_lr=0.4)
    tasks = [task(seed=8)]
    outer_loss, _, _ = maml._outer_step(tasks, train=True)
    gradient = meta_gradient(maml, outer_loss)
    assert all(g is not None for g in gradient), "the outer loss does not depend on every meta-parameter"
    images_support, labels_support, images_query, labels_query = tasks[0]
    exact = gradient_descent(maml, images_support, labels_support, 1, create_graph=True)
    second_order = meta_gradient(maml, F.cross_entropy(maml._forward(images_query, exact), labels_query))
    first = gradient_descent(maml, images_support, labels_support, 1, create_graph=False)
    first_order = meta_gradient(maml, F.cross_entropy(maml._forward(images_query, first), labels_query))
    assert relative_difference(gradient, second_order) < 1e-4, (
        "the meta-gradient of the outer loss differs from exact second-order MAML"
        + (": it matches the FIRST-order gradient (with train=True the inner gradients must keep their graph, "
           "create_graph=True)" if relative_difference(gradient, first_order) < 1e-4 else
           f" (relative difference {relative_difference(gradient, second_order):.2e}): the outer loss must be the "
           "query loss of parameters adapted by differentiable inner steps"))


def test_learned_inner_learning_rates_receive_gradients():
    maml = make_maml(num_inner_steps=2, learn_inner_lrs=True)
    outer_loss, _, _ = maml._outer_step([task(seed=9), task(seed=10)], train=True)
    outer_loss.backward()
    missing = [n for n, lr in maml._inner_lrs.items() if lr.grad is None or not torch.isfinite(lr.grad)]
    assert not missing, (
        f"learned inner learning rates {missing} got no gradient from outer_loss.backward(): with train=True the "
        "adapted parameters must depend on the tensors self._inner_lrs[name] through differentiable updates")
    assert float(maml._inner_lrs["w4"].grad) != 0.0, "the head's learned inner learning rate got a zero gradient"


# ---------------------------------------------------------------------------------------------- extra credit


@pytest.mark.extra_credit
def test_first_order_meta_gradient_ignores_second_order_terms():
    maml = make_maml(num_inner_steps=1, variant="first_order")
    images_support, labels_support, images_query, labels_query = task(seed=11)
    parameters, _, gradients = maml._inner_loop(images_support, labels_support, train=True)
    assert not any(g.requires_grad for g in gradients.values()), (
        "--first_order: the inner gradients must be constants (no graph) even when training")
    outer_loss, _, _ = maml._outer_step([(images_support, labels_support, images_query, labels_query)], train=True)
    gradient = meta_gradient(maml, outer_loss)
    adapted = {n: v.detach().requires_grad_() for n, v in parameters.items()}
    query_gradient = torch.autograd.grad(F.cross_entropy(maml._forward(images_query, adapted), labels_query),
                                         list(adapted.values()))
    assert relative_difference(gradient, query_gradient) < 1e-4, (
        "--first_order: the meta-gradient must equal the query-loss gradient at the adapted parameters")


@pytest.mark.extra_credit
def test_anil_adapts_only_the_head():
    maml = make_maml(num_inner_steps=2, variant="anil")
    images, labels, _, _ = task(seed=12)
    parameters, accuracies, gradients = maml._inner_loop(images, labels, train=True)
    body = [n for n in maml._meta_parameters if n not in HEAD_PARAMETERS]
    assert all(parameters[n] is maml._meta_parameters[n] for n in body), (
        "--anil: the body's entries of the adapted parameters must be the meta-parameters themselves")
    assert set(gradients) == set(HEAD_PARAMETERS) and len(accuracies) == 3, (
        f"--anil with 2 inner steps: expected gradients for {sorted(HEAD_PARAMETERS)} and 3 accuracies, got "
        f"gradients for {sorted(gradients)} and {len(accuracies)} accuracies")
    expected = gradient_descent(maml, images, labels, 2, create_graph=False, names=HEAD_PARAMETERS)
    for name in HEAD_PARAMETERS:
        assert torch.allclose(parameters[name], expected[name], rtol=1e-5, atol=1e-6), (
            f"--anil: adapted {name} differs from gradient descent on the head with the body fixed")
    outer_loss, _, _ = maml._outer_step([task(seed=12)], train=True)
    body_gradient = meta_gradient(maml, outer_loss)[0]
    assert body_gradient is not None and float(body_gradient.abs().sum()) > 0, (
        "--anil: the meta-gradient must still reach the body (conv0) through the features")


@pytest.mark.extra_credit
def test_reptile_writes_theta_minus_phi_into_grad():
    maml = make_maml(num_inner_steps=2, inner_lr=0.1, variant="reptile")
    tasks = [task(seed=13), task(seed=14)]
    loss, accuracies_support, accuracy_query = maml._reptile_step(tasks)
    expected = {name: torch.zeros_like(value) for name, value in maml._meta_parameters.items()}
    for images_support, labels_support, _, _ in tasks:
        adapted = gradient_descent(maml, images_support, labels_support, 2, create_graph=False)
        for name, value in maml._meta_parameters.items():
            expected[name] += (value - adapted[name]).detach() / len(tasks)
    for name, value in maml._meta_parameters.items():
        assert value.grad is not None and torch.allclose(value.grad, expected[name], rtol=1e-4, atol=1e-7), (
            f"--reptile: {name}.grad must be the mean over tasks of theta - phi (phi: after the inner loop)")
    assert tuple(torch.as_tensor(accuracies_support).shape) == (3,) and 0.0 <= float(accuracy_query) <= 1.0, (
        "--reptile with 2 inner steps: expected 3 support accuracies and a query accuracy in [0, 1], got shape "
        f"{tuple(torch.as_tensor(accuracies_support).shape)} and {float(accuracy_query)}")


@pytest.mark.extra_credit
def test_imaml_inner_loop_solves_the_proximal_problem():
    maml = make_maml(num_inner_steps=2, inner_lr=0.1, variant="imaml", imaml_lambda=3.0)
    images, labels, _, _ = task(seed=15)
    parameters, accuracies, _ = maml._inner_loop(images, labels, train=True)
    theta = {n: v.detach() for n, v in maml._meta_parameters.items()}
    phi = dict(theta)
    for _ in range(2):
        leaves = {n: v.clone().requires_grad_() for n, v in phi.items()}
        gradients = torch.autograd.grad(F.cross_entropy(maml._forward(images, leaves), labels), list(leaves.values()))
        phi = {n: phi[n] - 0.1 * (g + 3.0 * (phi[n] - theta[n])) for n, g in zip(leaves, gradients)}
    for name in phi:
        assert torch.allclose(parameters[name], phi[name], rtol=1e-5, atol=1e-6), (
            f"--imaml: adapted {name} differs from gradient descent on support loss + lambda/2 ||phi - theta||^2")
    assert not any(p.requires_grad for p in parameters.values()), "--imaml: the inner solution must be detached"
    assert len(accuracies) == 3, f"--imaml with 2 inner steps: expected 3 accuracies, got {len(accuracies)}"


@pytest.mark.extra_credit
def test_imaml_one_conjugate_gradient_step():
    maml = make_maml(num_inner_steps=1, variant="imaml", imaml_lambda=2.0, imaml_cg_steps=1)
    images, labels, _, _ = task(seed=16)
    phi = {n: v.detach() + 0.01 for n, v in maml._meta_parameters.items()}
    generator = torch.Generator().manual_seed(0)
    g = {n: torch.randn(v.shape, generator=generator) for n, v in phi.items()}
    solution = maml._implicit_meta_gradient(phi, images, labels, g)
    # One CG step from 0 is the exact line minimiser along g: v = (g.g / g.Ag) g with A = I + H / lambda.
    leaves = {n: v.clone().requires_grad_() for n, v in phi.items()}
    gradients = torch.autograd.grad(F.cross_entropy(maml._forward(images, leaves), labels), list(leaves.values()),
                                    create_graph=True)
    hessian_g = torch.autograd.grad(gradients, list(leaves.values()), grad_outputs=[g[n] for n in leaves])
    g_dot_g = sum(float((g[n] ** 2).sum()) for n in leaves)
    g_dot_a_g = g_dot_g + sum(float((g[n] * hg).sum()) for n, hg in zip(leaves, hessian_g)) / 2.0
    for name in phi:
        expected = g[name] * (g_dot_g / g_dot_a_g)
        assert torch.allclose(solution[name], expected, rtol=1e-4, atol=1e-6), (
            f"--imaml with 1 CG step: {name} differs from (g.g / g.Ag) g, A = I + H / lambda, H the Hessian of the "
            "support loss at phi")


# ---------------------------------------------------------------------------------------------- the script


@pytest.mark.slow
def test_training_script_trains_checkpoints_and_tests(store, tmp_path):
    log_dir = tmp_path / "maml"
    common = ["--device", "cpu", "--num_way", "3", "--num_support", "1", "--num_query", "2", "--batch_size", "2",
              "--num_hidden_channels", "4", "--log_dir", str(log_dir)]
    maml_module.main(maml_module.parse_arguments(common + ["--num_train_iterations", "4", "--val_interval", "2",
                                                           "--num_val_tasks", "2", "--log_interval", "2",
                                                           "--save_interval", "2", "--learn_inner_lrs"]))
    assert (log_dir / "state4.pt").is_file(), "training must write a checkpoint state<step>.pt into --log_dir"
    maml_module.main(maml_module.parse_arguments(common + ["--test", "--num_test_tasks", "5"]))
    saved = json.loads((log_dir / "results.json").read_text())
    assert saved["test"]["num_tasks"] == 5 and 0.0 <= saved["test"]["accuracy"] <= 1.0, (
        f"results.json: test on {saved['test']['num_tasks']} tasks with accuracy {saved['test']['accuracy']}, "
        "expected 5 tasks and an accuracy in [0, 1]")
    settings = saved["train"]["settings"]
    assert settings["learn_inner_lrs"] is True and "batch_norm" in settings, (
        f"results.json train settings {sorted(settings)} lack batch_norm or learn_inner_lrs=True")


def test_provided_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        maml_module.parse_arguments(["--help"])
    text = capsys.readouterr().out
    for flag in ("--num_way", "--num_support", "--num_query", "--batch_size", "--num_train_iterations",
                 "--inner_lr", "--num_inner_steps", "--learn_inner_lrs", "--outer_lr", "--test", "--checkpoint_step",
                 "--log_dir", "--device", "--seed", "--first_order", "--anil", "--reptile", "--imaml"):
        assert flag in text, f"maml.py --help does not list {flag}"
