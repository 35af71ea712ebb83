"""ProtoNet._step, compared with the reference on identical weights and tasks, and with exact values computed here.

The comparison uses real training-split episodes of the provided sampler (support and query sets shuffled, so the
examples of a class are not contiguous). The "identity network" tests replace the embedding network by a
flattening, which makes every embedding known to the harness: the expected loss, accuracies and gradients are then
computed here in float64, independently of the reference (the reference's own grading run checks that it agrees),
and need no reference worker.

PYTEST_DONT_REWRITE: the feedback shows each assertion's own message, without pytest's expression dump.
"""

import pytest
import torch
import torch.nn.functional as F

from hw2_checks import FLOAT32, GRADIENT, assert_accuracy_close, assert_close, assert_tensor_dicts_close, \
    random_tasks, reference_inputs, relative_error, self_check

TASKS = dict(split="train", seed=330, num_tasks=2, num_way=5, num_support=2, num_query=3)
EXAMPLES_SUPPORT = TASKS["num_tasks"] * TASKS["num_way"] * TASKS["num_support"]
EXAMPLES_QUERY = TASKS["num_tasks"] * TASKS["num_way"] * TASKS["num_query"]
BUG_MARGIN = 1e-2  # a wrong formula must move the loss by at least this (relative) in the configurations used


def sample(reference, **overrides):
    return reference_inputs(reference, "sample_tasks", **{**TASKS, **overrides})


def network_state(reference, seed=0):
    return reference_inputs(reference, "protonet_parameters", seed=seed)["state"]


def identity_tasks(seed, num_tasks=2, num_way=5, num_support=3, num_query=4):
    """Tasks whose images ARE the embeddings (identity network): class centres plus noise, shuffled sets."""
    generator = torch.Generator().manual_seed(seed)
    dim = 28 * 28
    tasks = {key: [] for key in ("images_support", "labels_support", "images_query", "labels_query")}
    for _ in range(num_tasks):
        centres = 0.04 * torch.randn(num_way, dim, generator=generator)
        for kind, count in (("support", num_support), ("query", num_query)):
            labels = torch.arange(num_way).repeat(count)[torch.randperm(num_way * count, generator=generator)]
            images = centres[labels] + 0.05 * torch.randn(num_way * count, dim, generator=generator)
            tasks[f"images_{kind}"].append(images.reshape(-1, 1, 28, 28))
            tasks[f"labels_{kind}"].append(labels)
    return {key: torch.stack(values) for key, values in tasks.items()}


def exact_protonet(tasks, squared=True, prototypes_by_position=False):
    """Loss, accuracies and support-embedding gradients of ProtoNet with the identity network, in float64."""
    losses, support_accuracies, query_accuracies, supports = [], [], [], []
    for t in range(tasks["images_support"].shape[0]):
        support = tasks["images_support"][t].flatten(1).double().requires_grad_()
        query = tasks["images_query"][t].flatten(1).double()
        labels_support, labels_query = tasks["labels_support"][t], tasks["labels_query"][t]
        num_way = int(labels_support.max()) + 1
        if prototypes_by_position:  # what code assuming class-major support order computes
            prototypes = support.reshape(num_way, -1, support.shape[1]).mean(dim=1)
        else:
            membership = F.one_hot(labels_support, num_way).double()
            prototypes = membership.T @ support / membership.sum(dim=0, keepdim=True).T
        logits = []
        for embeddings in (support, query):
            distances = (embeddings[:, None] - prototypes[None]).square().sum(-1)
            logits.append(-(distances if squared else distances.sqrt()))
        losses.append(F.cross_entropy(logits[1], labels_query))
        support_accuracies.append((logits[0].argmax(-1) == labels_support).double().mean())
        query_accuracies.append((logits[1].argmax(-1) == labels_query).double().mean())
        supports.append(support)
    loss = torch.stack(losses).mean()
    gradients = torch.autograd.grad(loss, supports)
    mean = lambda values: float(torch.stack(values).mean())  # noqa: E731
    return {"loss": float(loss.detach()), "accuracy_support": mean(support_accuracies),
            "accuracy_query": mean(query_accuracies), "support_embedding_gradients": list(gradients)}


def check_against_exact(student, tasks, what, known_mistakes=(), **options):
    """The student's _step with the identity network against the exact values; `known_mistakes` are (what a known
    mistake computes, the message naming it), checked first so that the feedback says what went wrong."""
    want = exact_protonet(tasks)
    got = student.run("protonet_step", tasks=tasks, identity_network=True, **options)
    for mistake, message in known_mistakes:
        if got["loss"] is not None and relative_error(got["loss"], mistake["loss"]) <= FLOAT32:
            raise AssertionError(f"{what}: {message}")
    assert_close(got["loss"], want["loss"], FLOAT32, f"{what}: loss")
    assert_accuracy_close(got["accuracy_query"], want["accuracy_query"], tasks["labels_query"].numel(),
                          f"{what}: query accuracy")
    assert_accuracy_close(got["accuracy_support"], want["accuracy_support"], tasks["labels_support"].numel(),
                          f"{what}: support accuracy")
    return got, want


@pytest.mark.points(8)
def test_protonet_step_matches_reference(student, reference):
    """ProtoNet._step: loss, accuracies and parameter gradients equal the reference's on the same weights and tasks"""
    tasks, state = sample(reference), network_state(reference)
    got = student.run("protonet_step", tasks=tasks, state=state, backward=True)
    want = reference.run("protonet_step", tasks=tasks, state=state, backward=True)
    assert got["loss_requires_grad"], (
        "the loss returned by _step does not require grad: it must stay differentiable w.r.t. the network")
    assert_close(got["loss"], want["loss"], FLOAT32, "loss")
    assert_accuracy_close(got["accuracy_support"], want["accuracy_support"], EXAMPLES_SUPPORT, "support accuracy")
    assert_accuracy_close(got["accuracy_query"], want["accuracy_query"], EXAMPLES_QUERY, "query accuracy")
    assert_tensor_dicts_close(got["gradients"], want["gradients"], GRADIENT,
                              "gradient of the loss w.r.t. the network's parameters")


@pytest.mark.points(4)
def test_protonet_invariant_to_support_order(student):
    """Shuffling the support set (images with their labels) leaves the loss and accuracies unchanged"""
    tasks = random_tasks(seed=331, num_support=3)
    generator = torch.Generator().manual_seed(5)
    orders = [torch.randperm(labels.shape[0], generator=generator) for labels in tasks["labels_support"]]
    permuted = {**tasks,
                "images_support": torch.stack([x[order] for x, order in zip(tasks["images_support"], orders)]),
                "labels_support": torch.stack([y[order] for y, order in zip(tasks["labels_support"], orders)])}
    first = student.run("protonet_step", tasks=tasks, seed=1)
    second = student.run("protonet_step", tasks=permuted, seed=1)
    assert_close(second["loss"], first["loss"], FLOAT32, "loss after shuffling the support set (vs before)")
    assert_accuracy_close(second["accuracy_query"], first["accuracy_query"], tasks["labels_query"].numel(),
                          "query accuracy after shuffling the support set (vs before)")


@pytest.mark.points(5)
def test_protonet_squared_distance(student):
    """Logits are NEGATIVE SQUARED Euclidean distances to the prototypes (exact values, identity embedding)"""
    tasks = identity_tasks(seed=7)
    plain = exact_protonet(tasks, squared=False)
    self_check(relative_error(plain["loss"], exact_protonet(tasks)["loss"]) > BUG_MARGIN,
               "plain and squared distances give different losses")
    mistake = (plain, "the loss is the one of plain Euclidean distances; the logits must be the negative SQUARED "
                      "distances -||e - p||^2 (torch.cdist and .norm() give the plain distance: square it)")
    check_against_exact(student, tasks, "with embeddings equal to the (flattened) images", known_mistakes=[mistake])


@pytest.mark.points(5)
def test_protonet_prototypes_use_labels_not_order(student):
    """Prototypes average the support examples BY LABEL: the support set is shuffled, not grouped by class"""
    tasks = identity_tasks(seed=8, num_support=3)
    by_position = exact_protonet(tasks, prototypes_by_position=True)
    self_check(relative_error(by_position["loss"], exact_protonet(tasks)["loss"]) > BUG_MARGIN,
               "prototypes by position and by label give different losses")
    mistake = (by_position, "the prototypes average consecutive support rows (a reshape), but the support set is "
                            "shuffled: select each class's examples by their LABEL (e.g. F.one_hot(labels_support))")
    check_against_exact(student, tasks, "with 3 shuffled support examples per class", known_mistakes=[mistake])


@pytest.mark.points(5)
def test_protonet_gradient_reaches_support_embeddings(student):
    """The loss is differentiated through the prototypes into the support embeddings (they are not detached)"""
    tasks = identity_tasks(seed=9, num_support=2)
    got, want = check_against_exact(student, tasks, "with embeddings equal to the (flattened) images",
                                    record_embeddings=True)
    assert all(got["support_embedded_separately"]), (
        "embed the support images with their own call of self._network (batch norm then uses the support set's "
        "statistics), as the TODO says")
    for t, (mine, correct) in enumerate(zip(got["support_embedding_gradients"], want["support_embedding_gradients"])):
        assert mine is not None and float(mine.abs().max()) > 0, (
            f"task {t}: no gradient reached the support embeddings: the prototypes must stay differentiable "
            "functions of the support embeddings (no .detach(), no torch.no_grad(), no .item())")
        assert_close(mine, correct, FLOAT32, f"task {t}: gradient of the loss w.r.t. the support embeddings")
