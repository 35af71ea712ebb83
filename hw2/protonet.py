# hw2/protonet.py. Your work: the TODO blocks in ProtoNet._step (each raises NotImplementedError until you write it).
# The rest of this file is provided: read it, but do not change it.
"""Prototypical Networks (Snell et al., 2017) on few-shot Omniglot.

Your task: implement `ProtoNet._step`. Everything else (network, training loop, logging, checkpoints, test) is
provided. Train with `python hw2/protonet.py`, test with `python hw2/protonet.py --test` (see README.md).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import util

NUM_INPUT_CHANNELS = 1
NUM_HIDDEN_CHANNELS = 64
KERNEL_SIZE = 3
NUM_CONV_LAYERS = 4
BATCH_NORM_MODE = (
    "transductive: every forward pass normalises with the statistics of its own batch (the support set and the "
    "query set of a task are separate passes); no running averages are kept, in training and in evaluation alike"
)


class ProtoNetNetwork(nn.Module):
    """Embedding network: 4 x (conv3x3-64, batch norm, ReLU, 2x2 max-pool) maps [B, 1, 28, 28] to [B, 64]."""

    def __init__(self):
        super().__init__()
        layers = []
        in_channels = NUM_INPUT_CHANNELS
        for _ in range(NUM_CONV_LAYERS):
            layers += [
                nn.Conv2d(in_channels, NUM_HIDDEN_CHANNELS, KERNEL_SIZE, padding="same"),
                # Batch statistics always (track_running_stats=False): the same function in train and eval mode.
                nn.BatchNorm2d(NUM_HIDDEN_CHANNELS, track_running_stats=False),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels = NUM_HIDDEN_CHANNELS
        layers.append(nn.Flatten())
        self._layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 1, 28, 28] -> embeddings [B, 64]."""
        return self._layers(images)


class ProtoNet:
    """Trains and assesses a prototypical network."""

    name = "protonet"
    query_metric = "accuracy/query"

    def __init__(self, learning_rate: float = 0.001, log_dir: str | None = None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._network = ProtoNetNetwork().to(self.device)
        self._optimizer = torch.optim.Adam(self._network.parameters(), lr=learning_rate)
        self._learning_rate = learning_rate
        self._log_dir = log_dir

    def _step(self, task_batch):
        """Computes ProtoNet mean loss (and accuracy) on a batch of tasks.

        Args:
            task_batch (list of tuples): tasks (images_support [N*S, 1, 28, 28], labels_support [N*S],
                images_query [N*Q, 1, 28, 28], labels_query [N*Q]); labels are 0..N-1 and the examples of a class
                are NOT contiguous.

        Returns:
            loss (Tensor): mean ProtoNet loss over the batch, scalar, differentiable w.r.t. the network
            accuracy_support (Tensor or float): mean support accuracy over the batch
            accuracy_query (Tensor or float): mean query accuracy over the batch
        """
        loss_batch = []
        accuracy_support_batch = []
        accuracy_query_batch = []
        for task in task_batch:
            images_support, labels_support, images_query, labels_query = (
                tensor.to(self.device) for tensor in task
            )
            # TODO: compute this task's ProtoNet loss and accuracies and append them to the three lists.
            #   - Embeddings: one self._network call per set, so that batch norm normalises each set
            #     with its own statistics: [N*S, D] support, [N*Q, D] query.
            #   - Prototypes [N, D]: prototype c is the mean embedding of the support examples LABELLED c
            #     (the support set is shuffled: a class's examples are not contiguous); it stays differentiable.
            #   - Logits [examples, N]: -||e - p_c||^2, the negative SQUARED Euclidean distance to each prototype.
            #   - Loss: the cross-entropy of the query logits against labels_query (a differentiable 0-dim tensor).
            #     Accuracies: util.score of the support logits and of the query logits.
            #   Step-by-step help: "Hints" at the end of Part 1 of the handout.
            raise NotImplementedError("TODO: implement ProtoNet._step")
        loss = torch.stack(loss_batch).mean()
        accuracy_support = util.stack_metric(accuracy_support_batch, self.device).mean()
        accuracy_query = util.stack_metric(accuracy_query_batch, self.device).mean()
        return loss, accuracy_support, accuracy_query

    # ---- learner interface used by util.train / util.test -------------------------------------------------------

    def train_step(self, task_batch) -> dict[str, torch.Tensor]:
        self._network.train()
        self._optimizer.zero_grad(set_to_none=True)
        loss, accuracy_support, accuracy_query = self._step(task_batch)
        loss.backward()
        self._optimizer.step()
        return {"loss": loss.detach(), "accuracy/support": accuracy_support, "accuracy/query": accuracy_query}

    @torch.no_grad()
    def evaluate(self, task_batch) -> dict[str, torch.Tensor]:
        self._network.eval()
        loss, accuracy_support, accuracy_query = self._step(task_batch)
        return {"loss": loss, "accuracy/support": accuracy_support, "accuracy/query": accuracy_query}

    def state_dict(self) -> dict:
        return {"network": self._network.state_dict(), "optimizer": self._optimizer.state_dict()}

    def load_state_dict(self, state: dict, with_optimizer: bool = True) -> None:
        self._network.load_state_dict(state["network"])
        if with_optimizer:
            self._optimizer.load_state_dict(state["optimizer"])

    def describe(self) -> dict:
        return {"network": "4 x (conv3x3-64, batch norm, ReLU, max-pool 2) -> 64-d embedding",
                "distance": "squared Euclidean", "batch_norm": BATCH_NORM_MODE, "learning_rate": self._learning_rate}


def main(args: argparse.Namespace) -> dict:
    device = util.prepare(args)
    log_dir = util.run_folder("protonet", build_parser(), args)
    protonet = ProtoNet(args.learning_rate, log_dir, device)
    if args.compile:  # in place: the state_dict keys (and so the checkpoints) stay those of the eager network
        protonet._network.compile(backend=args.compile)
    return util.run(protonet, args, log_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train or test a prototypical network on few-shot Omniglot.")
    util.add_common_arguments(parser, batch_size=16, num_train_iterations=5000)
    parser.add_argument("--learning_rate", type=float, default=0.001, help="Adam learning rate")
    return parser


def parse_arguments(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


if __name__ == "__main__":
    main(parse_arguments())
