# hw2/maml.py. Your work: the TODO blocks in MAML._second_order, MAML._inner_loop, MAML._outer_step,
# MAML._anil_inner_loop, MAML._reptile_step, MAML._proximal_inner_loop and MAML._implicit_meta_gradient (each raises
# NotImplementedError until you write it). The rest of this file is provided: read it, but do not change it.
"""Model-Agnostic Meta-Learning (Finn et al., 2017) and its relatives on few-shot Omniglot.

Your tasks: `MAML._inner_loop` and `MAML._outer_step` (MAML with second-order meta-gradients and optionally learned
per-parameter inner learning rates). Extra credit, each selected by a flag and with its own TODO:
`--first_order` (`_second_order`), `--anil` (`_anil_inner_loop`), `--reptile` (`_reptile_step`) and `--imaml`
(`_proximal_inner_loop`, `_implicit_meta_gradient`). Everything else is provided. See README.md.

The network is functional: `_forward(images, parameters)` evaluates it with any dict of parameter tensors, so the
inner loop can differentiate through updated copies of the meta-parameters without touching them.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import util

NUM_INPUT_CHANNELS = 1
NUM_HIDDEN_CHANNELS = 64
KERNEL_SIZE = 3
NUM_CONV_LAYERS = 4
HEAD_PARAMETERS = (f"w{NUM_CONV_LAYERS}", f"b{NUM_CONV_LAYERS}")
VARIANTS = ("maml", "first_order", "anil", "reptile", "imaml")
# Variants whose training never differentiates through a gradient: the only ones `--compile` may train. A compiled
# backward cannot itself be differentiated (torch.compile raises, see pytorch/pytorch#91469), and second-order MAML,
# ANIL and iMAML need exactly that. Evaluation (--test) never does, so it may compile any variant.
COMPILABLE_VARIANTS = ("first_order", "reptile")
BATCH_NORM_MODE = (
    "transductive: batch norm without learned scale/shift always normalises with the statistics of the images of "
    "the current forward pass (the support set in the inner loop, the query set for the outer loss), in training "
    "and in evaluation alike, as in CS330 and the MAML paper; no running averages"
)


class MAML:
    """Trains and assesses MAML (or one of its variants, see VARIANTS).

    The network is four blocks of (3x3 convolution with stride 2, batch norm, ReLU), which take 28x28 images to 2x2,
    then a spatial mean and a linear head to `num_outputs` logits (the Omniglot network of the MAML paper).
    Parameters, by name: conv0..conv3 [C, C_in, 3, 3], b0..b3 [C], w4 [num_outputs, C], b4 [num_outputs].

    Args:
        num_outputs: number of classes of a task (N).
        num_inner_steps: number of inner-loop gradient steps.
        inner_lr: inner-loop learning rate; the initial value of every learned rate with learn_inner_lrs.
        learn_inner_lrs: learn one inner learning rate per parameter tensor (meta-learned with the outer optimizer).
        outer_lr: learning rate of the outer Adam optimizer.
        log_dir: where the training script writes (unused by the methods themselves).
        device: torch device of all parameters.
        num_hidden_channels: C, the width of every convolution.
        variant: one of VARIANTS; "maml" is second-order MAML.
        imaml_lambda: iMAML's proximal regularisation strength lambda.
        imaml_cg_steps: conjugate-gradient iterations of iMAML's implicit meta-gradient.
    """

    name = "maml"
    query_metric = "accuracy/post_adapt_query"

    def __init__(
        self,
        num_outputs: int,
        num_inner_steps: int,
        inner_lr: float,
        learn_inner_lrs: bool,
        outer_lr: float,
        log_dir: str | None = None,
        device: str | torch.device = "cpu",
        num_hidden_channels: int = NUM_HIDDEN_CHANNELS,
        variant: str = "maml",
        imaml_lambda: float = 2.0,
        imaml_cg_steps: int = 5,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
        if learn_inner_lrs and variant in ("reptile", "imaml"):
            raise ValueError(f"learn_inner_lrs: {variant} has no meta-gradient for the inner learning rates; "
                             "use it with maml, first_order or anil")
        if num_inner_steps < 0:
            raise ValueError(f"num_inner_steps: expected >= 0, got {num_inner_steps}")
        if variant == "imaml" and (imaml_lambda <= 0 or imaml_cg_steps < 1):
            raise ValueError(f"imaml_lambda must be > 0 and imaml_cg_steps >= 1, got {imaml_lambda} and {imaml_cg_steps}")
        self.device = torch.device(device)
        meta_parameters = {}
        in_channels = NUM_INPUT_CHANNELS
        for i in range(NUM_CONV_LAYERS):
            meta_parameters[f"conv{i}"] = torch.nn.init.xavier_uniform_(
                torch.empty(num_hidden_channels, in_channels, KERNEL_SIZE, KERNEL_SIZE, device=self.device)
            ).requires_grad_()
            meta_parameters[f"b{i}"] = torch.zeros(num_hidden_channels, device=self.device, requires_grad=True)
            in_channels = num_hidden_channels
        meta_parameters[f"w{NUM_CONV_LAYERS}"] = torch.nn.init.xavier_uniform_(
            torch.empty(num_outputs, num_hidden_channels, device=self.device)
        ).requires_grad_()
        meta_parameters[f"b{NUM_CONV_LAYERS}"] = torch.zeros(num_outputs, device=self.device, requires_grad=True)

        self._meta_parameters = meta_parameters
        self._num_inner_steps = num_inner_steps
        self._inner_lrs = {
            name: torch.tensor(float(inner_lr), device=self.device, requires_grad=learn_inner_lrs)
            for name in meta_parameters
        }
        self._learn_inner_lrs = learn_inner_lrs
        self._initial_inner_lr = float(inner_lr)
        self._outer_lr = outer_lr
        self._variant = variant
        self._imaml_lambda = float(imaml_lambda)
        self._imaml_cg_steps = int(imaml_cg_steps)
        self._num_hidden_channels = num_hidden_channels
        trained = list(meta_parameters.values()) + (list(self._inner_lrs.values()) if learn_inner_lrs else [])
        self._optimizer = torch.optim.Adam(trained, lr=outer_lr)
        self._log_dir = log_dir

    # ---- the functional network (provided) ----------------------------------------------------------------------

    def _features(self, images: torch.Tensor, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
        """images [B, 1, 28, 28] -> features [B, C] with the convolutional blocks of `parameters`."""
        x = images
        for i in range(NUM_CONV_LAYERS):
            x = F.conv2d(x, parameters[f"conv{i}"], parameters[f"b{i}"], stride=2, padding=1)
            x = F.batch_norm(x, None, None, training=True)
            x = F.relu(x)
        return x.mean(dim=(2, 3))

    def _head(self, features: torch.Tensor, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
        """features [B, C] -> logits [B, num_outputs] with the linear head (w4, b4) of `parameters`."""
        return F.linear(features, parameters[HEAD_PARAMETERS[0]], parameters[HEAD_PARAMETERS[1]])

    def _forward(self, images: torch.Tensor, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
        """Computes predicted classification logits [num_images, num_outputs] of images [num_images, 1, 28, 28]."""
        return self._head(self._features(images, parameters), parameters)

    # ---- MAML ----------------------------------------------------------------------------------------------------

    def _second_order(self, train: bool) -> bool:
        """Whether the inner-loop gradients are computed with create_graph=True (so the meta-gradient is exact)."""
        if self._variant != "first_order":
            return train
        # TODO (extra credit, --first_order): return whether the inner-loop gradients keep their graph in
        #   first-order MAML (FOMAML), which drops the meta-gradient's second-order terms: its gradient w.r.t.
        #   theta is the query-loss gradient at the adapted parameters, also while training.
        raise NotImplementedError("TODO: implement MAML._second_order")

    def _inner_loop(self, images, labels, train):
        """Computes the adapted network parameters via the MAML inner loop.

        Args:
            images (Tensor): task support set inputs, shape (num_images, 1, 28, 28)
            labels (Tensor): task support set outputs, shape (num_images,)
            train (bool): whether we are training (the adapted parameters must then be differentiable functions of
                the meta-parameters and inner learning rates, with second-order terms) or evaluating

        Returns:
            parameters (dict[str, Tensor]): adapted network parameters, same names and shapes as the meta-parameters
            accuracies (list of float or 0-dim Tensor): support set accuracy over the course of the inner loop,
                length num_inner_steps + 1 (before the first step, ..., after the last step)
            gradients (dict[str, Tensor]): the gradients of the last inner step, by parameter name ({} when
                num_inner_steps == 0)
        """
        if self._variant == "anil":
            return self._anil_inner_loop(images, labels, train)
        if self._variant == "imaml":
            return self._proximal_inner_loop(images, labels)
        accuracies = []
        parameters = dict(self._meta_parameters)  # a new dict holding the meta-parameter tensors themselves
        gradients = {}
        create_graph = self._second_order(train)
        # TODO: self._num_inner_steps steps of gradient descent on the support loss (the cross-entropy of the logits of
        #   `parameters` on `images` against `labels`), from the meta-parameters; each step takes the gradient at the
        #   CURRENT parameters and moves each tensor by its learning rate self._inner_lrs[name] times its gradient.
        #   What must hold:
        #   - `accuracies`: util.score on the support set before each step and after the last (num_inner_steps + 1);
        #   - `gradients`: the last step's gradients, a dict by parameter name;
        #   - the meta-parameters are never modified: each step builds a new dict of new tensors (nothing in place);
        #   - the gradients carry a graph exactly when `create_graph` (provided; for MAML it is `train`), so that when
        #     training the outer loss differentiates through every step, second-order terms included.
        #   Step-by-step help: "Hints" at the end of Part 2 of the handout.
        raise NotImplementedError("TODO: implement MAML._inner_loop")
        return parameters, accuracies, gradients

    def _outer_step(self, task_batch, train):
        """Computes the MAML loss and metrics on a batch of tasks.

        Args:
            task_batch (list of tuples): tasks (images_support, labels_support, images_query, labels_query)
            train (bool): whether we are training or evaluating

        Returns:
            outer_loss (Tensor): mean query loss of the adapted parameters over the batch, scalar; when training it
                is differentiable w.r.t. the meta-parameters (and the inner learning rates)
            accuracies_support (Tensor): support accuracy over the course of the inner loop, averaged over the
                task batch, shape (num_inner_steps + 1,)
            accuracy_query (Tensor): query accuracy of the adapted parameters, averaged over the task batch
        """
        outer_loss_batch = []
        accuracies_support_batch = []
        accuracy_query_batch = []
        for task in task_batch:
            images_support, labels_support, images_query, labels_query = (tensor.to(self.device) for tensor in task)
            # TODO: adapt to this task's SUPPORT set with self._inner_loop (`train` passed on), then append this task's
            #   query loss (the cross-entropy of the adapted parameters' logits on the QUERY set, differentiable
            #   w.r.t. the meta-parameters when training), its inner-loop support accuracies (the whole list) and
            #   its query accuracy (util.score) to the three lists.
            raise NotImplementedError("TODO: implement MAML._outer_step")
        outer_loss = torch.stack(outer_loss_batch).mean()
        accuracies_support = util.stack_metric(accuracies_support_batch, self.device).mean(dim=0)
        accuracy_query = util.stack_metric(accuracy_query_batch, self.device).mean()
        return outer_loss, accuracies_support, accuracy_query

    # ---- extra credit: ANIL ----------------------------------------------------------------------------------------

    def _anil_inner_loop(self, images, labels, train):
        """ANIL (Raghu et al., 2020, "almost no inner loop"): the inner loop adapts only the head (w4, b4).

        Same arguments and returns as _inner_loop; the returned `parameters` hold every name (the body's entries
        are the meta-parameter tensors themselves), `gradients` only the head's.
        """
        accuracies = []
        parameters = dict(self._meta_parameters)
        gradients = {}
        create_graph = self._second_order(train)
        # TODO (extra credit, --anil): _inner_loop's contract, but only the head (the names in HEAD_PARAMETERS) adapts.
        #   The body does not change during adaptation, so the support features are computed once (self._features) and
        #   each step evaluates only the head on them (self._head). Same update rule, learning rates and graph rule as
        #   _inner_loop; `parameters` holds every name (the body's entries are the meta-parameter tensors themselves),
        #   `gradients` only the head's. The meta-gradient must still reach the body through the features.
        raise NotImplementedError("TODO: implement MAML._anil_inner_loop")
        return parameters, accuracies, gradients

    # ---- extra credit: Reptile -----------------------------------------------------------------------------------

    def _reptile_step(self, task_batch):
        """Reptile (Nichol et al., 2018): writes the meta-gradient of a task batch into the meta-parameters' .grad.

        The outer optimizer (Adam, outer_lr) then takes the step, so the update follows the mean over tasks of
        (theta - phi_task), where phi_task are the parameters after the inner loop on the task's support set.

        Returns the same metrics as _outer_step (query loss and accuracies of phi_task), all detached.
        """
        directions = []
        task_metrics = []
        for task in task_batch:
            images_support, labels_support, images_query, labels_query = (tensor.to(self.device) for tensor in task)
            # TODO (extra credit, --reptile): adapt to the support set (Reptile needs no second-order graph) and
            #   append to `directions` the DETACHED differences {name: theta - phi} between each meta-parameter and
            #   its adapted value; append (support accuracies, *self._query_metrics(phi, images_query, labels_query))
            #   to task_metrics.
            raise NotImplementedError("TODO: implement MAML._reptile_step")
        self._set_meta_gradients(directions)
        return self._batch_metrics(task_metrics)

    # ---- extra credit: iMAML -------------------------------------------------------------------------------------

    def _proximal_inner_loop(self, images, labels):
        """iMAML's inner problem (Rajeswaran et al., 2019): approximately minimise over phi

            L_support(phi) + lambda / 2 * ||phi - theta||^2        (lambda = self._imaml_lambda)

        by self._num_inner_steps steps of gradient descent from phi = theta, with the inner learning rates.
        The solution is NOT differentiated through (the implicit meta-gradient replaces that), so everything here
        is detached. Same returns as _inner_loop; `gradients` are those of the regularised objective.
        """
        accuracies = []
        anchor = {name: value.detach() for name, value in self._meta_parameters.items()}
        parameters = dict(anchor)
        gradients = {}
        # TODO (extra credit, --imaml): self._num_inner_steps steps of gradient descent from phi = theta (`anchor`) on
        #   the regularised objective of the docstring (its gradient adds lambda * (phi - theta) to the support loss's),
        #   with the inner learning rates. Nothing is differentiated through: every returned tensor is detached. Record
        #   the support accuracy before each step and after the last; keep the last step's total gradients.
        raise NotImplementedError("TODO: implement MAML._proximal_inner_loop")
        return parameters, accuracies, gradients

    def _implicit_meta_gradient(self, adapted, images_support, labels_support, query_gradients):
        """iMAML's meta-gradient of one task: the solution v of (I + H / lambda) v = g by conjugate gradient.

        Args:
            adapted (dict[str, Tensor]): phi, the inner solution (detached)
            images_support, labels_support: the task's support set
            query_gradients (dict[str, Tensor]): g, the gradient of the query loss w.r.t. phi

        Returns:
            dict[str, Tensor]: v after self._imaml_cg_steps conjugate-gradient iterations started at v = 0, detached;
            H is the Hessian of F.cross_entropy(self._forward(images_support, phi), labels_support) at phi (the
            support loss WITHOUT the proximal term, whose Hessian is the identity times lambda).
        """
        names = list(adapted)
        # TODO (extra credit, --imaml): solve (I + H / lambda) v = g (g: query_gradients) by self._imaml_cg_steps
        #   iterations of TRUNCATED conjugate gradient from v = 0. H is never formed: apply it to vectors only
        #   (Hessian-vector products). The dict of tensors is one vector. The support loss is not convex, so stop
        #   for good, keeping the current v, at the first search direction p with <p, A p> <= eps <p, p>
        #   (A = I + H / lambda, eps the dtype's machine epsilon); if that happens at the first iteration, return
        #   v = g. Return {name: v} detached.
        #   Step-by-step help: "Hints" at the end of the extra-credit section of the handout.
        raise NotImplementedError("TODO: implement MAML._implicit_meta_gradient")

    def _imaml_step(self, task_batch):
        """iMAML: writes the implicit meta-gradient of a task batch into .grad; returns _outer_step's metrics."""
        meta_gradients = []
        task_metrics = []
        for task in task_batch:
            images_support, labels_support, images_query, labels_query = (tensor.to(self.device) for tensor in task)
            adapted, support_accuracies, _ = self._proximal_inner_loop(images_support, labels_support)
            phi = {name: value.detach().requires_grad_() for name, value in adapted.items()}
            query_logits = self._forward(images_query, phi)
            query_loss = F.cross_entropy(query_logits, labels_query)
            query_gradients = dict(zip(phi, torch.autograd.grad(query_loss, list(phi.values()))))
            meta_gradients.append(self._implicit_meta_gradient(adapted, images_support, labels_support, query_gradients))
            task_metrics.append((support_accuracies, query_loss.detach(), util.score(query_logits, labels_query)))
        self._set_meta_gradients(meta_gradients)
        return self._batch_metrics(task_metrics)

    # ---- plumbing shared by the variants and the training script (provided) ---------------------------------------

    def _set_meta_gradients(self, per_task: list[dict[str, torch.Tensor]]) -> None:
        """Write the mean over tasks of per-task meta-gradients into the .grad of the meta-parameters."""
        for name, parameter in self._meta_parameters.items():
            parameter.grad = torch.stack([gradients[name] for gradients in per_task]).mean(dim=0)

    def _query_metrics(self, parameters, images_query, labels_query):
        """(query loss, query accuracy) of `parameters`, detached: for variants whose loss is not differentiated."""
        with torch.no_grad():
            logits = self._forward(images_query, parameters)
            return F.cross_entropy(logits, labels_query), util.score(logits, labels_query)

    def _batch_metrics(self, task_metrics):
        """_outer_step's metrics from per-task (support accuracies, query loss, query accuracy) tuples."""
        support_accuracies, query_losses, query_accuracies = zip(*task_metrics)
        return (
            torch.stack([loss.detach() for loss in query_losses]).mean(),
            util.stack_metric(list(support_accuracies), self.device).mean(dim=0),
            util.stack_metric(list(query_accuracies), self.device).mean(),
        )

    def _meta_gradient_step(self, task_batch):
        """Fill .grad of the trained tensors with the variant's meta-gradient of `task_batch`; return the metrics."""
        if self._variant == "reptile":
            return self._reptile_step(task_batch)
        if self._variant == "imaml":
            return self._imaml_step(task_batch)
        outer_loss, accuracies_support, accuracy_query = self._outer_step(task_batch, train=True)
        outer_loss.backward()
        return outer_loss.detach(), accuracies_support, accuracy_query

    def set_meta_parameters(self, parameters: dict[str, torch.Tensor], inner_lrs: dict | None = None) -> None:
        """Copy given values into the meta-parameters (and inner learning rates), keeping the optimizer's tensors."""
        with torch.no_grad():
            for name, value in parameters.items():
                target = self._meta_parameters[name]
                if tuple(value.shape) != tuple(target.shape):
                    raise ValueError(f"meta-parameter {name}: expected shape {tuple(target.shape)}, "
                                     f"got {tuple(value.shape)}")
                target.copy_(value)
            for name, value in (inner_lrs or {}).items():
                self._inner_lrs[name].copy_(torch.as_tensor(value))

    def _metrics(self, loss, accuracies_support, accuracy_query) -> dict[str, torch.Tensor]:
        return {
            "loss": loss.detach(),
            "accuracy/pre_adapt_support": accuracies_support[0],
            "accuracy/post_adapt_support": accuracies_support[-1],
            "accuracy/post_adapt_query": accuracy_query,
        }

    def train_step(self, task_batch) -> dict[str, torch.Tensor]:
        self._optimizer.zero_grad(set_to_none=True)
        metrics = self._metrics(*self._meta_gradient_step(task_batch))
        self._optimizer.step()
        return metrics

    def evaluate(self, task_batch) -> dict[str, torch.Tensor]:
        # No torch.no_grad(): the inner loop needs gradients, but train=False builds no second-order graph.
        return self._metrics(*self._outer_step(task_batch, train=False))

    def state_dict(self) -> dict:
        return {
            "meta_parameters": {name: value.detach() for name, value in self._meta_parameters.items()},
            "inner_lrs": {name: value.detach() for name, value in self._inner_lrs.items()},
            "optimizer": self._optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict, with_optimizer: bool = True) -> None:
        self.set_meta_parameters(state["meta_parameters"], state["inner_lrs"])
        if with_optimizer:
            self._optimizer.load_state_dict(state["optimizer"])

    def describe(self) -> dict:
        settings = {
            "variant": self._variant,
            "network": f"4 x (conv3x3-{self._num_hidden_channels} stride 2, batch norm, ReLU) -> mean -> linear",
            "num_hidden_channels": self._num_hidden_channels,
            "num_inner_steps": self._num_inner_steps,
            "inner_lr": self._initial_inner_lr,
            "learn_inner_lrs": self._learn_inner_lrs,
            "outer_lr": self._outer_lr,
            "inner_lrs": {name: float(value.detach()) for name, value in self._inner_lrs.items()},
            "batch_norm": BATCH_NORM_MODE,
        }
        if self._variant == "imaml":
            settings.update(imaml_lambda=self._imaml_lambda, imaml_cg_steps=self._imaml_cg_steps)
        return settings


def variant_of(args: argparse.Namespace) -> str:
    chosen = [name for name in VARIANTS[1:] if getattr(args, name)]
    return chosen[0] if chosen else "maml"


def main(args: argparse.Namespace) -> dict:
    device = util.prepare(args)
    variant = variant_of(args)
    if args.learn_inner_lrs and variant in ("reptile", "imaml"):
        raise SystemExit(f"--learn_inner_lrs cannot be combined with --{variant} (no meta-gradient for the rates)")
    if args.compile and not args.test and variant not in COMPILABLE_VARIANTS:
        raise SystemExit(
            f"--compile: training {variant} differentiates through the inner-loop gradients, which torch.compile does "
            f"not support (pytorch/pytorch#91469); compile with --{' or --'.join(COMPILABLE_VARIANTS)}, with --test, "
            "or train without --compile")
    log_dir = util.run_folder("maml", build_parser(), args)
    print(f"variant: {variant}")
    maml = MAML(args.num_way, args.num_inner_steps, args.inner_lr, args.learn_inner_lrs, args.outer_lr, log_dir,
                device, args.num_hidden_channels, variant, args.imaml_lambda, args.imaml_cg_steps)
    if args.compile:  # the convolutional body, where the time goes; _forward and ANIL both call it through self
        maml._features = torch.compile(maml._features, backend=args.compile)
    return util.run(maml, args, log_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train or test MAML (or a variant) on few-shot Omniglot.")
    util.add_common_arguments(parser, batch_size=16, num_train_iterations=15000)
    parser.add_argument("--num_inner_steps", type=int, default=1, help="number of inner-loop updates")
    parser.add_argument("--inner_lr", type=float, default=0.4, help="inner-loop learning rate (initial value if "
                        "learned)")
    parser.add_argument("--learn_inner_lrs", default=False, action="store_true", help="learn the inner-loop "
                        "learning rates, one per parameter tensor")
    parser.add_argument("--outer_lr", "--learning_rate", dest="outer_lr", type=float, default=0.001,
                        help="outer-loop (Adam) learning rate")
    parser.add_argument("--num_hidden_channels", type=int, default=NUM_HIDDEN_CHANNELS,
                        help="width of the convolutions (reduce for quick CPU runs)")
    variants = parser.add_mutually_exclusive_group()
    variants.add_argument("--first_order", action="store_true", help="first-order MAML (extra credit)")
    variants.add_argument("--anil", action="store_true", help="adapt only the head in the inner loop (extra credit)")
    variants.add_argument("--reptile", action="store_true", help="Reptile meta-gradient theta - phi (extra credit)")
    variants.add_argument("--imaml", action="store_true", help="implicit MAML with a proximal inner problem and a "
                          "conjugate-gradient meta-gradient (extra credit)")
    parser.add_argument("--imaml_lambda", type=float, default=2.0, help="iMAML: proximal regularisation lambda")
    parser.add_argument("--imaml_cg_steps", type=int, default=5, help="iMAML: conjugate-gradient iterations")
    return parser


def parse_arguments(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


if __name__ == "__main__":
    main(parse_arguments())
