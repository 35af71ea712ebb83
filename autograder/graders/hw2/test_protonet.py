"""ProtoNet._step, compared with the reference on identical weights and tasks, and with exact values computed here.

One idea per test, on inputs where the other ideas' mistakes do not change its verdict, so that one mistake costs
its own test (and the end-to-end comparison with the reference), not every test:
- test_protonet_step_matches_reference: everything at once, on real training-split episodes whose sizes all differ
  (T tasks, N way, S support and Q query examples per class), so that one size used for another fails here.
- test_protonet_squared_distance: the distance. Class-ordered support with N = S, where every way of grouping or
  counting the support examples gives the right prototypes.
- test_protonet_prototypes_use_labels_not_order: the prototypes, on a shuffled support set with N != S; plain or
  squared distances, of either sign, are accepted.
- test_protonet_gradient_reaches_support_embeddings: the gradient, on inputs like the distance test's; any of those
  distances is accepted.
- test_protonet_invariant_to_support_order: order and state, as properties of the submission, once its loss is a
  ProtoNet's on identity-network tasks where the distance and prototype mistakes above are accepted.

The "identity network" tests replace the embedding network by a flattening, which makes every embedding known to the
harness: the expected losses and gradients are computed here in float64, independently of the reference (whose own
grading run checks that it agrees), and need no reference worker.

PYTEST_DONT_REWRITE: the feedback shows each assertion's own message, without pytest's expression dump.
"""

import pytest
import torch
import torch.nn.functional as F

from hw2_checks import FLOAT32, GRADIENT, assert_accuracy_close, assert_close, assert_number, \
    assert_tensor_dicts_close, first_match, random_tasks, reference_inputs, relative_error, self_check

# Real episodes for the reference comparison: every size differs from the others (and from the embedding size 64).
TASKS = dict(split="train", seed=330, num_tasks=2, num_way=4, num_support=3, num_query=5)
EXAMPLES_SUPPORT = TASKS["num_tasks"] * TASKS["num_way"] * TASKS["num_support"]
EXAMPLES_QUERY = TASKS["num_tasks"] * TASKS["num_way"] * TASKS["num_query"]
# Where the prototypes are not the idea under test: N = S and the support set in class order, so prototypes grouped
# by position (consecutive rows) or divided by N instead of S are still the right ones.
ONE_PROTOTYPE_RULE = dict(num_tasks=2, num_way=3, num_support=3, num_query=4, sorted_support=True)
NEUTRAL_MISTAKES = ("class_major", "divided_by_way")  # the prototype mistakes that ONE_PROTOTYPE_RULE neutralises
# The prototypes test: shuffled support, N != S (and T, Q different again).
PROTOTYPE_TASKS = dict(num_tasks=2, num_way=4, num_support=3, num_query=5)
BUG_MARGIN = 1e-2  # a wrong formula must move the loss by at least this (relative) in the configurations used
DEPENDS = 1e-3  # the loss must move by at least this (relative) when the support images or query labels change
# The logits ProtoNet tests other than the distance test accept: sign * distance ** (2 if squared else 1)
DISTANCES = {"squared": (True, -1), "plain": (False, -1), "squared, positive": (True, 1), "plain, positive": (False, 1)}
DISTANCE_MISTAKES = {
    "plain": "the loss is the one of plain Euclidean distances; the logits must be the negative SQUARED distances "
             "-||e - p||^2 (torch.cdist and .norm() give the plain distance: square it)",
    "squared, positive": "the logits are +||e - p||^2: they must be the NEGATIVE squared distances -||e - p||^2 (the "
                         "nearest prototype gets the largest logit)",
    "plain, positive": "the logits are the plain distances +||e - p||: they must be the NEGATIVE SQUARED distances "
                       "-||e - p||^2",
}
PROTOTYPE_MISTAKES = {
    "class_major": "the prototypes average consecutive support rows (a reshape to [N, S, D]), but the support set is "
                   "shuffled: select each class's examples by their LABEL (e.g. F.one_hot(labels_support))",
    "interleaved": "the prototypes average every N-th support row (a reshape to [S, N, D]), but the support set is "
                   "shuffled: select each class's examples by their LABEL (e.g. F.one_hot(labels_support))",
    "divided_by_way": "the prototypes are each class's SUM of embeddings divided by the number of classes N; divide "
                      "by the number of examples of the class (S) to get their mean",
}


def sample(reference, **overrides):
    return reference_inputs(reference, "sample_tasks", **{**TASKS, **overrides})


def network_state(reference, seed=0):
    return reference_inputs(reference, "protonet_parameters", seed=seed)["state"]


def identity_tasks(seed, num_tasks=2, num_way=4, num_support=3, num_query=5, sorted_support=False):
    """Tasks whose images ARE the embeddings (identity network): class centres plus noise; the query set shuffled,
    the support set shuffled or (sorted_support) in class order."""
    generator = torch.Generator().manual_seed(seed)
    dim = 28 * 28
    tasks = {key: [] for key in ("images_support", "labels_support", "images_query", "labels_query")}
    for _ in range(num_tasks):
        centres = 0.04 * torch.randn(num_way, dim, generator=generator)
        for kind, count in (("support", num_support), ("query", num_query)):
            labels = torch.arange(num_way).repeat(count)[torch.randperm(num_way * count, generator=generator)]
            if kind == "support" and sorted_support:
                labels = labels.sort().values
            images = centres[labels] + 0.05 * torch.randn(num_way * count, dim, generator=generator)
            tasks[f"images_{kind}"].append(images.reshape(-1, 1, 28, 28))
            tasks[f"labels_{kind}"].append(labels)
    return {key: torch.stack(values) for key, values in tasks.items()}


def exact_protonet(tasks, squared=True, sign=-1, prototypes="label"):
    """Loss and support-embedding gradients of ProtoNet with the identity network, in float64: the logits are
    sign * distance ** (2 if squared else 1) (right: squared, sign -1).

    prototypes: "label" (the class means, right), or what a known mistake computes: "class_major" / "interleaved"
    (consecutive / every N-th support rows, by position), "divided_by_way" (class sums divided by N).
    """
    losses, supports = [], []
    for t in range(tasks["images_support"].shape[0]):
        support = tasks["images_support"][t].flatten(1).double().requires_grad_()
        query = tasks["images_query"][t].flatten(1).double()
        labels_support, labels_query = tasks["labels_support"][t], tasks["labels_query"][t]
        num_way = int(labels_support.max()) + 1
        membership = F.one_hot(labels_support, num_way).double()
        if prototypes == "class_major":
            centres = support.reshape(num_way, -1, support.shape[1]).mean(dim=1)
        elif prototypes == "interleaved":
            centres = support.reshape(-1, num_way, support.shape[1]).mean(dim=0)
        elif prototypes == "divided_by_way":
            centres = membership.T @ support / num_way
        else:
            centres = membership.T @ support / membership.sum(dim=0, keepdim=True).T
        distances = (query[:, None] - centres[None]).square().sum(-1)
        losses.append(F.cross_entropy(sign * (distances if squared else distances.sqrt()), labels_query))
        supports.append(support)
    loss = torch.stack(losses).mean()
    gradients = torch.autograd.grad(loss, supports)
    return {"loss": float(loss.detach()), "support_embedding_gradients": list(gradients)}


def exact_candidates(tasks, prototypes="label") -> dict:
    """The exact values of ProtoNet with each logit rule of DISTANCES ("squared" is right)."""
    return {name: exact_protonet(tasks, squared, sign, prototypes) for name, (squared, sign) in DISTANCES.items()}


def assert_loss_is_protonet(got, candidates, what):
    """The loss must be ProtoNet's with one of the candidate distances; returns which."""
    loss = assert_number(got["loss"], f"{what}: loss")
    matched = first_match(loss, {name: value["loss"] for name, value in candidates.items()}, FLOAT32)
    assert matched is not None, (
        f"{what}: the loss {loss:.6g} is not ProtoNet's (the query cross-entropy of negative squared distances to "
        f"the class means: {candidates['squared']['loss']:.6g}); the other ProtoNet tests say which part differs")
    return matched


@pytest.mark.points(8)
def test_protonet_step_matches_reference(student, reference):
    """ProtoNet._step: loss, accuracies and parameter gradients equal the reference's on the same weights and tasks"""
    tasks, state = sample(reference), network_state(reference)
    got = student.run("protonet_step", tasks=tasks, state=state, backward=True)
    want = reference.run("protonet_step", tasks=tasks, state=state, backward=True)
    sizes = (f"({TASKS['num_tasks']} tasks, {TASKS['num_way']}-way, {TASKS['num_support']} support and "
             f"{TASKS['num_query']} query examples per class)")
    assert got["loss_requires_grad"], (
        "the loss returned by _step does not require grad: it must stay differentiable w.r.t. the network")
    assert_close(got["loss"], want["loss"], FLOAT32, f"loss {sizes}")
    assert_accuracy_close(got["accuracy_support"], want["accuracy_support"], EXAMPLES_SUPPORT,
                          f"support accuracy {sizes}")
    assert_accuracy_close(got["accuracy_query"], want["accuracy_query"], EXAMPLES_QUERY, f"query accuracy {sizes}")
    assert_tensor_dicts_close(got["gradients"], want["gradients"], GRADIENT,
                              "gradient of the loss w.r.t. the network's parameters")


def support_order_inputs():
    """Tasks in class order, one copy with each class's support examples and the query set shuffled, and two
    copies that ProtoNet must tell apart from the first: other support images, and query labels moved to other
    images."""
    tasks = random_tasks(seed=331, **ONE_PROTOTYPE_RULE)
    generator = torch.Generator().manual_seed(5)
    shuffled = {key: value.clone() for key, value in tasks.items()}
    for t, labels in enumerate(tasks["labels_support"]):
        order = torch.cat([torch.nonzero(labels == c).flatten()[torch.randperm(int((labels == c).sum()),
                                                                               generator=generator)]
                           for c in range(int(labels.max()) + 1)])
        shuffled["images_support"][t] = tasks["images_support"][t][order]
        query_order = torch.randperm(tasks["labels_query"].shape[1], generator=generator)
        shuffled["images_query"][t] = tasks["images_query"][t][query_order]
        shuffled["labels_query"][t] = tasks["labels_query"][t][query_order]
    other_support = {**tasks, "images_support": random_tasks(seed=332, **ONE_PROTOTYPE_RULE)["images_support"]}
    relabelled = {**tasks, "labels_query": (tasks["labels_query"] + 1) % (int(tasks["labels_query"].max()) + 1)}
    return tasks, shuffled, other_support, relabelled


@pytest.mark.points(4)
def test_protonet_invariant_to_support_order(student):
    """_step is a function of the task sets: the same loss on a second call and with the examples reordered"""
    # Only a ProtoNet loss earns this property (any distance; prototypes by any of the rules that agree when N = S
    # and the support set is in class order): a loss that ignores the embedding network would have it too.
    neutral = identity_tasks(seed=10, **ONE_PROTOTYPE_RULE)
    assert_loss_is_protonet(student.run("protonet_step", tasks=neutral, identity_network=True),
                            exact_candidates(neutral), "with embeddings equal to the (flattened) images, support in "
                            "class order (this test checks a ProtoNet loss only)")
    tasks, shuffled, other_support, relabelled = support_order_inputs()
    first = student.run("protonet_step", tasks=tasks, seed=1, calls=2)
    loss = assert_number(first["loss"], "loss")
    for what, changed in (("other support images", other_support), ("the query labels moved to other images",
                                                                     relabelled)):
        moved = relative_error(assert_number(student.run("protonet_step", tasks=changed, seed=1)["loss"], "loss"),
                               loss)
        assert moved >= DEPENDS, (
            f"the loss does not depend on the task ({what} change it by {moved:.1e}, relative): _step must compute the "
            "query cross-entropy from the prototypes of the support embeddings and the query labels")
    second = first["later_calls"][0]
    assert_close(second["loss"], loss, FLOAT32, "loss of a second _step call on the same batch (vs the first call): "
                                                "_step must not keep or change state between calls")
    again = student.run("protonet_step", tasks=shuffled, seed=1)
    where = "after reordering the query set and each class's support examples (vs before)"
    assert_close(again["loss"], loss, FLOAT32, f"loss {where}")
    for kind, rows in (("support", tasks["labels_support"].numel()), ("query", tasks["labels_query"].numel())):
        if first[f"accuracy_{kind}"] is not None:  # an accuracy that is not a number: the reference comparison's
            assert_accuracy_close(again[f"accuracy_{kind}"], first[f"accuracy_{kind}"], rows,
                                  f"{kind} accuracy {where}")


@pytest.mark.points(5)
def test_protonet_squared_distance(student):
    """Logits are NEGATIVE SQUARED Euclidean distances to the prototypes (exact values, identity embedding)"""
    tasks = identity_tasks(seed=7, **ONE_PROTOTYPE_RULE)
    want = exact_candidates(tasks)
    for mistake in DISTANCE_MISTAKES:
        self_check(relative_error(want[mistake]["loss"], want["squared"]["loss"]) > BUG_MARGIN,
                   f"the {mistake} distance gives a different loss")
    for mistake in NEUTRAL_MISTAKES:
        self_check(relative_error(exact_protonet(tasks, prototypes=mistake)["loss"], want["squared"]["loss"]) <= 1e-9,
                   f"the {mistake} prototype mistake does not change the distance test")
    got = student.run("protonet_step", tasks=tasks, identity_network=True)
    what = "with embeddings equal to the (flattened) images, support in class order"
    mistake = first_match(assert_number(got["loss"], f"{what}: loss"),
                          {name: want[name]["loss"] for name in DISTANCE_MISTAKES}, FLOAT32)
    if mistake is not None:
        raise AssertionError(f"{what}: {DISTANCE_MISTAKES[mistake]}")
    assert_close(got["loss"], want["squared"]["loss"], FLOAT32, f"{what}: loss")


@pytest.mark.points(5)
def test_protonet_prototypes_use_labels_not_order(student):
    """Prototypes average the support examples BY LABEL: the support set is shuffled, not grouped by class"""
    tasks = identity_tasks(seed=8, **PROTOTYPE_TASKS)
    want = exact_candidates(tasks)
    mistakes = {(mistake, distance): value for mistake in PROTOTYPE_MISTAKES
                for distance, value in exact_candidates(tasks, mistake).items()}
    for (mistake, distance), value in mistakes.items():
        self_check(min(relative_error(value["loss"], correct["loss"]) for correct in want.values()) > BUG_MARGIN,
                   f"the {mistake} prototypes ({distance} distance) give a different loss")
    got = student.run("protonet_step", tasks=tasks, identity_network=True)
    what = (f"with embeddings equal to the (flattened) images, {PROTOTYPE_TASKS['num_tasks']} tasks, "
            f"{PROTOTYPE_TASKS['num_way']}-way, {PROTOTYPE_TASKS['num_support']} shuffled support and "
            f"{PROTOTYPE_TASKS['num_query']} query examples per class")
    loss = assert_number(got["loss"], f"{what}: loss")
    mistake = first_match(loss, {key: value["loss"] for key, value in mistakes.items()}, FLOAT32)
    if mistake is not None:
        raise AssertionError(f"{what}: {PROTOTYPE_MISTAKES[mistake[0]]}")
    # Any distance of DISTANCES: a wrong one is test_protonet_squared_distance's to grade.
    assert_loss_is_protonet(got, want, what)


@pytest.mark.points(5)
def test_protonet_gradient_reaches_support_embeddings(student):
    """The loss is differentiated through the prototypes into the support embeddings (they are not detached)"""
    tasks = identity_tasks(seed=9, **ONE_PROTOTYPE_RULE)
    candidates = exact_candidates(tasks)
    got = student.run("protonet_step", tasks=tasks, identity_network=True, record_embeddings=True)
    what = "with embeddings equal to the (flattened) images, support in class order"
    # The gradient is graded once the loss is ProtoNet's, with any distance of DISTANCES (the distance has its own
    # test).
    want = candidates[assert_loss_is_protonet(got, candidates, what)]
    for t, (mine, correct) in enumerate(zip(got["support_embedding_gradients"], want["support_embedding_gradients"])):
        assert mine is not None and float(mine.abs().max()) > 0, (
            f"task {t}: no gradient reached the support embeddings: the prototypes must stay differentiable "
            "functions of the support embeddings (no .detach(), no torch.no_grad(), no .item())")
        assert_close(mine, correct, FLOAT32, f"task {t}: gradient of the loss w.r.t. the support embeddings")
