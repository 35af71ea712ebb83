"""HW1 part 2: MANN (and the extra-credit AttentionLearner) against the reference on IDENTICAL weights and inputs.

The reference initialises the weights; both sides load that state_dict and read the same real Omniglot episodes,
so the only difference left is the code. Tolerance (`assert_close`): relative 1e-5 plus absolute 1e-6, in float32
(machine epsilon 1.2e-7). Identical operations agree bit for bit; a correct solution written differently (clone and
zero instead of torch.cat, log_softmax + nll instead of cross_entropy, another reduction order) differs by a few
ulps, i.e. ~1e-7 relative; every bug the corpus checks moves values by 1e-3 or more.

PYTEST_DONT_REWRITE: the feedback shows each assertion's message alone, without pytest's introspection.
"""

import pytest
import torch

from hw1_call_cache import cached_run
from autograder.harness import run_data_dir
from hw1_episodes import draw_episodes, store_and_index

RTOL, ATOL = 1e-5, 1e-6
MANN_CASE = {"num_classes": 3, "samples_per_class": 3, "hidden_dim": 16}  # 3-way 2-shot, small memory
ATTENTION_CASE = {"num_classes": 3, "samples_per_class": 3, "hidden_dim": 16}
BATCH = 4


@pytest.fixture(scope="module")
def batch(request):
    """Real episodes (val split, fixed seed): images [B, K+1, N, 784] and one-hot labels [B, K+1, N, N]."""
    store, _ = store_and_index(run_data_dir(request.config))
    images, labels = draw_episodes(store, "val", MANN_CASE["num_classes"], MANN_CASE["samples_per_class"], BATCH,
                                   seed=11)
    return torch.from_numpy(images), torch.from_numpy(labels)


def assert_close(got, want, what: str):
    assert isinstance(got, torch.Tensor), f"{what}: got a {type(got).__name__}, expected a torch.Tensor"
    assert tuple(got.shape) == tuple(want.shape), f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}"
    if not torch.allclose(got, want, rtol=RTOL, atol=ATOL):
        difference = (got - want).abs().max().item()
        raise AssertionError(f"{what}: not what the reference solution computes from the same weights and inputs "
                             f"(largest difference {difference:.3g}, tolerance {RTOL:g} relative + {ATOL:g})")


def _reference_state(reference, model, case):
    return cached_run(reference, "initial_state", model=model, seed=0, **case)["state"]


def _forward(runner, model, case, state, images, labels, with_loss=True):
    return cached_run(runner, "forward", model=model, state=state, images=images, labels=labels, with_loss=with_loss,
                      **case)


def _query_labels_replaced(labels):
    """The query rows given other classes: a learner that hides them cannot tell."""
    changed = labels.clone()
    changed[:, -1] = changed[:, -1].roll(1, dims=-1)
    return changed


@pytest.mark.points(8)
def test_mann_forward_matches_reference(student, reference, batch):
    """MANN.forward: same logits as the reference on the same weights and episodes"""
    images, labels = batch
    state = _reference_state(reference, "lstm", MANN_CASE)
    want = _forward(reference, "lstm", MANN_CASE, state, images, labels)
    got = _forward(student, "lstm", MANN_CASE, state, images, labels, with_loss=False)
    assert_close(got["preds"], want["preds"], "MANN logits [B, K+1, N, N]")


@pytest.mark.points(5)
def test_mann_backward_matches_reference(student, reference, batch):
    """loss.backward() through MANN: same loss and parameter gradients as the reference"""
    images, labels = batch
    state = _reference_state(reference, "lstm", MANN_CASE)
    want = _forward(reference, "lstm", MANN_CASE, state, images, labels)
    got = _forward(student, "lstm", MANN_CASE, state, images, labels)
    assert_close(got["loss"], want["loss"], "the loss of MANN's logits")
    for name, gradient in want["gradients"].items():
        assert got["gradients"].get(name) is not None, (
            f"parameter {name} got no gradient: the loss must be computed from the model's output with torch "
            "operations only (no .detach(), .numpy() or torch.no_grad() in forward)")
        assert_close(got["gradients"][name], gradient, f"the gradient of {name}")


@pytest.mark.points(7)
def test_query_labels_zeroed(student, reference, batch):
    """the model never sees the query labels: changing them changes no prediction"""
    images, labels = batch
    state = _reference_state(reference, "lstm", MANN_CASE)
    plain = _forward(student, "lstm", MANN_CASE, state, images, labels, with_loss=False)["preds"]
    changed = _forward(student, "lstm", MANN_CASE, state, images, _query_labels_replaced(labels),
                       with_loss=False)["preds"]
    assert isinstance(plain, torch.Tensor) and isinstance(changed, torch.Tensor), "forward must return a tensor"
    if not torch.allclose(plain, changed, rtol=RTOL, atol=ATOL):
        raise AssertionError("changing only the query labels (row K) changed the predictions: the model can read "
                             "the answers. Replace the query row of the labels by zeros before building the "
                             "sequence (the support rows keep their labels)")


@pytest.mark.points(5)
def test_caller_tensors_unmodified(student, reference, batch):
    """forward and loss_function leave the caller's images and labels unchanged (no in-place zeroing)"""
    images, labels = batch
    state = _reference_state(reference, "lstm", MANN_CASE)
    got = _forward(student, "lstm", MANN_CASE, state, images, labels)
    assert torch.equal(got["images_after"], images), "forward or loss_function changed the caller's input_images"
    assert torch.equal(got["labels_after"], labels), (
        "forward or loss_function changed the caller's input_labels (e.g. zeroed the query row in place): the "
        "training loop needs them afterwards for the loss. Build a new tensor (torch.cat, or edit a .clone())")


def _random_preds(labels, seed):
    generator = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(labels.shape, generator=generator)


@pytest.mark.points(6)
def test_loss_matches_reference(student, reference, batch):
    """loss_function: the reference's query cross-entropy (value and gradient) on the same logits"""
    _, labels = batch
    preds = _random_preds(labels, seed=5)
    case = {"num_classes": MANN_CASE["num_classes"], "samples_per_class": MANN_CASE["samples_per_class"]}
    want = cached_run(reference, "loss", preds=preds, labels=labels, **case)
    got = cached_run(student, "loss", preds=preds, labels=labels, **case)
    assert_close(got["loss"], want["loss"], "the loss (mean cross-entropy of the query logits over the classes)")
    assert got["preds_grad"] is not None, "the loss has no gradient with respect to the logits"
    assert_close(got["preds_grad"], want["preds_grad"], "the loss's gradient with respect to the logits")


@pytest.mark.points(4)
def test_loss_ignores_support_rows(student, batch):
    """loss_function counts the query predictions only: support-row logits do not change it"""
    _, labels = batch
    preds = _random_preds(labels, seed=5)
    changed = preds.clone()
    changed[:, :-1] += _random_preds(labels[:, :-1], seed=7)
    case = {"num_classes": MANN_CASE["num_classes"], "samples_per_class": MANN_CASE["samples_per_class"]}
    plain = cached_run(student, "loss", preds=preds, labels=labels, **case)
    moved = cached_run(student, "loss", preds=changed, labels=labels, **case)
    assert isinstance(plain["loss"], torch.Tensor), "loss_function must return a torch tensor"
    if not torch.allclose(plain["loss"], moved["loss"], rtol=RTOL, atol=ATOL):
        raise AssertionError("changing only the support rows' logits changed the loss: average the cross-entropy "
                             "over the query row (index K) only")
    if plain["preds_grad"] is not None and plain["preds_grad"][:, :-1].abs().max() > 0:
        raise AssertionError("the loss has a gradient with respect to the support rows' logits; only the query "
                             "row may count")


@pytest.mark.points(6)
@pytest.mark.extra_credit
def test_attention_forward_matches_reference(student, reference, batch):
    """extra credit: AttentionLearner: same logits and gradients as the reference on the same weights"""
    images, labels = batch
    state = _reference_state(reference, "attention", ATTENTION_CASE)
    want = _forward(reference, "attention", ATTENTION_CASE, state, images, labels)
    got = _forward(student, "attention", ATTENTION_CASE, state, images, labels)
    assert_close(got["preds"], want["preds"], "AttentionLearner logits")
    for name, gradient in want["gradients"].items():
        assert got["gradients"].get(name) is not None, f"AttentionLearner parameter {name} got no gradient"
        assert_close(got["gradients"][name], gradient, f"the gradient of AttentionLearner's {name}")


@pytest.mark.points(4)
@pytest.mark.extra_credit
def test_attention_queries_independent(student, reference, batch):
    """extra credit: AttentionLearner: a query sees the support set and itself only, never the query labels"""
    images, labels = batch
    state = _reference_state(reference, "attention", ATTENTION_CASE)
    plain = _forward(student, "attention", ATTENTION_CASE, state, images, labels, with_loss=False)["preds"]
    hidden = _forward(student, "attention", ATTENTION_CASE, state, images, _query_labels_replaced(labels),
                      with_loss=False)["preds"]
    assert torch.allclose(plain, hidden, rtol=RTOL, atol=ATOL), "changing the query labels changed the predictions"
    other = images.clone()
    other[:, -1, 0] = images[:, -1, 0].flip(-1)  # another image in query position 0
    moved = _forward(student, "attention", ATTENTION_CASE, state, other, labels, with_loss=False)["preds"]
    unchanged = torch.ones(moved.shape[:3], dtype=torch.bool)
    unchanged[:, -1, 0] = False
    assert torch.allclose(moved[unchanged], plain[unchanged], rtol=RTOL, atol=ATOL), (
        "changing query 0's image changed the predictions of the support set or of other queries: support steps "
        "must not attend to queries, and a query only to the support set and itself")
    assert not torch.allclose(moved[:, -1, 0], plain[:, -1, 0]), "query 0's prediction ignores its own image"
