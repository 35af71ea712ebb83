"""MAML._inner_loop and MAML._outer_step, compared with the reference on identical meta-parameters and tasks.

Every configuration, weight and task is built here (maml_setup.py) and sent to both sides; inner learning rates
differ per parameter tensor. One idea per test, on inputs where the other ideas' mistakes do not change its verdict:
- the *_matches_reference tests and test_outer_step_meta_gradient_is_second_order compare everything;
- the property tests of _inner_loop (accuracy list, numbers, second order, no graph at evaluation, no side effects,
  learned rates) first require that the inner loop does the work (assert_inner_loop_adapts: one step is exactly a
  gradient step of the support loss, more steps go farther), then check their property, never an exact match;
- the tests of _outer_step's own bookkeeping (test_outer_step_matches_reference, test_outer_loss_uses_query_labels)
  pass when _outer_step is right with the submission's own _inner_loop, or with a stand-in inner loop that returns
  adaptations drawn here (maml_setup.given_adaptation): a mistake of _inner_loop is graded by the inner-loop tests.

`direction_derivative` is d<adapted parameters, v>/d(meta-parameters) for a random v drawn in the probe from a seed:
exactly v when the inner loop is first order (each step's gradient a constant), v plus Hessian terms when it is
second order. It tells whether the inner loop builds the graph the meta-gradient needs without relying on what the
student returns as `gradients`. `direction_lr_derivative` is the same w.r.t. each learned inner learning rate.

PYTEST_DONT_REWRITE: the feedback shows each assertion's own message, without pytest's expression dump.
"""

import pytest
import torch

from hw2_checks import FLOAT32, GRADIENT, assert_accuracy_close, assert_close, assert_number, \
    assert_tensor_dicts_close, flat, relative_error, remembered, self_check, support_accuracy_curve
from maml_setup import CONFIG, SAME_SIZE_TASKS, TASKS, config, first_task, given_adaptation, meta_state, tasks

BUG_MARGIN = 1e-2  # what a bug changes, relative; asserted on the reference so that no test can become vacuous
MOVES = 1e-3  # the least relative distance between adapted and meta-parameters that counts as "adapted"
SUPPORT_ROWS = TASKS["num_way"] * TASKS["num_support"]
SIZES = (f"{TASKS['num_way']}-way, {TASKS['num_support']} support and {TASKS['num_query']} query examples per class, "
         f"{CONFIG['num_inner_steps']} inner steps")


def inner_loop(side, batch, train, parameters=None, inner_lrs=None, direction_seed=None, calls=1, **overrides):
    images, labels, _, _ = first_task(batch)
    return side.run("maml_inner_loop", config=config(**overrides), images=images, labels=labels, train=train,
                    parameters=parameters, inner_lrs=inner_lrs, direction_seed=direction_seed, calls=calls)


def assert_untouched(result, where):
    changed = sorted(name for name, same in result["meta_parameters_unchanged"].items() if not same)
    assert not changed, (
        f"{where} changed the meta-parameters {changed}: build new tensors (parameters[name] - lr * gradient) "
        "instead of updating in place (no -=, .sub_(), .data, or assignment into the meta-parameter tensors)")
    assert not result["meta_gradients_left"], (
        f"{where} left gradients in .grad of the meta-parameters {result['meta_gradients_left']}: compute the "
        "inner-loop gradients with torch.autograd.grad (which returns them), not .backward() (which accumulates them "
        "into .grad, so that the next call and the meta-gradient see them too)")


def distance_moved(adapted: dict, parameters: dict) -> float:
    return relative_error(flat(adapted), flat(parameters))


def assert_moves(got, parameters, where):
    """The adapted parameters are new values of every meta-parameter, away from them, and the gradients non-zero."""
    assert isinstance(got["adapted"], dict) and set(got["adapted"]) == set(parameters), (
        f"{where}: the adapted parameters must have the meta-parameters' names {sorted(parameters)}, got "
        f"{sorted(got['adapted'])}")
    moved = distance_moved(got["adapted"], parameters)
    assert moved > MOVES, (
        f"{where}: the adapted parameters are the meta-parameters (relative distance {moved:.1e}): each inner step "
        "must update the parameters, parameters[name] - self._inner_lrs[name] * gradient[name], and the loop must "
        "carry the updated dict on to the next step and return it")
    gradients = got["gradients"]
    norm = float(flat(gradients).norm()) if gradients else 0.0
    assert set(gradients) == set(parameters) and norm > 0 and torch.isfinite(flat(gradients)).all(), (
        f"{where}: the returned gradients must be the last step's support-loss gradients of every parameter "
        f"(non-zero and finite), got {sorted(gradients)} with norm {norm:.3g}")
    return moved


def assert_one_step_is_a_gradient_step(got, reference, batch, parameters, inner_lrs, where):
    """One inner step from the meta-parameters is the update the algorithm defines: the returned gradients are those
    of the support loss there (computed by the reference's network) and the adapted parameters are the
    meta-parameters minus the inner learning rates times them."""
    images, labels, _, _ = first_task(batch)
    want = reference.run("maml_support_gradient", config=config(), images=images, labels=labels,
                         parameters=parameters)["gradients"]
    assert_tensor_dicts_close(got["gradients"], want, GRADIENT,
                              f"{where}: the gradients returned after one inner step, vs those of the support loss "
                              "F.cross_entropy(self._forward(images, parameters), labels) at the meta-parameters")
    stepped = {name: value - inner_lrs[name] * want[name] for name, value in parameters.items()}
    assert_tensor_dicts_close(got["adapted"], stepped, FLOAT32,
                              f"{where}: the parameters after one inner step, vs parameters[name] - "
                              "self._inner_lrs[name] * gradient[name]")


def assert_inner_loop_adapts(student, reference, batch, seed, train):
    """What the property tests require first: 1 inner step is a gradient step of the support loss
    (`assert_one_step_is_a_gradient_step`), 3 steps move the parameters farther, and the returned gradients are
    non-zero (the reference does all of it on these inputs: meta_state(seed), the first task of `batch`). Without
    it an inner loop that returns its inputs, or moves them without the loss, would pass them."""
    parameters, inner_lrs = meta_state(reference, seed=seed)
    runs = {steps: inner_loop(student, batch, train, parameters, inner_lrs, num_inner_steps=steps) for steps in (1, 3)}
    got = {steps: assert_moves(run, parameters, f"train={train}, num_inner_steps={steps}")
           for steps, run in runs.items()}  # first: a submission that fails here never starts a reference worker
    want = remembered(("inner loop adapts", seed, train), lambda: {
        steps: assert_moves(inner_loop(reference, batch, train, parameters, inner_lrs, num_inner_steps=steps),
                            parameters, f"reference, num_inner_steps={steps}") for steps in (1, 3)})
    self_check(want[3] > 1.1 * want[1] > 10 * MOVES,
               f"the reference's inner loop adapts farther with more steps: {want}")
    assert_one_step_is_a_gradient_step(runs[1], reference, batch, parameters, inner_lrs,
                                       f"train={train} (this test checks a working inner loop only; see "
                                       "test_inner_loop_matches_reference)")
    assert got[3] > got[1], (
        f"train={train}: after 3 inner steps the adapted parameters are no farther from the meta-parameters than "
        f"after 1 step (relative distances {got[3]:.3g} and {got[1]:.3g}): every step must start from the previous "
        "step's parameters")


def support_accuracy(reference, parameters, images, labels) -> float:
    """The support accuracy of `parameters`, with the reference's network."""
    logits = reference.run("maml_forward", config=config(), images=images, parameters=parameters)["logits"]
    return float((logits.argmax(dim=-1) == labels).double().mean())


@pytest.mark.points(6)
def test_inner_loop_matches_reference(student, reference):
    """_inner_loop: adapted parameters, support accuracies and last-step gradients equal the reference's"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=0)
    for train in (False, True):
        got = inner_loop(student, batch, train, parameters, inner_lrs)
        want = inner_loop(reference, batch, train, parameters, inner_lrs)
        where = f"train={train} ({SIZES})"
        assert_tensor_dicts_close(got["adapted"], want["adapted"], FLOAT32, f"{where}: adapted parameters")
        assert_tensor_dicts_close(got["gradients"], want["gradients"], GRADIENT,
                                  f"{where}: last inner-step gradients")
        assert len(got["accuracies"]) == len(want["accuracies"]), (
            f"{where}: {len(got['accuracies'])} support accuracies, expected {len(want['accuracies'])} "
            "(num_inner_steps + 1)")
        # The values, whatever their kind (a tensor of per-example hits counts as its mean: the kind is
        # test_inner_loop_accuracies_are_numbers's to grade).
        for step, (mine, correct) in enumerate(zip(got["accuracy_values"], want["accuracy_values"])):
            assert_accuracy_close(mine, correct, SUPPORT_ROWS, f"{where}: support accuracy {step}")


@pytest.mark.points(3)
def test_inner_loop_accuracy_list_has_one_entry_per_step_plus_final(student, reference):
    """_inner_loop returns num_inner_steps + 1 support accuracies: before each step and after the last one"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=6)
    assert_inner_loop_adapts(student, reference, batch, seed=6, train=False)
    # accuracies[0] must be the accuracy BEFORE the first step: here one step changes it by more than a tie
    one_step = remembered(("one-step accuracies", 6), lambda: inner_loop(reference, batch, False, parameters, inner_lrs,
                                                                           num_inner_steps=1)["accuracy_values"])
    self_check(abs(one_step[1] - one_step[0]) > 2 / SUPPORT_ROWS,
               f"one inner step changes the reference's support accuracy by more than a tie: {one_step}")
    images, labels, _, _ = first_task(batch)
    before = support_accuracy(reference, parameters, images, labels)
    for num_inner_steps in (0, 1, 3):
        got = inner_loop(student, batch, False, parameters, inner_lrs, num_inner_steps=num_inner_steps)
        where = f"with num_inner_steps={num_inner_steps}"
        values = got["accuracy_values"]
        assert len(values) == num_inner_steps + 1, (
            f"{where}: {len(values)} accuracies, expected {num_inner_steps + 1} (one before each step and one after "
            "the last step)")
        assert_accuracy_close(values[0], before, SUPPORT_ROWS,
                              f"{where}: accuracies[0], the support accuracy of the meta-parameters before any step")
        after = support_accuracy(reference, got["adapted"], images, labels)
        assert_accuracy_close(values[-1], after, SUPPORT_ROWS,
                              f"{where}: accuracies[-1], the support accuracy of the adapted parameters returned")


@pytest.mark.points(2)
def test_inner_loop_accuracies_are_numbers(student, reference):
    """Support accuracies are numbers (Python floats or 0-dim tensors without a graph), not tensors of values"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=2)
    assert_inner_loop_adapts(student, reference, batch, seed=2, train=False)
    images, labels, _, _ = first_task(batch)
    before = support_accuracy(reference, parameters, images, labels)
    for train in (False, True):
        got = inner_loop(student, batch, train, parameters, inner_lrs)
        bad = [kind for kind in got["accuracy_kinds"] if kind not in ("float", "int", "tensor[]")]
        assert not bad, (
            f"train={train}: the accuracies list holds {bad}; each entry must be one number, the fraction of support "
            "examples classified correctly (util.score returns a 0-dim tensor, or use a float)")
        values = got["accuracies"]
        assert values and all(value is not None and 0 <= value <= 1 for value in values), (
            f"train={train}: accuracies must be fractions in [0, 1], got {values}")
        # Numbers that are support accuracies: the first or the last one is (which of them is right is
        # test_inner_loop_accuracy_list_has_one_entry_per_step_plus_final's to grade).
        after = support_accuracy(reference, got["adapted"], images, labels)
        slack = 1.0 / SUPPORT_ROWS + 1e-6
        assert abs(values[0] - before) <= slack or abs(values[-1] - after) <= slack, (
            f"train={train}: the accuracies {[round(value, 4) for value in values]} are not the support accuracies "
            f"along the inner loop: the meta-parameters' support accuracy is {before:.4f} and that of the adapted "
            f"parameters returned {after:.4f}")


@pytest.mark.points(5)
def test_inner_loop_is_second_order_when_training(student, reference):
    """With train=True the adapted parameters are differentiable through the inner gradients (create_graph=True)"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=3)
    assert_inner_loop_adapts(student, reference, batch, seed=3, train=True)
    mine = inner_loop(student, batch, True, parameters, inner_lrs, direction_seed=3)
    assert_moves(mine, parameters, "train=True")
    got, direction = mine["direction_derivative"], mine["direction"]
    assert all(mine["meta_parameters_unchanged"].values()), (
        "train=True: the inner loop updates the meta-parameters in place (see "
        "test_inner_loop_leaves_meta_parameters_untouched), so the adapted parameters are not differentiable functions "
        "of them through the inner-loop gradients")
    missing = sorted(name for name, value in got.items() if value is None)
    assert not missing, (
        f"train=True: the adapted parameters do not depend on the meta-parameters {missing}; start from "
        "self._meta_parameters and keep the graph")
    reference_result = inner_loop(reference, batch, True, parameters, inner_lrs, direction_seed=3)
    want = reference_result["direction_derivative"]
    self_check(relative_error(flat(want), flat(direction)) > BUG_MARGIN,
               "the reference's second-order terms are visible")
    first_order = relative_error(flat(got), flat(direction)) <= FLOAT32
    assert not first_order, (
        "train=True: the inner loop is first order (its gradients are treated as constants); compute them with "
        "torch.autograd.grad(..., create_graph=True) while training so the meta-gradient includes second-order terms")
    # The exact second-order terms, where the adaptation itself is the reference's (a different adaptation is
    # test_inner_loop_matches_reference's to grade, and has other second-order terms).
    if relative_error(flat(mine["adapted"]), flat(reference_result["adapted"])) <= FLOAT32:
        assert_tensor_dicts_close(got, want, GRADIENT, "train=True: derivative of the adapted parameters")


@pytest.mark.points(3)
def test_inner_loop_builds_no_graph_at_evaluation(student, reference):
    """With train=False the inner loop builds no second-order graph (create_graph=False), also within _outer_step"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=4)
    assert_inner_loop_adapts(student, reference, batch, seed=4, train=False)
    got = inner_loop(student, batch, False, parameters, inner_lrs, direction_seed=4)
    # S = Q: a query loss taken with the support labels (test_outer_loss_uses_query_labels) does not crash here
    outer = student.run("maml_outer_step", config=config(), tasks=tasks(reference, **SAME_SIZE_TASKS), train=False,
                        parameters=parameters, inner_lrs=inner_lrs, direction_seed=4)
    # Within _outer_step(train=False), through the adaptation its _inner_loop calls return (none recorded: it adapts
    # without calling _inner_loop, or skips adapting, which test_outer_step_matches_reference grades).
    checks = [("_inner_loop(train=False)", got["gradients_require_grad"], got)]
    if outer.get("first_adapted") is not None:
        checks.append(("_outer_step(train=False), in the adaptation of its first task",
                       outer["first_gradients_require_grad"], outer))
    for where, require_grad, derivatives in checks:
        with_graph = sorted(name for name, flag in require_grad.items() if flag)
        assert not with_graph, (
            f"{where}: the inner-loop gradients of {with_graph} carry a graph; use create_graph=False when not "
            "training (the graph is only needed to differentiate the outer loss), and pass _outer_step's `train` on "
            "to _inner_loop")
        for name, value in derivatives["direction_derivative"].items():
            if value is not None:  # None: the student adapted detached copies, which is fine at evaluation
                assert_close(value, derivatives["direction"][name], FLOAT32,
                             f"{where}: derivative of the adapted {name} (second-order terms must be absent)")


@pytest.mark.points(4)
def test_inner_loop_leaves_meta_parameters_untouched(student, reference):
    """The inner loop has no side effects: meta-parameters and their .grad unchanged, a second call gives the same"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=5)
    assert_inner_loop_adapts(student, reference, batch, seed=5, train=True)
    for train in (False, True):
        got = inner_loop(student, batch, train, parameters, inner_lrs, calls=2)
        assert_untouched(got, f"_inner_loop(train={train})")
        assert_tensor_dicts_close(got["later_adapted"][0], got["adapted"], FLOAT32,
                                  f"train={train}: adapted parameters of a second _inner_loop call on the same object "
                                  "(vs the first call)")
    outer = student.run("maml_outer_step", config=config(), tasks=tasks(reference, **SAME_SIZE_TASKS), train=True,
                        parameters=parameters, inner_lrs=inner_lrs)  # S = Q, as in the test above
    assert_untouched(outer, "_outer_step(train=True)")


def outer_step_problem(student, reference, inputs, where) -> str | None:
    """What differs between the student's _outer_step and the reference's on `inputs`, or None. The loss may be
    taken with the support labels (test_outer_loss_uses_query_labels grades that)."""
    got = None
    try:
        got = student.run("maml_outer_step", calls=2, **inputs)
        compare_outer_step(got, reference, inputs, where)
    except AssertionError as error:  # StudentError included: the submission failed on these inputs
        count = inputs["tasks"]["labels_support"].shape[0]
        calls = None if got is None else len(got["inner_loop_train_flags"])
        skipped = calls is not None and calls < count and inputs.get("given_adaptation") is not None
        return str(error) + (f" (_outer_step called _inner_loop {calls} times for {count} tasks: adapt to every "
                             "task's support set, in training and at evaluation)" if skipped else "")
    return None


def compare_outer_step(got, reference, inputs, where):
    want = reference.run("maml_outer_step", **inputs)
    batch = inputs["tasks"]
    loss = assert_number(got["loss"], f"{where}: outer loss")
    if relative_error(loss, want["loss"]) > FLOAT32:
        swapped = reference.run("maml_outer_step", **{**inputs, "tasks": {**batch,
                                                                          "labels_query": batch["labels_support"]}})
        if relative_error(loss, swapped["loss"]) > FLOAT32:
            assert_close(loss, want["loss"], FLOAT32, f"{where}: outer (query) loss")
    steps = inputs["config"]["num_inner_steps"]
    mine = support_accuracy_curve(got["accuracies_support"], steps, where)
    correct = support_accuracy_curve(want["accuracies_support"], steps, "reference")
    for step, (value, right) in enumerate(zip(mine, correct)):
        assert_accuracy_close(value, right, batch["labels_support"].numel(),
                              f"{where}: support accuracy after {step} steps (mean over the tasks)")
    assert_accuracy_close(got["accuracy_query"], want["accuracy_query"], batch["labels_query"].numel(),
                          f"{where}: query accuracy (mean over the tasks)")
    if inputs["train"]:
        assert got["loss_requires_grad"], f"{where}: the outer loss must be differentiable w.r.t. the meta-parameters"
    assert_close(got["later_calls"][0]["loss"], loss, FLOAT32,
                 f"{where}: loss of a second _outer_step call on the same object (vs the first call)")


@pytest.mark.points(5)
def test_outer_step_matches_reference(student, reference):
    """_outer_step: outer loss, support accuracies per inner step and query accuracy, averaged over the tasks"""
    batch = tasks(reference, **SAME_SIZE_TASKS)
    parameters, inner_lrs = meta_state(reference, seed=6)
    given = given_adaptation(batch, parameters, seed=6)
    for train in (False, True):
        inputs = dict(config=config(), tasks=batch, train=train, parameters=parameters, inner_lrs=inner_lrs)
        where = f"train={train}"
        own = outer_step_problem(student, reference, inputs, where)
        if own is None:
            continue
        alone = outer_step_problem(student, reference, {**inputs, "given_adaptation": given},
                                   f"{where}, with adaptations given to _outer_step in place of _inner_loop's")
        assert alone is None, alone if own == alone else f"{alone}\n(with your own _inner_loop: {own})"
        student.run("say", text=f"{where}: _outer_step is right when given the adaptations; with your _inner_loop it "
                                f"differs ({own}): see the _inner_loop tests")


@pytest.mark.points(8)
def test_outer_step_meta_gradient_is_second_order(student, reference):
    """The meta-gradient of _outer_step equals the reference's second-order MAML gradient (not the first-order one)"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=7)
    inputs = dict(parameters=parameters, inner_lrs=inner_lrs, tasks=batch)
    result = student.run("maml_meta_gradient", config=config(), **inputs)
    got = result["meta_gradients"]
    want_result = reference.run("maml_meta_gradient", config=config(), **inputs)
    want = want_result["meta_gradients"]
    first_order = reference.run("maml_meta_gradient", config=config(variant="first_order"),
                                **inputs)["meta_gradients"]
    margin = relative_error(flat(first_order), flat(want))
    self_check(margin > BUG_MARGIN, f"first- and second-order meta-gradients differ by only {margin:.1e}")
    missing = sorted(name for name, value in got.items() if value is None)
    assert not missing, f"the outer loss does not depend on the meta-parameters {missing}"
    assert relative_error(flat(got), flat(first_order)) > GRADIENT, (
        "the meta-gradient is the FIRST-order one: the inner loop must use create_graph=True while training")
    loss_error = relative_error(assert_number(result["loss"], "outer loss"), want_result["loss"])
    hint = "" if loss_error <= FLOAT32 else (f" (the outer loss itself differs from the reference's by "
                                             f"{loss_error:.1e}: see the _inner_loop and _outer_step tests)")
    assert_tensor_dicts_close(got, want, GRADIENT, f"meta-gradient ({TASKS['num_tasks']} tasks, {SIZES}){hint}")


@pytest.mark.points(4)
def test_outer_loss_uses_query_labels(student, reference):
    """The outer loss is the cross-entropy of the adapted model's query logits against the QUERY labels"""
    batch = tasks(reference, **SAME_SIZE_TASKS)  # equal sizes: the wrong labels would not even fail a shape
    parameters, inner_lrs = meta_state(reference, seed=8)
    swapped_batch = {**batch, "labels_query": batch["labels_support"]}
    message = None
    for given in (None, given_adaptation(batch, parameters, seed=8)):  # its own _inner_loop, then a stand-in's
        inputs = dict(config=config(), parameters=parameters, inner_lrs=inner_lrs, train=True, given_adaptation=given)
        try:
            got = student.run("maml_outer_step", tasks=batch, **inputs)
        except AssertionError as error:  # StudentError: the submission failed on these inputs
            message = str(error)
            continue
        want = reference.run("maml_outer_step", tasks=batch, **inputs)
        swapped = reference.run("maml_outer_step", tasks=swapped_batch, **inputs)
        self_check(relative_error(swapped["loss"], want["loss"]) > BUG_MARGIN,
                   "query labels change the reference's outer loss")
        loss = assert_number(got["loss"], "outer loss")
        if relative_error(loss, want["loss"]) <= FLOAT32:
            return
        if relative_error(loss, swapped["loss"]) <= FLOAT32:
            raise AssertionError("the outer loss is the cross-entropy of the query logits against the SUPPORT labels: "
                                 "use labels_query")
        message = (f"outer loss (cross-entropy of the query logits and labels_query): differs from the correct value "
                   f"by {relative_error(loss, want['loss']):.2e} (relative); got {loss:.6g}, expected "
                   f"{want['loss']:.6g}" + ("" if given is None else
                                            ", also with adaptations given to _outer_step in place of _inner_loop's"))
    raise AssertionError(message)


@pytest.mark.points(5)
def test_learned_inner_lrs_get_gradients(student, reference):
    """With learn_inner_lrs the inner learning rates are used as tensors: the adapted parameters depend on them"""
    batch = tasks(reference)
    parameters, inner_lrs = meta_state(reference, seed=9, learn_inner_lrs=True)
    # One step: adapted = theta - lr * g, so d<adapted, v>/d lr[name] = -<g[name], v[name]> with the returned g,
    # whatever the loss (its value is the other tests' to grade).
    one = inner_loop(student, batch, True, parameters, inner_lrs, direction_seed=9, learn_inner_lrs=True,
                     num_inner_steps=1)
    assert_moves(one, parameters, "learn_inner_lrs, 1 inner step")
    assert_one_step_is_a_gradient_step(one, reference, batch, parameters, inner_lrs, "learn_inner_lrs")
    assert all(one["meta_parameters_unchanged"].values()), (
        "learn_inner_lrs: the inner loop updates the meta-parameters in place (see "
        "test_inner_loop_leaves_meta_parameters_untouched), so the adapted parameters are not differentiable functions "
        "of the inner learning rates")
    missing = sorted(name for name, value in one["direction_lr_derivative"].items() if value is None)
    assert not missing, (
        f"the adapted parameters do not depend on the inner learning rates of {missing}: use the tensors "
        "self._inner_lrs[name] in the update (not a float copy, .item(), .detach() or the constant inner_lr), so "
        "that the meta-gradient reaches them")
    expected = {name: -(one["gradients"][name].double() * one["direction"][name].double()).sum()
                for name in one["direction_lr_derivative"]}
    assert_tensor_dicts_close(one["direction_lr_derivative"], expected, GRADIENT,
                              "learn_inner_lrs, 1 inner step: derivative of the adapted parameters w.r.t. the inner "
                              "learning rates (-<gradient, v> per tensor)")
    got = inner_loop(student, batch, True, parameters, inner_lrs, direction_seed=9, learn_inner_lrs=True)
    missing = sorted(name for name, value in got["direction_lr_derivative"].items() if value is None)
    assert not missing, (
        f"learn_inner_lrs, {CONFIG['num_inner_steps']} inner steps: the adapted parameters do not depend on the inner "
        f"learning rates of {missing}: use self._inner_lrs[name] in every step")
    want = inner_loop(reference, batch, True, parameters, inner_lrs, direction_seed=9, learn_inner_lrs=True)
    # Over several steps the rates' derivative also runs through the second-order terms: compared where the
    # adaptation and its derivative w.r.t. the meta-parameters are the reference's (else the inner-loop tests grade it).
    same_graph = (relative_error(flat(got["adapted"]), flat(want["adapted"])) <= FLOAT32
                  and all(value is not None for value in got["direction_derivative"].values())
                  and relative_error(flat(got["direction_derivative"]), flat(want["direction_derivative"])) <= GRADIENT)
    if same_graph:
        assert_tensor_dicts_close(got["direction_lr_derivative"], want["direction_lr_derivative"], GRADIENT,
                                  f"learn_inner_lrs, {CONFIG['num_inner_steps']} inner steps: derivative of the "
                                  "adapted parameters w.r.t. the inner learning rates")
