"""HW1 part 2: MANN (and the extra-credit AttentionLearner) against the reference on IDENTICAL weights and inputs.

The reference initialises the weights; both sides load that state_dict and read the same real Omniglot episodes,
so the only difference left is the code. Tolerance (`assert_close`): relative 1e-5 plus absolute 1e-6, compared in
float64 (float32 machine epsilon 1.2e-7). Identical operations agree bit for bit; a correct solution written
differently (clone and zero instead of torch.cat, log_softmax + nll instead of cross_entropy, another reduction
order) differs by a few ulps, i.e. ~1e-7 relative; every bug the corpus checks moves values by 1e-3 or more.

Logits are compared up to a per-row additive constant (after subtracting each row's logsumexp): logits that differ
only by one, e.g. `log_softmax(logits)`, give the same predictions, loss and gradients. Only the forward test
charges a dtype other than float32; the others compare values.

The property tests (query labels hidden, caller's tensors untouched, support rows ignored by the loss) first
require that the code does the work: forward's query logits depend on the support labels and the query images and
come from a model that fits a batch when trained (`_require_reads_episode`), and the loss falls, rises and levels
off as a cross-entropy of the query logits does (`_require_loss_reads_queries`). Zeros, constants, echoes of the
inputs and fixed functions of them earn nothing (tests/test_graders_degenerate.py). The forward and backward tests
differentiate the grader's own query cross-entropy, so that a mistake of loss_function costs its own tests only.

PYTEST_DONT_REWRITE: the feedback shows each assertion's message alone, without pytest's introspection.
"""

import pytest
import torch

from autograder.engine.harness import run_data_dir
from hw1_call_cache import cached_run
from hw1_episodes import draw_episodes, store_and_index

RTOL, ATOL = 1e-5, 1e-6
# Every dimension distinct within a case (N, K+1, batch B, hidden), so that code using one where another is meant
# (a reshape with K+1 for N) cannot agree by accident; two cases, so that none is hard-coded.
CASES = ({"num_classes": 3, "samples_per_class": 4, "hidden_dim": 16, "batch": 2},
         {"num_classes": 5, "samples_per_class": 2, "hidden_dim": 8, "batch": 3})  # hidden divisible by 4 heads
MODEL_NAMES = {"lstm": "MANN", "attention": "AttentionLearner"}


def _sizes(case):
    """The model's constructor arguments (the probes' inputs) of a case."""
    return {key: case[key] for key in ("num_classes", "samples_per_class", "hidden_dim")}


def _describe(case):
    return (f"N={case['num_classes']}, K+1={case['samples_per_class']}, B={case['batch']}, "
            f"hidden={case['hidden_dim']}")


@pytest.fixture(scope="module")
def episodes(request):
    """Per case: (case, images [B, K+1, N, 784], one-hot labels [B, K+1, N, N]), real episodes of the val split."""
    store, _ = store_and_index(run_data_dir(request.config))
    batches = []
    for seed, case in enumerate(CASES, start=11):
        images, labels = draw_episodes(store, "val", case["num_classes"], case["samples_per_class"], case["batch"],
                                       seed=seed)
        batches.append((case, torch.from_numpy(images), torch.from_numpy(labels)))
    return batches


def _normalised(logits):
    """Logits with each row's logsumexp subtracted (log-probabilities): equal for logits equal up to a constant."""
    return logits - logits.logsumexp(dim=-1, keepdim=True)


def assert_close(got, want, what: str, normalise=False):
    """`got` is `want` within the tolerance, compared in float64 (the dtype is the forward test's business)."""
    assert isinstance(got, torch.Tensor), f"{what}: got a {type(got).__name__}, expected a torch.Tensor"
    assert tuple(got.shape) == tuple(want.shape), f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    got, want = got.detach().double(), want.double()
    if normalise:
        got, want = _normalised(got), _normalised(want)
    if not torch.allclose(got, want, rtol=RTOL, atol=ATOL):
        difference = (got - want).abs().max().item()
        raise AssertionError(f"{what}: not what the reference solution computes from the same weights and inputs "
                             f"(largest difference {difference:.3g}, tolerance {RTOL:g} relative + {ATOL:g})")


def _reference_state(reference, model, case):
    return cached_run(reference, "initial_state", model=model, seed=0, **_sizes(case))["state"]


def _forward(runner, model, case, state, images, labels, with_loss=True):
    return cached_run(runner, "forward", model=model, state=state, images=images, labels=labels, with_loss=with_loss,
                      **_sizes(case))


def _query_labels_replaced(labels):
    """The query rows given other classes: a learner that hides them cannot tell."""
    changed = labels.clone()
    changed[:, -1] = changed[:, -1].roll(1, dims=-1)
    return changed


def _support_relabelled(labels):
    """The support set with its classes renamed (n -> n+1 mod N): every label changes, their sum does not."""
    changed = labels.clone()
    changed[:, :-1] = changed[:, :-1].roll(1, dims=-1)
    return changed


def _queries_swapped(images):
    """The first two query images swapped: two real drawings, each in the other's place."""
    changed = images.clone()
    changed[:, -1, [0, 1]] = images[:, -1, [1, 0]]
    return changed


def _query_steps(preds, case, what):
    """The logits of the last N steps of the sequence (the queries) as [B, N*N], whatever the output's layout."""
    batch, n = case["batch"], case["num_classes"]
    expected = (batch, case["samples_per_class"], n, n)
    assert isinstance(preds, torch.Tensor) and preds.numel() == batch * case["samples_per_class"] * n * n, (
        f"{what}: forward returned {tuple(preds.shape) if isinstance(preds, torch.Tensor) else type(preds).__name__}"
        f", expected logits of shape {expected}")
    steps = preds.detach().double().reshape(batch, -1)[:, -n * n:]
    assert torch.isfinite(steps).all(), f"{what}: forward returned NaN or infinite query logits"
    return steps


def _same(a, b):
    return torch.allclose(a, b, rtol=RTOL, atol=ATOL)


# A model of the episodes fits one batch: FIT_STEPS Adam steps of the query cross-entropy take the reference's loss on
# the CASES batches to 0.37 and 0.51 of its start (MANN; attention 0.02 and 0.03); a fixed function of the inputs does
# not move at all (ratio 1.0), whatever it adds to look like one.
FIT_STEPS, FIT_LEARNING_RATE, FIT_RATIO = 20, 0.03, 0.75


def _require_fits(student, model, case, state, images, labels, name):
    """Non-degeneracy: the model is one, i.e. training its parameters on one batch lowers the loss there."""
    got = cached_run(student, "fit", model=model, state=state, images=images, labels=labels, steps=FIT_STEPS,
                     learning_rate=FIT_LEARNING_RATE, **_sizes(case))
    losses = got["losses"]
    assert got["differentiable"], (
        f"{name}: the logits of forward carry no gradient to the model's parameters, so the model cannot learn; this "
        "test checks a trainable model only (see test_mann_backward_matches_reference)")
    start, end = losses[0], losses[-1]
    assert end <= FIT_RATIO * start, (
        f"{name}: {FIT_STEPS} Adam steps (lr {FIT_LEARNING_RATE}) of the query cross-entropy on one batch took the "
        f"loss from {start:.4g} to {end:.4g}; a model whose predictions come from its parameters (the LSTMs, or the "
        f"attention layers) gets below {FIT_RATIO:g} of the start. This test checks such a model only (see "
        "test_mann_forward_matches_reference)")


def _require_reads_episode(student, model, case, state, images, labels):
    """Non-degeneracy, before any property of forward: the query logits change when the support labels change and
    when a query image changes, as the reference's do (zeros, constants and echoes of the inputs do not), and the
    model fits a batch (`_require_fits`: the logits come from its parameters). Only dependence and learning are
    asked for, not the reference's values (the forward test's job). Returns the plain logits."""
    name = f"{MODEL_NAMES[model]} ({_describe(case)})"
    plain = _forward(student, model, case, state, images, labels, with_loss=False)["preds"]
    plain_steps = _query_steps(plain, case, name)
    for what, other_images, other_labels in (("the support labels (classes renamed)", images,
                                              _support_relabelled(labels)),
                                             ("two query images (swapped)", _queries_swapped(images), labels)):
        moved = _forward(student, model, case, state, other_images, other_labels, with_loss=False)["preds"]
        if _same(_query_steps(moved, case, name), plain_steps):
            raise AssertionError(
                f"{name}: changing {what} did not change the query predictions, so forward does not predict the "
                "queries from the labelled support set and their own images; this test checks such a model only "
                "(see test_mann_forward_matches_reference)")
    _require_fits(student, model, case, state, images, labels, name)
    return plain


def _random_preds(labels, seed):
    generator = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(labels.shape, generator=generator)


# A cross-entropy levels off at its minimum as the correct logits grow: raised by SATURATION_RAISES, the losses differ
# by e^-27 of the fall from the plain logits; a linear "loss" of the logits keeps falling by the same amount.
SATURATION_RAISES = (30.0, 60.0)
SATURATION_RATIO = 1e-3


def _loss_inputs(labels):
    """The logits loss_function is asked about, all [B, K+1, N, N]: random ones, then with each query's correct
    class raised, with another class raised, with the support rows changed, and with the correct classes raised by
    each of SATURATION_RAISES."""
    preds = _random_preds(labels, seed=5)
    correct_raised, wrong_raised, support = preds.clone(), preds.clone(), preds.clone()
    correct_raised[:, -1] += labels[:, -1]
    wrong_raised[:, -1] += labels[:, -1].roll(1, dims=-1)
    support[:, :-1] += _random_preds(labels[:, :-1], seed=7)
    saturated = [preds.clone() for _ in SATURATION_RAISES]
    for raised, amount in zip(saturated, SATURATION_RAISES):
        raised[:, -1] += amount * labels[:, -1]
    return [preds, correct_raised, wrong_raised, support, *saturated]


def _losses(runner, case, labels):
    """loss_function on `_loss_inputs(labels)`: the probe's reply (lists `loss` and `preds_grad`, the gradients
    with respect to the logits, and `labels_after`)."""
    return cached_run(runner, "loss", num_classes=case["num_classes"], samples_per_class=case["samples_per_class"],
                      preds=_loss_inputs(labels), labels=labels)


def _require_loss_reads_queries(student, case, labels):
    """Non-degeneracy, before any property of loss_function: the loss falls when each query's correct class gets a
    higher logit and rises when a wrong class does, and levels off as the correct logits grow large, as a
    cross-entropy does (a constant or a linear function of the logits does not). Returns the reply of `_losses`."""
    got = _losses(student, case, labels)
    losses = got["loss"]
    for value in losses:
        shown = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        assert isinstance(value, torch.Tensor) and value.numel() == 1 and torch.isfinite(value).all(), (
            f"loss_function ({_describe(case)}) returned {shown}, or NaN; expected a finite scalar tensor (the mean)")
    plain, correct_raised, wrong_raised = (float(value) for value in losses[:3])
    margin = ATOL + RTOL * abs(plain)
    if not (correct_raised < plain - margin and wrong_raised > plain + margin):
        raise AssertionError(
            f"loss_function ({_describe(case)}): raising every query's logit of its correct class by 1 changed the "
            f"loss from {plain:.6g} to {correct_raised:.6g}, raising a wrong class's logit of every query by 1 to "
            f"{wrong_raised:.6g}; a cross-entropy of the query predictions falls in the first case and rises in the "
            "second. This test checks such a loss only (see test_loss_matches_reference)")
    far, farther = (float(value) for value in losses[4:6])
    if not abs(far - farther) <= SATURATION_RATIO * abs(plain - far):
        raise AssertionError(
            f"loss_function ({_describe(case)}): raising every query's logit of its correct class by "
            f"{SATURATION_RAISES[0]:g} and by {SATURATION_RAISES[1]:g} gave the losses {far:.6g} and {farther:.6g} "
            f"(from {plain:.6g}); a cross-entropy levels off at its minimum once the right class dominates, a loss "
            "linear in the logits keeps falling. This test checks such a loss only (see test_loss_matches_reference)")
    return got


@pytest.mark.points(8)
def test_mann_forward_matches_reference(student, reference, episodes):
    """MANN.forward: same logits as the reference on the same weights and episodes, on every call"""
    for case, images, labels in episodes:
        state = _reference_state(reference, "lstm", case)
        want = _forward(reference, "lstm", case, state, images, labels)["preds"]
        got = _forward(student, "lstm", case, state, images, labels, with_loss=False)
        what = f"MANN logits [B, K+1, N, N] ({_describe(case)})"
        assert_close(got["preds"], want, what, normalise=True)
        assert got["preds"].dtype == want.dtype, (
            f"{what}: dtype {got['preds'].dtype}, expected {want.dtype} (the dtype of the weights and inputs; do not "
            "convert)")
        again = got["preds_again"]
        assert isinstance(again, torch.Tensor) and again.shape == want.shape and _same(again.double(),
                                                                                       got["preds"].double()), (
            f"{what}: a second forward call on the same model with the same inputs gave other logits than the "
            "first: forward must not keep anything between calls (e.g. an LSTM state saved in self and fed to the "
            "next call); each episode starts from an empty memory")


@pytest.mark.points(5)
def test_mann_backward_matches_reference(student, reference, episodes):
    """backward through MANN: the parameter gradients of the query cross-entropy of its logits equal the reference's"""
    for case, images, labels in episodes:
        state = _reference_state(reference, "lstm", case)
        want = _forward(reference, "lstm", case, state, images, labels)
        got = _forward(student, "lstm", case, state, images, labels)
        # The grader's own cross-entropy of the logits (probes.query_cross_entropy): a mistake of loss_function is
        # test_loss_matches_reference's alone.
        assert_close(got["loss"], want["loss"], f"the query cross-entropy of MANN's logits ({_describe(case)})")
        for name, gradient in want["gradients"].items():
            assert got["gradients"].get(name) is not None, (
                f"parameter {name} got no gradient: forward must compute the logits from the parameters with torch "
                "operations only (no .detach(), .numpy() or torch.no_grad() in forward)")
            assert_close(got["gradients"][name], gradient, f"the gradient of {name} ({_describe(case)})")


@pytest.mark.points(7)
def test_query_labels_zeroed(student, reference, episodes):
    """the model never sees the query labels: changing them changes no prediction"""
    for case, images, labels in episodes:
        state = _reference_state(reference, "lstm", case)
        plain = _require_reads_episode(student, "lstm", case, state, images, labels)
        changed = _forward(student, "lstm", case, state, images, _query_labels_replaced(labels),
                           with_loss=False)["preds"]
        if not _same(changed.double(), plain.double()):
            raise AssertionError(f"MANN ({_describe(case)}): changing only the query labels (row K) changed the "
                                 "predictions: the model can read the answers. Replace the query row of the labels "
                                 "by zeros before building the sequence (the support rows keep their labels)")


@pytest.mark.points(5)
def test_caller_tensors_unmodified(student, reference, episodes):
    """forward and loss_function leave the caller's images and labels unchanged (no in-place zeroing)"""
    for case, images, labels in episodes:
        state = _reference_state(reference, "lstm", case)
        _require_reads_episode(student, "lstm", case, state, images, labels)
        scored = _require_loss_reads_queries(student, case, labels)
        # forward and loss_function apart: a bug in one (e.g. logits of the wrong shape) cannot crash the other
        got = _forward(student, "lstm", case, state, images, labels, with_loss=False)
        assert torch.equal(got["images_after"], images), "forward changed the caller's input_images"
        for culprit, after in (("forward", got["labels_after"]), ("loss_function", scored["labels_after"])):
            assert torch.equal(after, labels), (
                f"{culprit} changed the caller's input_labels (e.g. zeroed the query row in place): the training "
                "loop needs them afterwards for the loss. Build a new tensor (torch.cat, or edit a .clone())")


@pytest.mark.points(6)
def test_loss_matches_reference(student, reference, episodes):
    """loss_function: the reference's query cross-entropy (value and gradient) on the same logits"""
    for case, _, labels in episodes:
        want, got = _losses(reference, case, labels), _losses(student, case, labels)
        for number, want_loss in enumerate(want["loss"]):
            where = f"({_describe(case)}, logits {number + 1} of {len(want['loss'])})"
            assert_close(got["loss"][number], want_loss,
                         f"the loss (mean cross-entropy of the query logits over the classes) {where}")
            assert got["preds_grad"][number] is not None, f"the loss has no gradient with respect to the logits {where}"
            assert_close(got["preds_grad"][number], want["preds_grad"][number],
                         f"the loss's gradient with respect to the logits {where}")


@pytest.mark.points(4)
def test_loss_ignores_support_rows(student, episodes):
    """loss_function counts the query predictions only: support-row logits do not change it"""
    for case, _, labels in episodes:
        got = _require_loss_reads_queries(student, case, labels)
        losses, gradients = got["loss"], got["preds_grad"]
        if not _same(losses[3].double(), losses[0].double()):
            raise AssertionError(f"loss_function ({_describe(case)}): changing only the support rows' logits changed "
                                 "the loss: average the cross-entropy over the query row (index K) only")
        if gradients[0] is not None and gradients[0][:, :-1].abs().max() > 0:
            raise AssertionError("the loss has a gradient with respect to the support rows' logits; only the query "
                                 "row may count")


@pytest.mark.points(6)
@pytest.mark.extra_credit
def test_attention_forward_matches_reference(student, reference, episodes):
    """extra credit: AttentionLearner: same logits and gradients as the reference on the same weights"""
    for case, images, labels in episodes:
        state = _reference_state(reference, "attention", case)
        want = _forward(reference, "attention", case, state, images, labels)
        got = _forward(student, "attention", case, state, images, labels)
        assert_close(got["preds"], want["preds"], f"AttentionLearner logits ({_describe(case)})", normalise=True)
        for name, gradient in want["gradients"].items():
            assert got["gradients"].get(name) is not None, f"AttentionLearner parameter {name} got no gradient"
            assert_close(got["gradients"][name], gradient,
                         f"the gradient of AttentionLearner's {name} ({_describe(case)})")


@pytest.mark.points(4)
@pytest.mark.extra_credit
def test_attention_queries_independent(student, reference, episodes):
    """extra credit: AttentionLearner: a query sees the support set and itself only, never the query labels"""
    for case, images, labels in episodes:
        state = _reference_state(reference, "attention", case)
        plain = _require_reads_episode(student, "attention", case, state, images, labels).double()
        hidden = _forward(student, "attention", case, state, images, _query_labels_replaced(labels),
                          with_loss=False)["preds"]
        assert _same(hidden.double(), plain), (
            f"AttentionLearner ({_describe(case)}): changing the query labels changed the predictions")
        other = images.clone()
        other[:, -1, 0] = images[:, -1, 0].flip(-1)  # another image in query position 0
        moved = _forward(student, "attention", case, state, other, labels, with_loss=False)["preds"].double()
        unchanged = torch.ones(moved.shape[:3], dtype=torch.bool)
        unchanged[:, -1, 0] = False
        assert _same(moved[unchanged], plain[unchanged]), (
            f"AttentionLearner ({_describe(case)}): changing query 0's image changed the predictions of the support "
            "set or of other queries: support steps must not attend to queries, and a query only to the support "
            "set and itself")
        assert not _same(moved[:, -1, 0], plain[:, -1, 0]), (
            f"AttentionLearner ({_describe(case)}): query 0's prediction ignores its own image")
