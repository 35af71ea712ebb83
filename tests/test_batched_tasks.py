"""The batched (vmapped) reference steps of bench/batched_tasks.py compute what the plain per-task steps compute.

On the CPU, from the same tasks and the same initial weights: loss, support and query metrics, and the gradient of
the loss w.r.t. every trained tensor (meta-parameters, learned inner learning rates, ProtoNet's weights) agree to
`batched_tasks.TOLERANCE`. A short training run with the batched step follows the plain run step by step. The tasks
come from random ink, so nothing here needs the Omniglot data.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

WAY, SUPPORT, QUERY, BATCH = 3, 2, 3, 4
STEPS = 4  # training steps compared (see test_installed_batched_steps_train_like_the_plain_ones)


@pytest.fixture(autouse=True)
def modules(reference_modules):
    """bench/batched_tasks.py and the reference maml, protonet, omniglot, imported for one test (then swapped out)."""
    global batched_tasks, maml, omniglot, protonet
    import batched_tasks
    import maml
    import omniglot
    import protonet

    saved = maml.MAML._outer_step
    yield SimpleNamespace(batched_tasks=batched_tasks, maml=maml, omniglot=omniglot, protonet=protonet)
    maml.MAML._outer_step = saved


@pytest.fixture
def tasks():
    ink = np.random.default_rng(0).integers(0, 256, (12, 20, 28, 28), dtype=np.uint8)
    return omniglot.EpisodeSampler(ink, WAY, SUPPORT, QUERY, seed=1).sample(BATCH)


def make_maml(variant: str, num_inner_steps: int = 2):
    torch.manual_seed(0)
    return maml.MAML(WAY, num_inner_steps, 0.4, True, 0.001, num_hidden_channels=8, variant=variant)


def trained_tensors(learner) -> list[torch.Tensor]:
    return list(learner._meta_parameters.values()) + list(learner._inner_lrs.values())


def assert_same_outputs(plain, batched) -> None:
    for name, a, b in zip(("loss", "support accuracies", "query accuracy"), plain, batched):
        a, b = torch.as_tensor(a).detach(), torch.as_tensor(b).detach()
        assert a.shape == b.shape, f"{name}: plain {tuple(a.shape)} vs batched {tuple(b.shape)}"
        torch.testing.assert_close(b, a, **batched_tasks.TOLERANCE, msg=lambda m: f"{name}: {m}")


def gradients(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(t) if g is None else g
            for t, g in zip(tensors, torch.autograd.grad(loss, tensors, allow_unused=True))]


@pytest.mark.parametrize("variant", ["maml", "first_order"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "evaluate"])
def test_batched_maml_step_matches_the_plain_step(tasks, variant, train):
    learner = make_maml(variant)
    plain = learner._outer_step(tasks, train)
    batched = batched_tasks.maml_outer_step(learner, tasks, train)
    assert_same_outputs(plain, batched)
    if train:
        tensors = trained_tensors(learner)
        for index, (a, b) in enumerate(zip(gradients(plain[0], tensors), gradients(batched[0], tensors))):
            torch.testing.assert_close(b, a, **batched_tasks.TOLERANCE, msg=lambda m: f"gradient {index}: {m}")


def test_second_order_terms_reach_the_batched_gradient(tasks):
    """The comparison above can fail: first- and second-order batched gradients differ well beyond the tolerance."""
    second, first = make_maml("maml"), make_maml("first_order")
    tensors = trained_tensors(second)
    g_second = gradients(batched_tasks.maml_outer_step(second, tasks, True)[0], tensors)
    g_first = gradients(batched_tasks.maml_outer_step(first, tasks, True)[0], trained_tensors(first))
    differences = [float((a - b).abs().max()) for a, b in zip(g_second, g_first)]
    assert max(differences) > 100 * batched_tasks.TOLERANCE["atol"], differences


def test_variants_without_a_batched_step_keep_their_own(tasks):
    assert batched_tasks.BATCHED_MAML_VARIANTS == ("maml", "first_order")  # the ones compared above
    learner = make_maml("anil")
    assert_same_outputs(learner._outer_step(tasks, True), batched_tasks.maml_outer_step(learner, tasks, True))


def test_batched_protonet_step_matches_the_plain_step(tasks):
    torch.manual_seed(0)
    learner = protonet.ProtoNet()
    learner._batched_num_support = SUPPORT
    plain = learner._step(tasks)
    batched = batched_tasks.protonet_step(learner, tasks)
    assert_same_outputs(plain, batched)
    weights = list(learner._network.parameters())
    for index, (a, b) in enumerate(zip(gradients(plain[0], weights), gradients(batched[0], weights))):
        torch.testing.assert_close(b, a, **batched_tasks.TOLERANCE, msg=lambda m: f"gradient {index}: {m}")


def test_installed_batched_steps_train_like_the_plain_ones():
    """Adam steps of each learner, plain and batched from the same weights and tasks: the same losses.

    Few steps: Adam divides by the root of the squared gradient, so it turns the rounding noise of gradients that are
    zero in exact arithmetic (convolution biases in front of batch norm) into full-size steps, and two runs that
    differ only in rounding drift apart after some ten steps whichever way they are computed.
    """
    ink = np.random.default_rng(2).integers(0, 256, (12, 20, 28, 28), dtype=np.uint8)
    for module, build in ((maml, lambda: make_maml("maml", 1)),
                          (protonet, lambda: (torch.manual_seed(0), protonet.ProtoNet())[1])):
        losses = {}
        for batched in (False, True):
            learner = build()
            if batched:
                batched_tasks.batch_learner(learner, SUPPORT)
            sampler = omniglot.EpisodeSampler(ink, WAY, SUPPORT, QUERY, seed=3)
            losses[batched] = torch.stack([learner.train_step(sampler.sample(BATCH))["loss"] for _ in range(STEPS)])
        torch.testing.assert_close(losses[True], losses[False], **batched_tasks.TOLERANCE,
                                   msg=lambda m: f"{module.__name__}: {m}")
        assert not torch.allclose(losses[False][0], losses[False][-1]), "the runs did not train"


def test_install_replaces_the_reference_steps_and_refuses_other_modules():
    saved_step = protonet.ProtoNet._step
    try:
        batched_tasks.install(maml)
        assert maml.MAML._outer_step is batched_tasks.maml_outer_step
        batched_tasks.install(protonet, num_support=SUPPORT)
        assert protonet.ProtoNet._step is batched_tasks.protonet_step
        with pytest.raises(ValueError, match="num_support"):
            batched_tasks.install(protonet)
        with pytest.raises(ValueError, match="neither"):
            batched_tasks.install(copy)
    finally:
        protonet.ProtoNet._step = saved_step


def test_tasks_of_different_shapes_are_refused(tasks):
    odd = list(tasks)
    odd[1] = tuple(tensor[:-1] for tensor in odd[1])
    with pytest.raises(ValueError, match="one shape"):
        batched_tasks.stack_tasks(odd, "cpu")
